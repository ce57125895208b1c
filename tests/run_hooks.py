"""Hooks into a running trainer for the tests of interrupted and failing runs: extra callbacks, a
signal raised at a chosen point of a chosen step, a loss, gradient or weight made NaN.

Imported by the tests and by the subprocesses some of them start (SIGKILL cannot be caught, so a
run killed by it must live in a process of its own):

    python tests/run_hooks.py CONFIG.json SIGKILL STEP POINT
"""
from __future__ import annotations

import json
import math
import signal
import sys
from pathlib import Path
import torch

from polytask.config import load_config
from polytask.runner import train
from polytask.training.callbacks import Callback

# where in a step a signal can land: after its batch is drawn, after the backward pass, after the
# optimizer step, in the middle of an evaluation, in the middle of writing last/
POINTS = ("after_draw", "after_backward", "after_optimizer_step", "mid_evaluation", "mid_checkpoint")


def train_with(raw: dict, *extra: Callback, resume: bool = False) -> dict:
    """``runner.train`` on the raw config with ``extra`` callbacks after the default ones."""
    return train(load_config(raw=raw), quiet=True, resume=resume, callbacks=list(extra))


class _DrawHook:
    """A batch iterator that calls ``after`` once each batch is drawn."""

    def __init__(self, iterator, after):
        self._iterator, self._after = iterator, after

    def __next__(self):
        batch = next(self._iterator)
        self._after()
        return batch

    def __getattr__(self, name):
        return getattr(self._iterator, name)


class SignalAt(Callback):
    """Raises ``signum`` in this process ``times`` times in a row at ``point`` (one of
    :data:`POINTS`) of step ``step`` (1-based; the evaluation and checkpoint points are those of
    the evaluation after step ``step``). ``signal.raise_signal`` runs the Python handler before it
    returns, so the signal lands exactly there."""

    def __init__(self, signum: int, step: int, point: str, times: int = 1):
        assert point in POINTS, point
        self.signum, self.step, self.point, self.times = signum, step, point, times
        self.fired = False

    def _fire(self) -> None:
        if not self.fired:
            self.fired = True
            for _ in range(self.times):
                signal.raise_signal(self.signum)

    def on_train_start(self, trainer) -> None:
        in_step = lambda: trainer.step == self.step - 1 and trainer.model.training  # noqa: E731
        if self.point == "after_draw":
            for task, it in list(trainer.iterators.items()):
                trainer.iterators[task] = _DrawHook(it, lambda: in_step() and self._fire())
        elif self.point == "after_backward":
            backward = trainer.weighting.backward

            def backward_then_fire(*args, **kwargs):
                weights = backward(*args, **kwargs)
                if in_step():
                    self._fire()
                return weights
            trainer.weighting.backward = backward_then_fire
        elif self.point == "after_optimizer_step":
            trainer.optimizer.register_step_post_hook(lambda *_: in_step() and self._fire())
        elif self.point == "mid_evaluation":
            forward = trainer.model.forward

            def forward_then_fire(batch):
                out = forward(batch)
                if trainer.step == self.step and not trainer.model.training:
                    self._fire()
                return out
            trainer.model.forward = forward_then_fire
        else:                                   # mid_checkpoint: last/model.safetensors is written
            tensors = trainer.tensor_state_dict

            def fire_then_tensors():
                if trainer.step == self.step:
                    self._fire()
                return tensors()
            trainer.tensor_state_dict = fire_then_tensors


class PoisonLoss(Callback):
    """From step ``step`` on (1-based), the loss of ``task`` is NaN (``what="loss"``) or finite with
    a NaN gradient (``what="gradient"``); ``only_once`` poisons just the first such batch."""

    def __init__(self, task: str, step: int, what: str = "loss", only_once: bool = False):
        self.task, self.step, self.what, self.only_once = task, step, what, only_once
        self.poisoned: list[int] = []          # the steps whose batch was poisoned

    def on_train_start(self, trainer) -> None:
        forward = trainer.model.forward

        def poisoned_forward(batch):
            out = forward(batch)
            step = trainer.step + 1
            if (trainer.model.training and batch.task == self.task and step >= self.step
                    and not (self.only_once and self.poisoned)):
                self.poisoned.append(step)
                if self.what == "loss":
                    out.loss = out.loss * math.nan
                else:                      # d/dz sqrt(z) at 0 is inf; 0 * inf is NaN; the value stays
                    z = sum((p * 0).sum() for p in trainer.model.parameters() if p.requires_grad)
                    out.loss = out.loss + 0.0 * torch.sqrt(z)
            return out
        trainer.model.forward = poisoned_forward


class PoisonWeights(Callback):
    """After step ``step``, every weight of the model is NaN."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, trainer) -> None:
        if trainer.step == self.step:
            with torch.no_grad():
                for p in trainer.model.parameters():
                    p.fill_(math.nan)


if __name__ == "__main__":
    torch.set_num_threads(1)                 # as in the tests (conftest.py)
    config, signame, step, point = sys.argv[1:5]
    train_with(json.loads(Path(config).read_text()), SignalAt(getattr(signal, signame), int(step), point))
