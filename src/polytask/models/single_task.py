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

from ..modules import SentenceEncoder, WordEmbedding, build_encoder, build_head
from .outputs import TaskOutput, TaskSpec, classification_output


class TaskModel(nn.Module):
    """One task's whole model: embedding, encoder, pooling, head."""

    def __init__(self, encoder: SentenceEncoder, head: nn.Module, pair: bool):
        super().__init__()
        self.encoder, self.head, self.pair = encoder, head, pair

    def forward(self, batch) -> torch.Tensor:
        u = self.encoder(batch.tokens, batch.mask)
        if self.pair:
            return self.head(u, self.encoder(batch.tokens_b, batch.mask_b))
        return self.head(u)


class SingleTaskModel(nn.Module):
    independent_tasks = True

    def __init__(self, models: dict[str, TaskModel]):
        super().__init__()
        self.models = nn.ModuleDict(models)

    def forward(self, batch) -> TaskOutput:
        logits = self.models[batch.task](batch)
        return classification_output(logits, batch.labels)

    def shared_parameters(self):
        return iter(())

    def task_parameters(self, task: str):
        return self.models[task].parameters()


def build(cfg, tasks: list[TaskSpec], vocab_size: int,
          vectors: Optional[torch.Tensor] = None) -> SingleTaskModel:
    m = cfg.model
    models = {}
    for t in tasks:
        embedding = WordEmbedding(vocab_size, m.embedding_dim, vectors, m.freeze_embeddings, m.dropout)
        encoder = SentenceEncoder(embedding, build_encoder(m.encoder, m.embedding_dim), m.pooling)
        models[t.name] = TaskModel(encoder, build_head(encoder.output_dim, t.num_labels, t.pair,
                                                       m.dropout), t.pair)
    return SingleTaskModel(models)
