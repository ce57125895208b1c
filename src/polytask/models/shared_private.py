"""Shared-private (SP-MTL) and adversarial shared-private (ASP-MTL) multi-task learning.

Liu, Qiu, Huang, ACL 2017, "Adversarial Multi-task Learning for Text Classification".

SP-MTL (§3, Fig. 1b): a shared encoder s = E_s(x) and a private encoder h^k = E_k(x) per task;
the task layer reads both (Eq. 9)::

    ŷ^k = softmax(W^k [s; h^k] + b^k)

ASP-MTL (§4) adds two terms to the loss (Eq. 19), L = L_task + λ L_adv + γ L_diff:

* L_adv (Eq. 13-14): a task discriminator D(s) = softmax(U s + c) predicts which task a
  sentence came from; a gradient reversal layer between s and D makes the shared encoder
  maximise what D minimises, so s carries no task-specific signal.
* L_diff (Eq. 15): ||Sᵀ H^k||_F², with S and H^k the batch's shared and private feature
  matrices, pushes the private space to be orthogonal to the shared one (scaled as described in
  :func:`difference_loss`).

The word embedding table is shared by the shared and private encoders.

On a pretrained Transformer (``model.pretrained``, SP-MTL only) both encoders are one model: the
shared encoder E_s is the pretrained model with its adapters bypassed (frozen, or fine-tuned by
every task: ``model.freeze``), and the private encoder E_k of task k is the same model read
through task k's own LoRA adapter (``model.adapter`` with ``per_task: true``, required)::

    s = E(x)                 h^k = E_{W + ΔW^k}(x)         ŷ^k = softmax(W^k [s; h^k] + b^k)

so the private part costs r (in + out) parameters per adapted layer and task, not a second
Transformer. A text is encoded twice per step (once without adapters, once through the task's).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError
from ..modules import GradientReversal, SentenceEncoder, build_encoder
from ..modules.embeddings import build_embedding
from .contract import Encoding, MultiTaskModel, TaskSpec, Text, task_head
from .pretrained_encoder import PretrainedModelConfig, adapter_names, build_pretrained_encoder


@dataclass
class SharedPrivateConfig(PretrainedModelConfig):
    """SP-MTL: a shared and a private encoder per task; sentence-level tasks. On a pretrained
    encoder the private encoders are per-task LoRA adapters (module docstring)."""

    kinds: ClassVar[tuple[str, ...]] = ("classification", "pair_classification", "regression")
    pretrained_kinds: ClassVar[tuple[str, ...]] = kinds

    def check(self, tasks, where: str) -> None:
        super().check(tasks, where)
        if self.pretrained and (self.adapter is None or not self.adapter.per_task):
            raise ConfigError(f"{where}.adapter: the architecture {self.architecture!r} on a pretrained encoder takes "
                              "its private encoders as per-task LoRA adapters: set model.adapter: {type: lora, "
                              "per_task: true}")


@dataclass
class AdversarialSharedPrivateConfig(SharedPrivateConfig):
    """ASP-MTL: λ (``adversarial_weight``) and γ (``orthogonality_weight``) of Eq. 19."""

    limits: ClassVar[dict[str, str]] = {"adversarial_weight": ">= 0", "orthogonality_weight": ">= 0"}

    adversarial_weight: float = 0.05
    orthogonality_weight: float = 0.01

    def check(self, tasks, where: str) -> None:
        if self.pretrained:
            raise ConfigError(f"{where}.pretrained: the architecture {self.architecture!r} does not run on a "
                              "pretrained encoder (its discriminator and orthogonality terms are defined for "
                              "separate shared and private encoders); use shared_private, whose private part "
                              "is per-task LoRA adapters there")
        super().check(tasks, where)


class SharedPrivateModel(MultiTaskModel):
    """SP-MTL: a text's representation is its shared and private states side by side."""

    def __init__(self, shared: SentenceEncoder, private: dict[str, SentenceEncoder],
                 tasks: list[TaskSpec], dropout: float):
        super().__init__(tasks)
        self.shared = shared
        self.private = nn.ModuleDict(private)
        width = shared.output_dim + next(iter(private.values())).output_dim
        self.heads = nn.ModuleDict({t.name: task_head(t, width, dropout) for t in tasks})

    def encode(self, task: str, text: Text) -> Encoding:
        s = self.shared.states(text.tokens, text.mask, text.chars)            # (B, T, Hs)
        h = self.private[task].states(text.tokens, text.mask, text.chars)     # (B, T, Hp)
        Hs, private = s.shape[-1], self.private[task]

        def pool(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # [s; h^k] (Eq. 9)
            return torch.cat([self.shared.pool(states[..., :Hs], mask), private.pool(states[..., Hs:], mask)], dim=-1)
        return Encoding(torch.cat([s, h], dim=-1), text.mask, pool=pool)

    def shared_parameters(self):
        return self.shared.parameters()

    def task_parameters(self, task: str):
        yield from self.heads[task].parameters()
        shared_ids = {id(p) for p in self.shared.parameters()}
        for p in self.private[task].parameters():
            if id(p) not in shared_ids:   # the embedding table is shared
                yield p


class PretrainedSharedPrivateModel(MultiTaskModel):
    """SP-MTL on one pretrained encoder: s from the model without adapters, h^k through task k's
    LoRA adapter, the head reading [s; h^k] (Eq. 9)."""

    def __init__(self, encoder: nn.Module, tasks: list[TaskSpec], dropout: float):
        super().__init__(tasks)
        self.encoder = encoder
        self.heads = nn.ModuleDict({t.name: task_head(t, 2 * encoder.output_dim, dropout, encoder.cross_encodes_pairs)
                                    for t in tasks})

    def encode(self, task: str, text: Text) -> Encoding:
        with self.encoder.without_adapters():
            s = self.encoder.text_states(text)                                # (B, T, H) shared: E_s
        self.encoder.select(task)
        h = self.encoder.text_states(text)                                    # (B, T, H) private: E_k
        H, pool = s.shape[-1], self.encoder.pool

        def pooled(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # [s; h^k] (Eq. 9)
            return torch.cat([pool(states[..., :H], mask), pool(states[..., H:], mask)], dim=-1)
        return Encoding(torch.cat([s, h], dim=-1), text.mask, pool=pooled)

    def shared_parameters(self):
        private = {id(p) for p in self.encoder.adapter_parameters()}
        return (p for p in self.encoder.parameters() if id(p) not in private)

    def task_parameters(self, task: str):
        yield from self.heads[task].parameters()
        yield from self.encoder.adapter_parameters(task)


def difference_loss(shared: torch.Tensor, private: torch.Tensor) -> torch.Tensor:
    """L_diff = ||Sᵀ H||_F² (Eq. 15) on centred, row-normalised features, averaged over the
    entries of Sᵀ H, as in the difference loss of Bousmalis et al. 2016 (domain separation).

    The raw sum grows with the batch and feature sizes, and max-pooled LSTM features are mostly
    positive, so unscaled it is hundreds of times the task loss (measured: it slowed ASP-MTL's
    first 1000 steps on FDU-MTL to 56% dev accuracy against 73% for FS-MTL).
    """
    s = F.normalize(shared - shared.mean(0, keepdim=True), dim=1)              # (B, Hs)
    h = F.normalize(private - private.mean(0, keepdim=True), dim=1)            # (B, Hp)
    return (s.transpose(0, 1) @ h).pow(2).mean()


class AdversarialSharedPrivateModel(MultiTaskModel):
    """ASP-MTL: SP-MTL + gradient-reversed task discriminator + orthogonality penalty."""

    def __init__(self, sp: SharedPrivateModel, tasks: list[TaskSpec], adversarial_weight: float,
                 orthogonality_weight: float):
        super().__init__(tasks)
        self.sp = sp
        self.task_index = {t.name: i for i, t in enumerate(tasks)}
        self.reverse = GradientReversal(1.0)
        self.discriminator = nn.Linear(sp.shared.output_dim, len(tasks))
        self.adversarial_weight = adversarial_weight
        self.orthogonality_weight = orthogonality_weight

    def encode(self, task: str, text: Text) -> Encoding:
        encoding = self.sp.encode(task, text)
        Hs = self.sp.shared.output_dim

        def losses() -> dict[str, tuple[float, torch.Tensor]]:
            u = encoding.sentence()
            s, h = u[:, :Hs], u[:, Hs:]                                          # (B, Hs), (B, Hp)
            target = torch.full((s.shape[0],), self.task_index[task], dtype=torch.long, device=s.device)
            adv = F.cross_entropy(self.discriminator(self.reverse(s)), target)   # Eq. 13-14
            return {"adversarial": (self.adversarial_weight, adv),
                    "diff": (self.orthogonality_weight, difference_loss(s, h))}  # Eq. 15
        encoding.losses = losses
        return encoding

    def head(self, task: str):
        return self.sp.heads[task]

    def shared_parameters(self):
        yield from self.sp.shared_parameters()
        yield from self.discriminator.parameters()

    def task_parameters(self, task: str):
        return self.sp.task_parameters(task)


def _build_sp(cfg, tasks: list[TaskSpec], vocab_size: int, vectors: Optional[torch.Tensor],
              num_chars: int = 0) -> SharedPrivateModel:
    m = cfg.model
    embedding = build_embedding(m, vocab_size, vectors, num_chars)
    shared = SentenceEncoder(embedding, build_encoder(m.encoder, embedding.output_dim), m.pooling)
    private = {t.name: SentenceEncoder(embedding, build_encoder(m.encoder, embedding.output_dim),
                                       m.pooling) for t in tasks}
    return SharedPrivateModel(shared, private, tasks, m.dropout)


def build_sp(cfg, tasks: list[TaskSpec], vocab_size: int, vectors: Optional[torch.Tensor] = None,
             num_chars: int = 0) -> MultiTaskModel:
    m = cfg.model
    if m.pretrained:
        return PretrainedSharedPrivateModel(build_pretrained_encoder(m, adapter_names(m, tasks)), tasks, m.dropout)
    return _build_sp(cfg, tasks, vocab_size, vectors, num_chars)


def build_asp(cfg, tasks: list[TaskSpec], vocab_size: int, vectors: Optional[torch.Tensor] = None,
              num_chars: int = 0) -> AdversarialSharedPrivateModel:
    return AdversarialSharedPrivateModel(_build_sp(cfg, tasks, vocab_size, vectors, num_chars),
                                         tasks, cfg.model.adversarial_weight,
                                         cfg.model.orthogonality_weight)


ARCHITECTURES = {"shared_private": (SharedPrivateConfig, build_sp),
                 "adversarial_shared_private": (AdversarialSharedPrivateConfig, build_asp)}
