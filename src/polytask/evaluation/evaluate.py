"""Evaluation: each task's kind predicts over encoded examples and scores its metrics."""
from __future__ import annotations

from typing import Optional

import torch

from ..data.batching import Encoded
from ..kinds import get_kind

# what run directories written before per-task metric lists recorded as their one metric
_OLD_METRIC = {("tagging", "f1"): "span_f1", ("qa", "f1"): "squad_f1"}


def task_metrics(info: dict) -> tuple[str, ...]:
    """The metrics a run reports for a task (``tasks.json``): the first selects on dev."""
    if "metrics" in info:
        return tuple(info["metrics"])
    old = info.get("metric", "accuracy")
    return (_OLD_METRIC.get((info["type"], old), old),)


def predict_task(model: torch.nn.Module, task: str, items: list[Encoded], batch_size: int,
                 device: torch.device, info: dict, itos: Optional[list[str]] = None) -> list:
    """The kind's predictions for ``items``, in their order."""
    kind = get_kind(info["type"])
    return kind.predict(model, task, items, batch_size, device, itos=itos)


def evaluate_task(model: torch.nn.Module, task: str, items: list[Encoded], batch_size: int,
                  device: torch.device, info: dict, itos: Optional[list[str]] = None) -> dict[str, float]:
    """Every metric of ``task`` on ``items`` (percent), as its kind predicts and scores."""
    predictions = predict_task(model, task, items, batch_size, device, info, itos)
    return get_kind(info["type"]).score(predictions, items, task_metrics(info), info)


def evaluate_metrics(model: torch.nn.Module, splits: dict[str, list[Encoded]], batch_size: int,
                     device: torch.device, info: dict[str, dict],
                     itos: Optional[list[str]] = None) -> dict[str, dict[str, float]]:
    """``{task: {metric: value}}`` for every task with data in ``splits``."""
    return {task: evaluate_task(model, task, items, batch_size, device, info[task], itos)
            for task, items in splits.items() if items}


def evaluate_with_predictions(model: torch.nn.Module, splits: dict[str, list[Encoded]], batch_size: int,
                              device: torch.device, info: dict[str, dict], itos: Optional[list[str]] = None,
                              ) -> tuple[dict[str, dict[str, float]], dict[str, tuple[list, list]]]:
    """What :func:`evaluate_metrics` gives, and each task's ``(gold, predictions)`` from the same
    pass, in the kind's own form (for ``predictions/test.jsonl``)."""
    scores, pairs = {}, {}
    for task, items in splits.items():
        if not items:
            continue
        kind = get_kind(info[task]["type"])
        predictions = predict_task(model, task, items, batch_size, device, info[task], itos)
        scores[task] = kind.score(predictions, items, task_metrics(info[task]), info[task])
        pairs[task] = (kind.gold(items), predictions)
    return scores, pairs


def primary(scores: dict[str, dict[str, float]]) -> dict[str, float]:
    """Each task's first metric: what selects on dev and what the mean over tasks averages."""
    return {task: next(iter(values.values())) for task, values in scores.items()}


def evaluate_model(model: torch.nn.Module, splits: dict[str, list[Encoded]], batch_size: int,
                   device: torch.device, info: dict[str, dict],
                   itos: Optional[list[str]] = None) -> dict[str, float]:
    """Each task's first metric in percent; tasks with an empty split are left out."""
    return primary(evaluate_metrics(model, splits, batch_size, device, info, itos))


def predict_items(model: torch.nn.Module, task: str, items: list[Encoded], batch_size: int,
                  device: torch.device) -> torch.Tensor:
    """Class probabilities (N, C) of a classification or pair task, in the order of ``items``."""
    return get_kind("classification").probabilities(model, task, items, batch_size, device)
