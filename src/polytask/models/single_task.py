"""Single-task baseline: one independent model per task, all trained in the same run.

Nothing is shared, not even the embedding table, so each task's model is exactly the
hard-sharing model trained on that task alone (Caruana 1997's single-task baseline):

    s^k = pool(Encoder^k(Embed^k(x)))        task k's own embedding and encoder
    ŷ^k = softmax(W^k s^k + b^k)

With ``model.pretrained`` each task fine-tunes its own copy of the pretrained model (the single-task
baseline of BERT and MT-DNN); with ``model.adapter`` each copy carries its own LoRA adapter.

With ``trainer.select: per_task`` each task keeps the weights of its own best dev step and stops on
its own patience: every baseline gets the budget it needs rather than a slice of a shared one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import torch
from torch import nn

from ..modules import SentenceEncoder, build_encoder
from ..modules.embeddings import build_embedding
from .contract import Encoding, MultiTaskModel, TaskSpec, Text, task_head
from .pretrained_encoder import PretrainedModelConfig, adapter_names, build_pretrained_encoder


@dataclass
class SingleTaskConfig(PretrainedModelConfig):
    """Each task its own model: on a pretrained encoder, its own copy (so no per-task adapters)."""

    shared_encoder: ClassVar[bool] = False


class TaskModel(nn.Module):
    """One task's whole model: its encoder (with its own embedding table, or its own copy of a
    pretrained model) and its head."""

    def __init__(self, encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder, self.head = encoder, head


class SingleTaskModel(MultiTaskModel):
    """One :class:`TaskModel` per task; the tasks share no parameter."""

    independent_tasks = True

    def __init__(self, models: dict[str, TaskModel], tasks: list[TaskSpec]):
        super().__init__(tasks)
        self.models = nn.ModuleDict(models)

    def encode(self, task: str, text: Text) -> Encoding:
        encoder = self.models[task].encoder
        states = encoder.text_states(text)                                    # (B, T, H), task's own
        return Encoding(states, text.mask, pool=encoder.pool)

    def head(self, task: str) -> nn.Module:
        return self.models[task].head

    def shared_parameters(self):
        return iter(())

    def task_parameters(self, task: str):
        return self.models[task].parameters()


def build(cfg, tasks: list[TaskSpec], vocab_size: int, vectors: Optional[torch.Tensor] = None,
          num_chars: int = 0) -> SingleTaskModel:
    m = cfg.model
    models = {}
    for t in tasks:
        if m.pretrained:
            encoder = build_pretrained_encoder(m, adapter_names(m, [t]))
        else:
            embedding = build_embedding(m, vocab_size, vectors, num_chars)
            encoder = SentenceEncoder(embedding, build_encoder(m.encoder, embedding.output_dim), m.pooling)
        models[t.name] = TaskModel(encoder, task_head(t, encoder.output_dim, m.dropout, encoder.cross_encodes_pairs))
    return SingleTaskModel(models, tasks)


ARCHITECTURES = {"single_task": (SingleTaskConfig, build)}
