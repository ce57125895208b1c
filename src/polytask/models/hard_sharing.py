"""Hard parameter sharing, FS-MTL (Caruana 1997; Liu, Qiu, Huang ACL 2017 §3 "FS-MTL").

One embedding and one encoder serve every task; each task has only its own output layer:

    s = pool(Encoder(Embed(x)))          shared by all tasks
    ŷ = softmax(W^k s + b^k)             task k
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..modules import SentenceEncoder, WordEmbedding, build_encoder, build_head
from .outputs import TaskOutput, TaskSpec, classification_output


class HardSharingModel(nn.Module):
    def __init__(self, encoder: SentenceEncoder, tasks: list[TaskSpec], dropout: float):
        super().__init__()
        self.encoder = encoder
        self.heads = nn.ModuleDict(
            {t.name: build_head(encoder.output_dim, t.num_labels, t.pair, dropout) for t in tasks})
        self.pair = {t.name: t.pair for t in tasks}

    def forward(self, batch) -> TaskOutput:
        u = self.encoder(batch.tokens, batch.mask)                       # (B, H)
        if self.pair[batch.task]:
            v = self.encoder(batch.tokens_b, batch.mask_b)               # (B, H)
            logits = self.heads[batch.task](u, v)
        else:
            logits = self.heads[batch.task](u)                           # (B, C)
        return classification_output(logits, batch.labels)

    def shared_parameters(self):
        return self.encoder.parameters()

    def task_parameters(self, task: str):
        return self.heads[task].parameters()


def build(cfg, tasks: list[TaskSpec], vocab_size: int,
          vectors: Optional[torch.Tensor] = None) -> HardSharingModel:
    m = cfg.model
    embedding = WordEmbedding(vocab_size, m.embedding_dim, vectors, m.freeze_embeddings, m.dropout)
    encoder = SentenceEncoder(embedding, build_encoder(m.encoder, m.embedding_dim), m.pooling)
    return HardSharingModel(encoder, tasks, m.dropout)
