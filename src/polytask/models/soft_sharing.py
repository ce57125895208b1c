"""Soft parameter sharing: one encoder per task, pulled together by a regularizer.

Duong, Cohn, Bird, Cook, ACL 2015 (L2 distance between the tasks' parameters) and Yang &
Hospedales, ICLR 2017 workshop (trace norm of the parameters stacked over tasks); Ruder 2017 §4.
Every task has its own encoder of the same shape; the word embedding table is shared. The model's
loss is the task loss plus λ times the penalty over all tasks' encoder parameters
(``model.soft_sharing``: ``l2`` or ``trace``; ``model.soft_sharing_weight``: λ).

Every task's encoder starts from the same initial weights, so training starts from hard sharing
and the penalty prices how far each task moves away. With 16 independently drawn encoders the L2
distance on FDU-MTL's BiLSTMs is 2·10⁵ at initialisation, 300× the task loss at λ = 10⁻³: the first
steps would only pull random encoders towards their mean.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, Optional

import torch
from torch import nn

from ..config import ModelConfig
from ..modules import SentenceEncoder, build_encoder
from ..modules.embeddings import build_embedding
from .priors import l2_distance_penalty, trace_norm_penalty
from .contract import Encoding, MultiTaskModel, TaskSpec, Text, task_head


@dataclass
class SoftSharingConfig(ModelConfig):
    """The penalty tying the task encoders (``l2`` or ``trace``) and its weight λ."""

    limits: ClassVar[dict[str, str]] = {"soft_sharing_weight": ">= 0"}

    soft_sharing: Literal["l2", "trace"] = "l2"
    soft_sharing_weight: float = 1e-3


PENALTIES = {"l2": l2_distance_penalty, "trace": trace_norm_penalty}


class SoftSharingModel(MultiTaskModel):
    """One encoder per task over a shared embedding; L = L_task + λ Ω(θ_1, …, θ_K)."""

    def __init__(self, embedding: nn.Module, encoders: dict[str, SentenceEncoder], tasks: list[TaskSpec],
                 penalty: str, weight: float, dropout: float):
        super().__init__(tasks)
        self.embedding = embedding
        self.encoders = nn.ModuleDict(encoders)
        self.heads = nn.ModuleDict({t.name: task_head(t, next(iter(encoders.values())).output_dim, dropout)
                                    for t in tasks})
        self.penalty, self.weight = PENALTIES[penalty], weight
        self.names = [t.name for t in tasks]

    def penalty_value(self) -> torch.Tensor:
        """Ω over the K encoders, parameter by parameter (the embedding is shared, so not in Ω)."""
        per_task = [list(self.encoders[t].encoder.parameters()) for t in self.names]
        return self.penalty([list(group) for group in zip(*per_task)])

    def penalty_terms(self) -> dict[str, tuple[float, torch.Tensor]]:
        return {"soft_sharing": (self.weight, self.penalty_value())}

    def encode(self, task: str, text: Text) -> Encoding:
        encoder = self.encoders[task]
        states = encoder.states(text.tokens, text.mask, text.chars)          # (B, T, H), task's own
        tied = self.weight and len(self.names) > 1                          # Ω is 0 for one task
        return Encoding(states, text.mask, pool=encoder.pool, losses=self.penalty_terms if tied else None)

    def shared_parameters(self):
        return self.embedding.parameters()

    def task_parameters(self, task: str):
        yield from self.encoders[task].encoder.parameters()
        yield from self.heads[task].parameters()


def build(cfg, tasks: list[TaskSpec], vocab_size: int, vectors: Optional[torch.Tensor] = None,
          num_chars: int = 0) -> SoftSharingModel:
    m = cfg.model
    embedding = build_embedding(m, vocab_size, vectors, num_chars)
    encoders = {t.name: SentenceEncoder(embedding, build_encoder(m.encoder, embedding.output_dim), m.pooling)
                for t in tasks}
    first = next(iter(encoders.values())).encoder.state_dict()
    for enc in encoders.values():                       # one starting point for every task
        enc.encoder.load_state_dict(first)
    return SoftSharingModel(embedding, encoders, tasks, m.soft_sharing, m.soft_sharing_weight, m.dropout)


ARCHITECTURES = {"soft_sharing": (SoftSharingConfig, build)}
