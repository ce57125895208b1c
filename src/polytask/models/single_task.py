"""Single-task baseline: one independent model per task, all trained in the same run.

Nothing is shared, not even the embedding table, so each task's model is exactly the
hard-sharing model trained on that task alone. With ``trainer.select: per_task`` each task keeps
the weights of its own best dev step and stops on its own patience: every baseline gets the budget
it needs rather than a slice of a shared one.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..modules import SentenceEncoder, build_encoder
from ..modules.embeddings import build_embedding
from .outputs import TaskOutput, TaskSpec, classification_output, tagging_output, task_head

from dataclasses import dataclass, field
from typing import ClassVar, Literal, Optional

from ..config import ConfigError, ModelConfig


class TaskModel(nn.Module):
    """One task's whole model: embedding, encoder, pooling, head."""

    def __init__(self, encoder: SentenceEncoder, head: nn.Module, spec: TaskSpec):
        super().__init__()
        self.encoder, self.head = encoder, head
        self.pair, self.tagging = spec.pair, spec.tagging

    def forward(self, batch) -> TaskOutput:
        if self.tagging:
            states = self.encoder.states(batch.tokens, batch.mask, batch.chars)      # (B, T, H)
            return tagging_output(self.head, states, batch.mask, batch.labels)
        u = self.encoder(batch.tokens, batch.mask, batch.chars)                      # (B, H)
        if self.pair:
            logits = self.head(u, self.encoder(batch.tokens_b, batch.mask_b))
        else:
            logits = self.head(u)
        return classification_output(logits, batch.labels)


class SingleTaskModel(nn.Module):
    independent_tasks = True

    def __init__(self, models: dict[str, TaskModel]):
        super().__init__()
        self.models = nn.ModuleDict(models)

    def forward(self, batch) -> TaskOutput:
        return self.models[batch.task](batch)

    def shared_parameters(self):
        return iter(())

    def task_parameters(self, task: str):
        return self.models[task].parameters()


def build(cfg, tasks: list[TaskSpec], vocab_size: int, vectors: Optional[torch.Tensor] = None,
          num_chars: int = 0) -> SingleTaskModel:
    m = cfg.model
    models = {}
    for t in tasks:
        embedding = build_embedding(m, vocab_size, vectors, num_chars)
        encoder = SentenceEncoder(embedding, build_encoder(m.encoder, embedding.output_dim), m.pooling)
        models[t.name] = TaskModel(encoder, task_head(t, encoder.output_dim, m.dropout), t)
    return SingleTaskModel(models)


ARCHITECTURES = {"single_task": (ModelConfig, build)}
