"""Sluice networks (Ruder, Bingel, Augenstein, Søgaard, AAAI 2019, "Latent multi-task
architecture learning", §2).

Every task k has its own stack of BiLSTM layers, and each layer's output is split into two
subspaces G_{k,1}, G_{k,2} (its forward and backward halves). After layer ℓ a learned matrix α^ℓ
of size 2K × 2K mixes all tasks' subspaces (Eq. 2, a generalisation of cross-stitch units):

    [G̃_{1,1}; …; G̃_{K,2}] = α^ℓ [G_{1,1}; …; G_{K,2}]

and the next layer of task k reads [G̃_{k,1}; G̃_{k,2}]. The representation a task's head reads is
a learned mixture of all its layers, Σ_ℓ β_{k,ℓ} h_k^ℓ (the "β" layer weights, §2.2, softmax-
normalised here). An orthogonality penalty Σ ||G_{k,1}ᵀ G_{k,2}||_F² (Eq. 3) pushes the two
subspaces of each task layer apart. It is computed scale-free, by :func:`subspace_overlap`: on the
real tokens of the batch, the mean squared correlation between the units of the two subspaces, in
[0, 1]. The raw Frobenius norm grows with the square of the number of tokens: on FDU-MTL batches
(32 reviews × ~200 tokens, 16 tasks) it was 1,700 at initialisation, 25× the task loss even at
weight 0.01, and the model never left chance accuracy. The penalty is computed only when the
loss is (a batch with labels). α and β are shown in ``TaskOutput.inspect`` (``sluice_alpha``,
``sluice_beta``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar, Optional

import torch
from torch import nn

from ..config import ModelConfig
from ..modules import LSTMEncoder, Pooling
from ..modules.embeddings import build_embedding
from .contract import Encoding, MultiTaskModel, TaskSpec, Text, task_head


@dataclass
class SluiceConfig(ModelConfig):
    """The initial diagonal of each α and the weight of the subspace orthogonality penalty (mean
    squared correlation of the two subspaces' units, summed over tasks and layers)."""

    encoders: ClassVar[tuple[str, ...]] = ("bilstm",)
    limits: ClassVar[dict[str, str]] = {"cross_stitch_init": "[0, 1]", "sluice_orthogonality": ">= 0"}

    cross_stitch_init: float = 0.9
    sluice_orthogonality: float = 0.1


def subspace_overlap(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """||Āᵀ B̄||_F² / (D_a D_b) for token states a (N, D_a) and b (N, D_b) whose columns are centred
    and scaled to unit length: the mean squared correlation between a unit of a and a unit of b
    over the N tokens. 0 when the subspaces are uncorrelated, 1 when every pair is collinear."""
    a = a - a.mean(0, keepdim=True)
    b = b - b.mean(0, keepdim=True)
    a = a / (a.norm(dim=0, keepdim=True) + eps)
    b = b / (b.norm(dim=0, keepdim=True) + eps)
    return (a.transpose(0, 1) @ b).pow(2).mean()


class SluiceNetwork(MultiTaskModel):
    """K columns of BiLSTM layers; α^ℓ (2K × 2K) mixes their subspaces, β_k mixes task k's layers."""

    def __init__(self, embedding: nn.Module, tasks: list[TaskSpec], hidden_dim: int, num_layers: int,
                 dropout: float, pooling: str, orthogonality: float, diagonal: float = 0.9):
        super().__init__(tasks)
        self.embedding = embedding
        self.names = [t.name for t in tasks]
        self.index = {n: i for i, n in enumerate(self.names)}
        K, S = len(tasks), 2 * len(tasks)
        self.columns = nn.ModuleList(
            nn.ModuleList(LSTMEncoder(embedding.output_dim if layer == 0 else 2 * hidden_dim, hidden_dim)
                          for layer in range(num_layers))
            for _ in range(K))
        off = (1.0 - diagonal) / (S - 1) if S > 1 else 0.0
        init = torch.full((S, S), off) + torch.eye(S) * (diagonal - off)
        self.alpha = nn.Parameter(init.repeat(num_layers, 1, 1))               # (L, 2K, 2K)
        self.beta = nn.Parameter(torch.zeros(K, num_layers))                   # softmax over layers
        self.orthogonality = orthogonality
        self.dropout = nn.Dropout(dropout)
        self.pool = Pooling(pooling, bidirectional=False)
        self.heads = nn.ModuleDict({t.name: task_head(t, 2 * hidden_dim, dropout) for t in tasks})

    def states(self, task: str, tokens, mask, chars=None) -> tuple[torch.Tensor, Callable[[], torch.Tensor]]:
        """Task ``task``'s β-mixed states (B, T, 2H), and the subspace orthogonality penalty (Eq. 3)
        of every task's layers on this batch, computed when called."""
        x = self.embedding(tokens) if chars is None else self.embedding(tokens, chars)   # (B, T, E)
        K = len(self.columns)
        hs = [x] * K
        per_layer, layer_subspaces = [], []
        for layer in range(self.alpha.shape[0]):
            outs = [col[layer](h if layer == 0 else self.dropout(h), mask) for col, h in zip(self.columns, hs)]
            W = outs[0].shape[-1]                                            # 2H
            subspaces = torch.stack([half for o in outs for half in o.split(W // 2, dim=-1)])  # (2K, B, T, W/2)
            layer_subspaces.append(subspaces)
            mixed = torch.einsum("st,tbhw->sbhw", self.alpha[layer], subspaces)       # Eq. 2
            hs = [torch.cat([mixed[2 * k], mixed[2 * k + 1]], dim=-1) for k in range(K)]
            per_layer.append(hs[self.index[task]])
        beta = torch.softmax(self.beta[self.index[task]], dim=0)             # (L,)

        def penalty() -> torch.Tensor:
            total = x.new_zeros(())
            for subspaces in layer_subspaces:
                flat = subspaces[:, mask]                                    # (2K, N, W/2) real tokens
                total = total + sum(subspace_overlap(flat[2 * k], flat[2 * k + 1]) for k in range(K))
            return total
        return torch.einsum("l,lbth->bth", beta, torch.stack(per_layer)), penalty   # (B, T, 2H)

    def encode(self, task: str, text: Text) -> Encoding:
        states, penalty = self.states(task, text.tokens, text.mask, text.chars)   # (B, T, 2H)

        def losses() -> dict[str, tuple[float, torch.Tensor]]:
            return {"subspace_orthogonality": (self.orthogonality, penalty())}
        return Encoding(states, text.mask, pool=self.pool, losses=losses if self.orthogonality else None,
                        inspect={"sluice_alpha": self.alpha.detach(),                      # (L, 2K, 2K)
                                 "sluice_beta": lambda: torch.softmax(self.beta.detach(), dim=1)})  # (K, L)

    def shared_parameters(self):
        yield from self.embedding.parameters()
        yield from self.columns.parameters()
        yield self.alpha
        yield self.beta

    def task_parameters(self, task: str):
        return self.heads[task].parameters()


def build(cfg, tasks: list[TaskSpec], vocab_size: int, vectors: Optional[torch.Tensor] = None,
          num_chars: int = 0) -> SluiceNetwork:
    m = cfg.model
    embedding = build_embedding(m, vocab_size, vectors, num_chars)
    return SluiceNetwork(embedding, tasks, m.encoder.hidden_dim, m.encoder.num_layers, m.encoder.dropout,
                         m.pooling, m.sluice_orthogonality, m.cross_stitch_init)


ARCHITECTURES = {"sluice": (SluiceConfig, build)}
