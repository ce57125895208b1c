"""Hard parameter sharing, FS-MTL (Caruana 1997; Liu, Qiu, Huang ACL 2017 §3 "FS-MTL").

One embedding and one encoder serve every task; each task has only its own output layer:

    s = pool(Encoder(Embed(x)))          shared by all tasks
    ŷ = softmax(W^k s + b^k)             task k

Tagging tasks read the encoder's per-token states instead of the pooled vector, so sentence-level
and token-level tasks share one encoder.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..modules import SentenceEncoder, build_encoder
from ..modules.embeddings import build_embedding
from .outputs import TaskOutput, TaskSpec, classification_output, tagging_output, task_head


class HardSharingModel(nn.Module):
    def __init__(self, encoder: SentenceEncoder, tasks: list[TaskSpec], dropout: float):
        super().__init__()
        self.encoder = encoder
        self.heads = nn.ModuleDict({t.name: task_head(t, encoder.output_dim, dropout) for t in tasks})
        self.pair = {t.name: t.pair for t in tasks}
        self.tagging = {t.name: t.tagging for t in tasks}

    def forward(self, batch) -> TaskOutput:
        if self.tagging[batch.task]:                                     # token-level head
            states = self.encoder.states(batch.tokens, batch.mask, batch.chars)   # (B, T, H)
            return tagging_output(self.heads[batch.task], states, batch.mask, batch.labels)
        u = self.encoder(batch.tokens, batch.mask, batch.chars)          # (B, H)
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


def build(cfg, tasks: list[TaskSpec], vocab_size: int, vectors: Optional[torch.Tensor] = None,
          num_chars: int = 0) -> HardSharingModel:
    m = cfg.model
    embedding = build_embedding(m, vocab_size, vectors, num_chars)
    encoder = SentenceEncoder(embedding, build_encoder(m.encoder, embedding.output_dim), m.pooling)
    return HardSharingModel(encoder, tasks, m.dropout)
