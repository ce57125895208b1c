"""Callbacks that read each task's gradient: the gradient-similarity diagnostic, and structure
adaptation for architectures that grow their own branches from it."""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

from ..data.batching import Encoded, eval_batches
from .callbacks import Callback


def task_gradients(model: nn.Module, items: dict[str, list[Encoded]], tasks: list[str],
                   params: list[nn.Parameter], batch_size: int, device: torch.device,
                   collate: dict[str, Callable], batches: int = 1) -> list[Optional[torch.Tensor]]:
    """Each task's loss gradient on ``params``, flattened, summed over its first ``batches``
    evaluation batches of ``items`` (None for a task without items); ``collate[task]`` is the
    task's kind's batching.

    Dropout is off and no batch is drawn from the training stream, so asking changes nothing about
    training. (cuDNN's RNN backward refuses eval mode, so cuDNN is off for this.)

    Returns:
        One tensor of shape (P,) per task, P the number of elements in ``params``.
    """
    grads: list[Optional[torch.Tensor]] = []
    model.eval()
    try:
        with torch.backends.cudnn.flags(enabled=False):
            for task in tasks:
                task_items = items.get(task) or []
                if not task_items or not params:
                    grads.append(None)
                    continue
                total = None
                for _, batch in zip(range(batches), eval_batches(task, task_items, batch_size,
                                                                        collate[task])):
                    g = torch.autograd.grad(model(batch.to(device)).loss, params, allow_unused=True)
                    flat = torch.cat([(x if x is not None else torch.zeros_like(p)).reshape(-1)
                                      for x, p in zip(g, params)])
                    total = flat if total is None else total + flat
                grads.append(total)
    finally:
        model.train()
    return grads


class GradientSimilarity(Callback):
    """Adds ``grad_cosine`` to every evaluation record: ``{"tasks": [...], "matrix": K × K}``, the
    cosine similarity between the tasks' gradients on the shared parameters, each from the task's
    first dev batch (``polytask report`` draws it as a heat map). Tasks without dev data get NaN
    rows and columns.

    Args:
        batch_size: examples per dev batch.
    """

    def __init__(self, batch_size: int):
        self.batch_size = batch_size

    def on_evaluate(self, trainer, record: dict) -> None:
        shared = [p for p in trainer.model.shared_parameters() if p.requires_grad]
        grads = task_gradients(trainer.model, trainer.dev_items, trainer.tasks, shared, self.batch_size,
                               trainer.device, trainer.collate)
        matrix = [[float("nan") if a is None or b is None
                   else float(torch.nn.functional.cosine_similarity(a, b, dim=0)) for b in grads]
                  for a in grads]
        record["grad_cosine"] = {"tasks": trainer.tasks, "matrix": matrix}


class StructureAdaptation(Callback):
    """After every step, lets an architecture that changes its own structure while it trains do so
    (``fully_adaptive``: Lu et al., CVPR 2017, widens a layer into branches by task affinity), and
    logs each change as a ``"structure"`` record (the contract's default ``adapt`` changes nothing).

    The model's ``adapt(step, task_gradients)`` receives a function that maps a parameter list to
    the tasks' gradients on it, shape (K, P), each summed over ``batches`` training batches (zeros
    for a task without training data).

    Args:
        batches: training batches per task behind each gradient (``trainer.structure_batches``).
        batch_size: examples per batch.
    """

    def __init__(self, batches: int, batch_size: int):
        self.batches, self.batch_size = batches, batch_size

    def on_step_end(self, trainer) -> None:
        def gradients(params: list[nn.Parameter]) -> torch.Tensor:
            grads = task_gradients(trainer.model, trainer.train_items, trainer.tasks, params,
                                   self.batch_size, trainer.device, trainer.collate, batches=self.batches)
            present = next(g for g in grads if g is not None)
            return torch.stack([g if g is not None else torch.zeros_like(present) for g in grads])

        event = trainer.model.adapt(trainer.step, gradients)     # None: the structure stays
        if event:
            trainer.log({"step": trainer.step, "event": "structure", **event})
