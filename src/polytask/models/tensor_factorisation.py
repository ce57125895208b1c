"""Tensor factorisation of the task-specific layers (DMTRL; Yang & Hospedales, ICLR 2017, "Deep
multi-task representation learning: a tensor factorisation approach", §3).

The K tasks' output layers, stacked into W ∈ R^{K×C×D}, are never stored: they are generated from
a factorisation whose parts are learned, so tasks share structure through the common factors.

* Tucker (Eq. 4): W = G ×₁ U_K ×₂ U_C ×₃ U_D with a core G ∈ R^{r_K×r_C×r_D}.
* Tensor-Train (Eq. 6): W[k, c, d] = A[k] · B[:, c, :] · C[:, d], cores A ∈ R^{K×r₁},
  B ∈ R^{r₁×C×r₂}, C ∈ R^{r₂×D}.

Ranks come from ``model.factorisation_ranks`` (Tucker: three values; TT: two). The encoder below
the heads is shared as in hard sharing.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..modules import SentenceEncoder, build_encoder
from ..modules.embeddings import build_embedding
from .outputs import TaskOutput, TaskSpec, classification_output

from dataclasses import dataclass, field
from typing import ClassVar, Literal, Optional

from ..config import ConfigError, ModelConfig

@dataclass
class FactorisedHeadsConfig(ModelConfig):
    """Ranks of the factorisation: tucker [task, class, feature]; tensor train [r1, r2]."""

    kinds: ClassVar[tuple[str, ...]] = ("classification",)
    pairs: ClassVar[bool] = False

    factorisation_ranks: Optional[list[int]] = None


class TuckerHeads(nn.Module):
    def __init__(self, K: int, C: int, D: int, ranks: list[int]):
        super().__init__()
        if len(ranks) != 3:
            raise ValueError(f"model.factorisation_ranks: Tucker needs three ranks (task, class, feature), got {ranks}")
        rk, rc, rd = ranks
        self.core = nn.Parameter(torch.randn(rk, rc, rd) / (rk * rc * rd) ** 0.25)
        self.u_task = nn.Parameter(torch.randn(K, rk) / rk ** 0.5)
        self.u_class = nn.Parameter(torch.randn(C, rc) / rc ** 0.5)
        self.u_feature = nn.Parameter(torch.randn(D, rd) / D ** 0.5)

    def forward(self) -> torch.Tensor:
        return torch.einsum("abc,ka,lb,dc->kld", self.core, self.u_task, self.u_class, self.u_feature)


class TensorTrainHeads(nn.Module):
    def __init__(self, K: int, C: int, D: int, ranks: list[int]):
        super().__init__()
        if len(ranks) != 2:
            raise ValueError(f"model.factorisation_ranks: Tensor-Train needs two ranks, got {ranks}")
        r1, r2 = ranks
        self.a = nn.Parameter(torch.randn(K, r1) / r1 ** 0.5)
        self.b = nn.Parameter(torch.randn(r1, C, r2) / r2 ** 0.5)
        self.c = nn.Parameter(torch.randn(r2, D) / D ** 0.5)

    def forward(self) -> torch.Tensor:
        return torch.einsum("ka,alb,bd->kld", self.a, self.b, self.c)


class FactorisedHeadsModel(nn.Module):
    def __init__(self, encoder: SentenceEncoder, tasks: list[TaskSpec], kind: str, ranks: list[int],
                 dropout: float):
        super().__init__()
        sizes = {t.num_labels for t in tasks}
        if len(sizes) != 1 or any(t.tagging or t.pair for t in tasks):
            raise ValueError("tensor factorisation stacks the task layers: every task must be single-text "
                             f"classification with the same number of classes (got {sorted(sizes)})")
        K, C, D = len(tasks), sizes.pop(), encoder.output_dim
        self.encoder = encoder
        self.heads = (TuckerHeads if kind == "tucker" else TensorTrainHeads)(K, C, D, ranks)
        self.biases = nn.Parameter(torch.zeros(K, C))
        self.index = {t.name: i for i, t in enumerate(tasks)}
        self.dropout = nn.Dropout(dropout)

    def forward(self, batch) -> TaskOutput:
        k = self.index[batch.task]
        u = self.dropout(self.encoder(batch.tokens, batch.mask, batch.chars))      # (B, D)
        W = self.heads()                                                         # (K, C, D)
        return classification_output(u @ W[k].t() + self.biases[k], batch.labels)

    def shared_parameters(self):
        yield from self.encoder.parameters()
        yield from self.heads.parameters()   # every factor serves every task
        yield self.biases

    def task_parameters(self, task: str):
        return iter(())


def _builder(kind: str):
    def build(cfg, tasks: list[TaskSpec], vocab_size: int, vectors: Optional[torch.Tensor] = None,
              num_chars: int = 0) -> FactorisedHeadsModel:
        m = cfg.model
        embedding = build_embedding(m, vocab_size, vectors, num_chars)
        encoder = SentenceEncoder(embedding, build_encoder(m.encoder, embedding.output_dim), m.pooling)
        ranks = m.factorisation_ranks or ([4, 2, 32] if kind == "tucker" else [4, 8])
        return FactorisedHeadsModel(encoder, tasks, kind, ranks, m.dropout)
    return build


build_tucker = _builder("tucker")
build_tensor_train = _builder("tensor_train")


ARCHITECTURES = {"tucker_heads": (FactorisedHeadsConfig, build_tucker),
                 "tensor_train_heads": (FactorisedHeadsConfig, build_tensor_train)}
