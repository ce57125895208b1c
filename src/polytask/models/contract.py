"""The model contract: what every architecture provides, and what the trainer may rely on.

An architecture produces representations; the task kinds (:mod:`polytask.kinds`) turn them into
outputs and losses. ``forward(batch)`` hands the batch to its task's kind, which asks the
architecture for what it needs: ``encode(task, text)`` (an :class:`~polytask.kinds.Encoding` of
one text), ``head(task)`` (the task's output layer) or, for architectures that generate answers,
``answer(batch)`` and ``generate(batch)``.

Optional behaviour is declared here with a default, never probed with ``getattr``:
``independent_tasks`` (tasks share nothing, so each may keep its own best weights),
``adapt(step, task_gradients)`` (an architecture that changes its own structure while training),
``structure()`` (a learned structure to save with the run) and ``num_parameters()``.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, ClassVar, Iterator, Optional

import torch
from torch import nn

from ..kinds import get_kind
from ..kinds.base import Encoding, TaskOutput, TaskSpec, Text


class MultiTaskModel(nn.Module):
    """Base of every architecture. Subclasses implement ``encode`` (or ``answer``/``generate``),
    ``shared_parameters`` and ``task_parameters``, and keep each task's head in ``self.heads``
    (built with :func:`task_head`) unless they override ``head``."""

    independent_tasks: ClassVar[bool] = False

    def __init__(self, tasks: list[TaskSpec]):
        super().__init__()
        self.task_kinds = {t.name: t.kind for t in tasks}

    def forward(self, batch) -> TaskOutput:
        return get_kind(self.task_kinds[batch.task]).forward(self, batch)

    # ------------------------------------------------------------------ what kinds ask for

    def encode(self, task: str, text: Text) -> Encoding:
        """Per-word states (and how to pool them) of ``text`` as task ``task`` reads it."""
        raise TypeError(f"{type(self).__name__} does not encode texts for a task head")

    def head(self, task: str) -> Callable:
        """The output layer of ``task``."""
        return self.heads[task]

    def answer(self, batch) -> TaskOutput:
        """The answer loss of a (context, question, answer) batch (answering architectures)."""
        raise TypeError(f"{type(self).__name__} does not generate answers")

    def generate(self, batch) -> list[list[int]]:
        """Answer ids per example (answering architectures)."""
        raise TypeError(f"{type(self).__name__} does not generate answers")

    # ------------------------------------------------------------------ what the trainer asks for

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        raise NotImplementedError

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        raise NotImplementedError

    def adapt(self, step: int, task_gradients: Callable[[list[nn.Parameter]], torch.Tensor]) -> Optional[dict]:
        """Change the structure after ``step`` (fully adaptive sharing); returns what changed."""
        return None

    def structure(self) -> dict:
        """A learned structure to save with the run (``structure.json``), beyond ``inspect``."""
        return {}

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def task_head(spec: TaskSpec, input_dim: int, dropout: float, cross_encoded: bool = False) -> nn.Module:
    """The output layer the task's kind builds over representations of width ``input_dim``.
    ``cross_encoded``: the encoder reads a pair as one joint input (a pretrained encoder), so a
    pair task's head reads one vector, not two."""
    if cross_encoded and spec.pair:
        spec = dataclasses.replace(spec, cross_encoded=True)
    return get_kind(spec.kind).build_head(spec, input_dim, dropout)


__all__ = ["MultiTaskModel", "task_head", "Encoding", "TaskOutput", "TaskSpec", "Text"]
