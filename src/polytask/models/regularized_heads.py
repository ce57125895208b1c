"""Hard sharing whose task-specific output layers are tied by a prior (Ruder 2017 §4, §7):
block-sparse l1/l2 or l1/l∞ norms, a task-clustering prior, or the tensor-normal prior of Deep
Relationship / Multilinear Relationship Networks with learned task, class and feature covariances.

``model.head_regularizer`` picks the prior and ``model.head_regularizer_weight`` its weight. All
tasks need the same number of classes (the heads are stacked into one tensor W of shape (K, C, D)).
For ``tensor_normal`` the three covariances are refreshed every ``covariance_every`` training
steps by the flip-flop update and kept as buffers (checkpointed); the learned task covariance is
in ``TaskOutput.inspect["task_covariance"]``.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..modules import SentenceEncoder, build_encoder
from ..modules.embeddings import build_embedding
from ..training import regularizers as reg
from .outputs import TaskOutput, TaskSpec, classification_output

from dataclasses import dataclass, field
from typing import ClassVar, Literal, Optional

from ..config import ConfigError, ModelConfig

@dataclass
class RegularizedHeadsConfig(ModelConfig):
    """The prior on the stacked task layers and its weight."""

    kinds: ClassVar[tuple[str, ...]] = ("classification",)
    pairs: ClassVar[bool] = False

    head_regularizer: Literal["l1_l2", "l1_linf", "task_clustering", "tensor_normal"] = "l1_l2"
    head_regularizer_weight: float = 1e-3

PRIORS = ("l1_l2", "l1_linf", "task_clustering", "tensor_normal")


class RegularizedHeadsModel(nn.Module):
    def __init__(self, encoder: SentenceEncoder, tasks: list[TaskSpec], prior: str, weight: float,
                 dropout: float, covariance_every: int = 100):
        super().__init__()
        if prior not in PRIORS:
            raise ValueError(f"model.head_regularizer: unknown prior {prior!r} ({', '.join(PRIORS)})")
        sizes = {t.num_labels for t in tasks}
        if len(sizes) != 1 or any(t.tagging or t.pair for t in tasks):
            raise ValueError("regularized_heads stacks the task layers: every task must be single-text "
                             f"classification with the same number of classes (got {sorted(sizes)})")
        K, C, D = len(tasks), sizes.pop(), encoder.output_dim
        self.encoder, self.prior, self.weight = encoder, prior, weight
        self.names = [t.name for t in tasks]
        self.index = {n: i for i, n in enumerate(self.names)}
        self.weights = nn.Parameter(torch.randn(K, C, D) * (1.0 / D ** 0.5))   # W (K, C, D)
        self.biases = nn.Parameter(torch.zeros(K, C))
        self.dropout = nn.Dropout(dropout)
        self.covariance_every = covariance_every
        self.register_buffer("task_cov", torch.eye(K))
        self.register_buffer("class_cov", torch.eye(C))
        self.register_buffer("feature_cov", torch.eye(D))
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def penalty(self) -> torch.Tensor:
        W = self.weights
        if self.prior == "l1_l2":
            return reg.l1_l2_penalty(W)
        if self.prior == "l1_linf":
            return reg.l1_linf_penalty(W)
        if self.prior == "task_clustering":
            return reg.task_clustering_penalty(W)
        return reg.tensor_normal_penalty(W, self.task_cov, self.class_cov, self.feature_cov)

    def _refresh_covariances(self) -> None:
        with torch.no_grad():
            self.task_cov.copy_(reg.update_covariance(self.weights, 0, [self.class_cov, self.feature_cov]))
            self.class_cov.copy_(reg.update_covariance(self.weights, 1, [self.task_cov, self.feature_cov]))
            self.feature_cov.copy_(reg.update_covariance(self.weights, 2, [self.task_cov, self.class_cov]))

    def forward(self, batch) -> TaskOutput:
        k = self.index[batch.task]
        u = self.dropout(self.encoder(batch.tokens, batch.mask, batch.chars))      # (B, D)
        out = classification_output(u @ self.weights[k].t() + self.biases[k], batch.labels)
        if out.loss is not None and self.weight:
            if self.prior == "tensor_normal" and self.training:
                self.calls += 1
                if int(self.calls) % self.covariance_every == 0:
                    self._refresh_covariances()
            penalty = self.penalty()
            out.loss = out.loss + self.weight * penalty
            out.parts["head_prior"] = penalty.detach()
        out.inspect["task_covariance"] = self.task_cov.detach()
        return out

    def shared_parameters(self):
        yield from self.encoder.parameters()
        yield self.weights          # the stacked heads are tied by the prior: one shared tensor
        yield self.biases

    def task_parameters(self, task: str):
        return iter(())


def build(cfg, tasks: list[TaskSpec], vocab_size: int, vectors: Optional[torch.Tensor] = None,
          num_chars: int = 0) -> RegularizedHeadsModel:
    m = cfg.model
    embedding = build_embedding(m, vocab_size, vectors, num_chars)
    encoder = SentenceEncoder(embedding, build_encoder(m.encoder, embedding.output_dim), m.pooling)
    return RegularizedHeadsModel(encoder, tasks, m.head_regularizer, m.head_regularizer_weight, m.dropout)


ARCHITECTURES = {"regularized_heads": (RegularizedHeadsConfig, build)}
