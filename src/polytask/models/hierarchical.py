"""Hierarchical multi-task learning: supervise each task at its own depth of a shared stack.

Low supervision (Søgaard & Goldberg, ACL 2016, "Deep multi-task learning with low level tasks
supervised at lower layers"): a stacked BiLSTM is shared by all tasks, and task k reads the states
of layer ℓ_k (``model.task_layers``), e.g. POS at layer 1 and chunking at layer 3. A task only runs
the layers up to its own.

Joint many-task model (Hashimoto, Xiong, Tsuruoka, Socher, EMNLP 2017, §2): each layer also reads
(shortcut connections) the word vectors, and the predicted label distribution of the task below as
an embedding, ``y_t^{(k-1)} = Σ_c p(c | h_t^{(k-1)}) l_c`` (Eq. 2-3), so that higher tasks build on
lower tasks' decisions. Successive regularization (§3, Eq. 5-6) adds δ ||θ_low − θ'_low||² to a
higher task's loss: θ_low are the parameters that lower tasks use and θ' their values when a
lower task last trained, so a higher task cannot wreck what the lower ones learned.

A task reads the states of its own layer: per word for tagging, pooled (``model.pooling``) into a
sentence vector for sentence tasks. Both models read single texts (their config classes refuse
sentence-pair tasks). B batch, T time, D word vector width, H hidden width per direction.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Optional

import torch
from torch import nn

from ..config import ConfigError, ModelConfig
from ..modules import LSTMEncoder, Pooling
from ..modules.embeddings import build_embedding
from .contract import Encoding, MultiTaskModel, TaskSpec, Text, task_head


@dataclass
class LowSupervisionConfig(ModelConfig):
    """``task_layers``: task -> the (1-based) layer that supervises it; the top layer by default."""

    kinds: ClassVar[tuple[str, ...]] = ("classification", "regression", "tagging")
    pairs: ClassVar[bool] = False
    encoders: ClassVar[tuple[str, ...]] = ("bilstm",)
    limits: ClassVar[dict[str, str]] = {"task_layers.*": ">= 1"}

    task_layers: dict[str, int] = field(default_factory=dict)

    def check(self, tasks, where: str) -> None:
        super().check(tasks, where)
        names = {t.name for t in tasks}
        for name, layer in self.task_layers.items():
            if name not in names:
                raise ConfigError(f"{where}.task_layers.{name}: unknown task (tasks: {', '.join(sorted(names))})")
            if not 1 <= layer <= self.encoder.num_layers:
                raise ConfigError(f"{where}.task_layers.{name}: {layer} is not a layer between 1 and "
                                  f"model.encoder.num_layers={self.encoder.num_layers}")


@dataclass
class JointManyTaskConfig(LowSupervisionConfig):
    """Plus the width of the lower tasks' label embeddings and δ of successive regularization."""

    limits: ClassVar[dict[str, str]] = {"label_embedding_dim": ">= 1", "successive_regularization": ">= 0"}

    label_embedding_dim: int = 32
    successive_regularization: float = 0.0

    def check(self, tasks, where: str) -> None:
        super().check(tasks, where)
        kinds = {t.name: t.type for t in tasks}
        below: dict[int, str] = {}
        for name, layer in self.task_layers.items():
            if layer >= self.encoder.num_layers:
                continue
            if kinds[name] != "tagging":
                raise ConfigError(f"{where}.task_layers.{name}: only tagging tasks can sit below the top layer "
                                  "(their per-token labels feed the next layer)")
            if layer in below:
                raise ConfigError(f"{where}.task_layers: {below[layer]} and {name} share layer {layer}; the joint "
                                  "many-task model feeds one task's labels upward")
            below[layer] = name


class LowSupervisionModel(MultiTaskModel):
    """Stacked BiLSTM shared by all tasks; task k is supervised at layer ``layers[k]``."""

    def __init__(self, embedding: nn.Module, hidden_dim: int, num_layers: int, dropout: float,
                 tasks: list[TaskSpec], layers: dict[str, int], pooling: str = "max"):
        super().__init__(tasks)
        self.embedding = embedding
        width = embedding.output_dim
        self.stack = nn.ModuleList()
        for _ in range(num_layers):
            self.stack.append(LSTMEncoder(width, hidden_dim, bidirectional=True))
            width = 2 * hidden_dim
        self.dropout = nn.Dropout(dropout)
        self.pool = Pooling(pooling, bidirectional=True)
        self.heads = nn.ModuleDict({t.name: task_head(t, width, dropout) for t in tasks})
        self.layers = layers

    def encode(self, task: str, text: Text) -> Encoding:
        x = self.embedding(text.tokens) if text.chars is None else self.embedding(text.tokens, text.chars)
        h = x                                                              # (B, T, D)
        for layer in self.stack[: self.layers[task]]:                      # only the layers up to ℓ_k
            h = layer(self.dropout(h) if h is not x else h, text.mask)     # (B, T, 2H)
        return Encoding(h, text.mask, pool=self.pool)

    def shared_parameters(self):
        yield from self.embedding.parameters()
        yield from self.stack.parameters()

    def task_parameters(self, task: str):
        return self.heads[task].parameters()


