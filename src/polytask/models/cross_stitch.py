"""Cross-stitch networks for K tasks (Misra, Shrivastava, Gupta, Hebert, CVPR 2016).

Every task has its own stack of BiLSTM layers. After each layer ℓ a learned K×K matrix α^ℓ mixes
the tasks' states position by position (Eq. 1, generalised from two tasks to K):

    h̃_k^ℓ = Σ_l α^ℓ_{kl} h_l^ℓ

and layer ℓ+1 of task k reads h̃_k^ℓ. For a batch of task k all K columns run (that is the
method's cost: K encoders per step) and task k's head reads its own column of the last layer.
α starts near the identity (``model.cross_stitch_init``: the diagonal value; the rest of each row
shares 1 − diagonal). The mixing matrices are shown in ``TaskOutput.inspect`` (``cross_stitch_alpha``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import torch
from torch import nn

from ..config import ModelConfig
from ..modules import LSTMEncoder, Pooling
from ..modules.embeddings import build_embedding
from .contract import Encoding, MultiTaskModel, TaskSpec, Text, task_head


@dataclass
class CrossStitchConfig(ModelConfig):
    """The initial diagonal of each α (the rest of a row shares 1 - diagonal)."""

    encoders: ClassVar[tuple[str, ...]] = ("bilstm",)
    limits: ClassVar[dict[str, str]] = {"cross_stitch_init": "[0, 1]"}

    cross_stitch_init: float = 0.9


class CrossStitchModel(MultiTaskModel):
    """K columns of BiLSTM layers with a cross-stitch unit α^ℓ (K × K) after each layer ℓ."""

    def __init__(self, embedding: nn.Module, tasks: list[TaskSpec], hidden_dim: int, num_layers: int,
                 dropout: float, pooling: str, diagonal: float = 0.9):
        super().__init__(tasks)
        self.embedding = embedding
        self.names = [t.name for t in tasks]
        self.index = {n: i for i, n in enumerate(self.names)}
        K = len(tasks)
        self.columns = nn.ModuleList(
            nn.ModuleList(LSTMEncoder(embedding.output_dim if layer == 0 else 2 * hidden_dim, hidden_dim)
                          for layer in range(num_layers))
            for _ in range(K))
        off = (1.0 - diagonal) / (K - 1) if K > 1 else 0.0
        init = torch.full((K, K), off) + torch.eye(K) * (diagonal - off)
        self.alpha = nn.Parameter(init.repeat(num_layers, 1, 1))               # (L, K, K)
        self.dropout = nn.Dropout(dropout)
        self.pool = Pooling(pooling, bidirectional=True)
        self.heads = nn.ModuleDict({t.name: task_head(t, 2 * hidden_dim, dropout) for t in tasks})

    def states(self, task: str, tokens, mask, chars=None) -> torch.Tensor:
        """Task ``task``'s column of the last layer (B, T, 2H); every column runs."""
        x = self.embedding(tokens) if chars is None else self.embedding(tokens, chars)   # (B, T, E)
        hs = [x] * len(self.columns)                                         # one input per task
        for layer in range(self.alpha.shape[0]):
            outs = torch.stack([col[layer](h if layer == 0 else self.dropout(h), mask)
                                for col, h in zip(self.columns, hs)])        # (K, B, T, 2H)
            mixed = torch.einsum("kl,lbth->kbth", self.alpha[layer], outs)  # cross-stitch unit (Eq. 1)
            hs = list(mixed)
        return hs[self.index[task]]                                          # (B, T, 2H)

    def encode(self, task: str, text: Text) -> Encoding:
        states = self.states(task, text.tokens, text.mask, text.chars)      # (B, T, 2H)
        return Encoding(states, text.mask, pool=self.pool,
                        inspect={"cross_stitch_alpha": self.alpha.detach()})   # (L, K, K)

    def shared_parameters(self):
        # every column feeds every task through α, so all encoder weights are shared in effect
        yield from self.embedding.parameters()
        yield from self.columns.parameters()
        yield self.alpha

    def task_parameters(self, task: str):
        return self.heads[task].parameters()


def build(cfg, tasks: list[TaskSpec], vocab_size: int, vectors: Optional[torch.Tensor] = None,
          num_chars: int = 0) -> CrossStitchModel:
    m = cfg.model
    embedding = build_embedding(m, vocab_size, vectors, num_chars)
    return CrossStitchModel(embedding, tasks, m.encoder.hidden_dim, m.encoder.num_layers, m.encoder.dropout,
                            m.pooling, m.cross_stitch_init)


ARCHITECTURES = {"cross_stitch": (CrossStitchConfig, build)}
