"""Hard sharing whose task-specific output layers are tied by a prior (Ruder 2017 §4, §7):
block-sparse l1/l2 or l1/l∞ norms, a task-clustering prior, or the tensor-normal prior of Deep
Relationship / Multilinear Relationship Networks with learned task, class and feature covariances.

    u = pool(Encoder(Embed(x)))             shared by all tasks          (B, D)
    ŷ = softmax(W[k] u + b[k])              task k, W stacked (K, C, D)
    L = L_task + λ Ω(W)                     Ω: the prior (:mod:`polytask.models.priors`)

``model.head_regularizer`` picks the prior and ``model.head_regularizer_weight`` its weight λ. All
tasks need the same number of classes (the heads are stacked into one tensor W of shape (K, C, D)).
For ``tensor_normal`` the three covariances are refreshed every ``covariance_every`` training
steps by the flip-flop update and kept as buffers (checkpointed); the learned task covariance is
in ``TaskOutput.inspect["task_covariance"]``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar, Literal, Optional

import torch
from torch import nn

from ..config import ModelConfig
from ..modules import SentenceEncoder, build_encoder
from ..modules.embeddings import build_embedding
from . import priors
from .contract import Encoding, MultiTaskModel, TaskSpec, Text


@dataclass
class RegularizedHeadsConfig(ModelConfig):
    """The prior on the stacked task layers and its weight."""

    kinds: ClassVar[tuple[str, ...]] = ("classification",)
    pairs: ClassVar[bool] = False
    limits: ClassVar[dict[str, str]] = {"head_regularizer_weight": ">= 0"}

    head_regularizer: Literal["l1_l2", "l1_linf", "task_clustering", "tensor_normal"] = "l1_l2"
    head_regularizer_weight: float = 1e-3


# the priors that read W alone; tensor_normal also reads the learned covariances
FIXED_PRIORS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "l1_l2": priors.l1_l2_penalty,
    "l1_linf": priors.l1_linf_penalty,
    "task_clustering": priors.task_clustering_penalty,
}


class RegularizedHeadsModel(MultiTaskModel):
    """One shared encoder; the K task layers are one tensor W (K, C, D) under a prior."""

    def __init__(self, encoder: SentenceEncoder, tasks: list[TaskSpec], prior: str, weight: float,
                 dropout: float, covariance_every: int = 100):
        super().__init__(tasks)
        sizes = {t.num_labels for t in tasks}
        if len(sizes) != 1:
            raise ValueError("regularized_heads stacks the task layers: every task must have the same "
                             f"number of classes (got {sorted(sizes)})")
        K, C, D = len(tasks), sizes.pop(), encoder.output_dim
        self.encoder, self.prior, self.weight = encoder, prior, weight
        self.index = {t.name: i for i, t in enumerate(tasks)}
        self.weights = nn.Parameter(torch.randn(K, C, D) * (1.0 / D ** 0.5))   # W (K, C, D)
        self.biases = nn.Parameter(torch.zeros(K, C))
        self.dropout = nn.Dropout(dropout)
        self.covariance_every = covariance_every
        self.register_buffer("task_cov", torch.eye(K))
        self.register_buffer("class_cov", torch.eye(C))
        self.register_buffer("feature_cov", torch.eye(D))
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def penalty(self) -> torch.Tensor:
        """Ω(W) of the chosen prior."""
        if self.prior in FIXED_PRIORS:
            return FIXED_PRIORS[self.prior](self.weights)
        return priors.tensor_normal_penalty(self.weights, self.task_cov, self.class_cov, self.feature_cov)

    def _refresh_covariances(self) -> None:
        """One flip-flop round (Long et al. 2017, Eq. 7): Ω_K, then Ω_C, then Ω_D given the others."""
        with torch.no_grad():
            self.task_cov.copy_(priors.update_covariance(self.weights, 0, [self.class_cov, self.feature_cov]))
            self.class_cov.copy_(priors.update_covariance(self.weights, 1, [self.task_cov, self.feature_cov]))
            self.feature_cov.copy_(priors.update_covariance(self.weights, 2, [self.task_cov, self.class_cov]))

    def encode(self, task: str, text: Text) -> Encoding:
        states = self.encoder.states(text.tokens, text.mask, text.chars)       # (B, T, D), every task
        return Encoding(states, text.mask, pool=self.encoder.pool, losses=self._prior_loss,
                        inspect={"task_covariance": self.task_cov.detach()})   # (K, K)

    def _prior_loss(self) -> dict[str, tuple[float, torch.Tensor]]:
        """λ Ω(W), for a labelled batch; while training, the tensor-normal prior counts the batches
        and refreshes its covariances every ``covariance_every``."""
        if not self.weight:
            return {}
        if self.prior == "tensor_normal" and self.training:
            self.calls += 1
            if int(self.calls) % self.covariance_every == 0:
                self._refresh_covariances()
        return {"head_prior": (self.weight, self.penalty())}

    def head(self, task: str) -> Callable[[torch.Tensor], torch.Tensor]:
        k = self.index[task]

        def logits(u: torch.Tensor) -> torch.Tensor:                           # (B, D) -> (B, C)
            return self.dropout(u) @ self.weights[k].t() + self.biases[k]
        return logits

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
