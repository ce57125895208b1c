"""Evaluation: run a model over encoded examples in length-sorted batches, without gradients."""
from __future__ import annotations

import torch

from ..data.batching import Encoded, eval_batches


@torch.inference_mode()
def predict_items(model: torch.nn.Module, task: str, items: list[Encoded], batch_size: int,
                  device: torch.device) -> torch.Tensor:
    """Class probabilities (N, C) for ``items``, in their original order."""
    was_training = model.training
    model.eval()
    probs = None
    try:
        for batch in eval_batches(task, items, batch_size):
            batch.labels = None
            p = torch.softmax(model(batch.to(device)).logits.float(), dim=-1).cpu()
            if probs is None:
                probs = torch.empty(len(items), p.shape[-1])
            probs[torch.tensor(batch.index)] = p
    finally:
        model.train(was_training)
    return probs if probs is not None else torch.empty(0, 0)


def accuracy(probs: torch.Tensor, items: list[Encoded]) -> float:
    if not items:
        return float("nan")
    gold = torch.tensor([it.label for it in items])
    return 100.0 * (probs.argmax(-1) == gold).float().mean().item()


def evaluate_model(model: torch.nn.Module, splits: dict[str, list[Encoded]], batch_size: int,
                   device: torch.device) -> dict[str, float]:
    """Accuracy (percent) per task; tasks with an empty split are left out."""
    return {task: accuracy(predict_items(model, task, items, batch_size, device), items)
            for task, items in splits.items() if items}
