"""Task kinds: one module per type of task, and a plain registry ``type -> kind``.

A kind owns what is specific to its type of task (reader, tensors and batches, head, loss,
metrics, prediction format); see :mod:`polytask.kinds.base`. To add one, write its module and add
its line here.
"""
from __future__ import annotations

from .base import Encoding, TaskKind, TaskOutput, TaskSpec, Text
from .classification import ClassificationKind
from .pair_classification import PairClassificationKind
from .qa import QAKind
from .regression import RegressionKind
from .tagging import TaggingKind

KINDS: dict[str, TaskKind] = {
    "classification": ClassificationKind(),
    "pair_classification": PairClassificationKind(),
    "regression": RegressionKind(),
    "tagging": TaggingKind(),
    "qa": QAKind(),
}


def get_kind(name: str) -> TaskKind:
    if name not in KINDS:
        raise ValueError(f"unknown task type {name!r} (known: {', '.join(KINDS)})")
    return KINDS[name]


__all__ = ["KINDS", "get_kind", "Encoding", "TaskKind", "TaskOutput", "TaskSpec", "Text"]
