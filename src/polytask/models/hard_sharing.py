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

from ..config import ModelConfig
from ..modules import SentenceEncoder, build_encoder
from ..modules.embeddings import build_embedding
from .contract import Encoding, MultiTaskModel, TaskSpec, Text, task_head


class HardSharingModel(MultiTaskModel):
    def __init__(self, encoder: SentenceEncoder, tasks: list[TaskSpec], dropout: float):
        super().__init__(tasks)
        self.encoder = encoder
        self.heads = nn.ModuleDict({t.name: task_head(t, encoder.output_dim, dropout) for t in tasks})

    def encode(self, task: str, text: Text) -> Encoding:
        states = self.encoder.states(text.tokens, text.mask, text.chars)       # (B, T, H), every task
        return Encoding(states, text.mask, pool=self.encoder.pool)

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


ARCHITECTURES = {"hard_sharing": (ModelConfig, build)}