class JointManyTaskModel(MultiTaskModel):
    """Hashimoto et al. 2017: shortcut word vectors + label embeddings of the task below."""

    def __init__(self, embedding: nn.Module, hidden_dim: int, num_layers: int, dropout: float,
                 tasks: list[TaskSpec], layers: dict[str, int], label_dim: int, delta: float,
                 pooling: str = "max"):
        super().__init__(tasks)
        self.embedding = embedding
        self.layers = layers
        # the task that labels each layer below the top (one per layer, a tagging task: checked by
        # JointManyTaskConfig); its predictions feed the layer above
        self.layer_task = {layer: name for name, layer in layers.items() if layer < num_layers}
        num_labels = {t.name: t.num_labels for t in tasks}
        D = embedding.output_dim
        self.label_embeddings = nn.ModuleDict()
        self.stack = nn.ModuleList()
        for k in range(1, num_layers + 1):
            width = D if k == 1 else D + 2 * hidden_dim
            below = self.layer_task.get(k - 1)
            if below is not None:
                self.label_embeddings[below] = nn.Linear(num_labels[below], label_dim, bias=False)
                width += label_dim
            self.stack.append(LSTMEncoder(width, hidden_dim, bidirectional=True))
        self.dropout = nn.Dropout(dropout)
        self.pool = Pooling(pooling, bidirectional=True)
        self.heads = nn.ModuleDict({t.name: task_head(t, 2 * hidden_dim, dropout) for t in tasks})
        self.delta = delta
        # θ' for successive regularization: a copy of the parameters lower tasks use, taken each
        # time a task at that layer trains; buffers, so they are checkpointed with the weights
        for k in sorted(self.layer_task):
            for i, p in enumerate(self._lower_parameters(k + 1)):
                self.register_buffer(f"anchor_{k}_{i}", p.detach().clone())

    def _lower_parameters(self, layer: int) -> list[nn.Parameter]:
        """Parameters that the tasks below ``layer`` use: embeddings, layers and heads below it."""
        params = list(self.embedding.parameters())
        for k in range(1, layer):
            params += list(self.stack[k - 1].parameters())
            if k in self.layer_task:
                params += list(self.heads[self.layer_task[k]].parameters())
            below = self.layer_task.get(k - 1)
            if below is not None:
                params += list(self.label_embeddings[below].parameters())
        return params

    def encode(self, task: str, text: Text) -> Encoding:
        top = self.layers[task]
        x = self.embedding(text.tokens) if text.chars is None else self.embedding(text.tokens, text.chars)
        h: Optional[torch.Tensor] = None                                   # x: (B, T, D)
        for k in range(1, top + 1):
            parts = [x] if h is None else [x, h]                           # shortcut: word vectors
            below = self.layer_task.get(k - 1)
            if below is not None:                                          # Eq. 2-3: label embedding
                probs = torch.softmax(self.heads[below](h), dim=-1)        # (B, T, C_below)
                parts.append(self.label_embeddings[below](probs))
            h = self.stack[k - 1](torch.cat(parts, dim=-1), text.mask)     # (B, T, 2H)
            if k < top:
                h = self.dropout(h)

        def losses() -> dict[str, tuple[float, torch.Tensor]]:
            return self._successive_regularization(top) if self.training else {}
        return Encoding(h, text.mask, pool=self.pool, losses=losses)

    def _successive_regularization(self, top: int) -> dict[str, tuple[float, torch.Tensor]]:
        """δ ||θ_low − θ'_low||² (§3, Eq. 5-6) for a task at layer ``top`` on a training batch;
        a task that labels a layer then makes the current parameters θ' for the tasks above."""
        terms = {}
        lower = [k for k in self.layer_task if k < top]
        if self.delta and lower:
            k = max(lower)       # the closest lower task's anchor covers everything below it
            penalty = sum((p - getattr(self, f"anchor_{k}_{i}")).pow(2).sum()
                          for i, p in enumerate(self._lower_parameters(k + 1)))
            terms["successive_reg"] = (self.delta, penalty)
        if top in self.layer_task:   # this task now defines θ' for the layers it uses
            with torch.no_grad():
                for i, p in enumerate(self._lower_parameters(top + 1)):
                    getattr(self, f"anchor_{top}_{i}").copy_(p)
        return terms

    def shared_parameters(self):
        yield from self.embedding.parameters()
        yield from self.stack.parameters()
        yield from self.label_embeddings.parameters()

    def task_parameters(self, task: str):
        return self.heads[task].parameters()


def _task_layers(cfg, tasks: list[TaskSpec]) -> dict[str, int]:
    """Each task's layer: ``model.task_layers`` (checked by the config class), else the top one."""
    return {t.name: cfg.model.task_layers.get(t.name, cfg.model.encoder.num_layers) for t in tasks}


def build_low_supervision(cfg, tasks: list[TaskSpec], vocab_size: int,
                          vectors: Optional[torch.Tensor] = None, num_chars: int = 0) -> LowSupervisionModel:
    m = cfg.model
    embedding = build_embedding(m, vocab_size, vectors, num_chars)
    return LowSupervisionModel(embedding, m.encoder.hidden_dim, m.encoder.num_layers, m.encoder.dropout,
                               tasks, _task_layers(cfg, tasks), m.pooling)


def build_joint_many_task(cfg, tasks: list[TaskSpec], vocab_size: int,
                          vectors: Optional[torch.Tensor] = None, num_chars: int = 0) -> JointManyTaskModel:
    m = cfg.model
    embedding = build_embedding(m, vocab_size, vectors, num_chars)
    return JointManyTaskModel(embedding, m.encoder.hidden_dim, m.encoder.num_layers, m.encoder.dropout,
                              tasks, _task_layers(cfg, tasks), m.label_embedding_dim,
                              m.successive_regularization, m.pooling)


ARCHITECTURES = {"low_supervision": (LowSupervisionConfig, build_low_supervision),
                 "joint_many_task": (JointManyTaskConfig, build_joint_many_task)}
