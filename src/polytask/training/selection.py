"""Model selection on dev and early stopping: which weights ``best/`` keeps, and when a run (or a
task) stops training. ``trainer.select`` picks the selection (:func:`build_selection`)."""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from ..config import ConfigError
from ..evaluation.evaluate import primary
from . import checkpoint as ckpt
from .callbacks import Callback
from .nonfinite import refuse_nonfinite


class Selection(Callback, ABC):
    """What both selections share: the best scores so far (``best``), the evaluations since each
    improvement (``bad_evals``), ``best/`` written atomically, and their place in ``last/state.json``.

    Without dev data there is nothing to select on: ``best/`` keeps the last weights.

    Args:
        best_dir: where the selected weights go (``best/model.safetensors`` and ``best/state.json``).
        patience: evaluations without improvement before stopping; None never stops early.
    """

    def __init__(self, best_dir: Path, patience: Optional[int]):
        self.best_dir, self.patience = Path(best_dir), patience
        self.best: dict = {"mean": -math.inf, "step": 0, "tasks": {}}
        self.bad_evals: dict[str, int] = {"mean": 0}

    def on_evaluate(self, trainer, record: dict) -> None:
        if record["dev"]:
            self.select(trainer, record["dev"])
        else:
            self.save_best(trainer.model.state_dict(), {"step": trainer.step, "dev": {}})
        record["best_dev_mean"] = self.best["mean"]

    @abstractmethod
    def select(self, trainer, dev: dict[str, float]) -> None:
        """Judge this evaluation's ``dev`` scores: keep better weights, count, stop."""

    def on_train_end(self, trainer, summary: dict) -> None:
        summary["best_dev_mean"] = self.best["mean"]
        summary["best_step"] = self.best.get("step")

    def save_best(self, weights: dict[str, torch.Tensor], info: dict) -> None:
        """Write ``best/`` atomically; weights that are not finite are refused
        (:class:`~polytask.training.nonfinite.NonFiniteError`) and ``best/`` stays as it was."""
        refuse_nonfinite(weights, str(self.best_dir))

        def write(tmp: Path) -> None:
            ckpt.save_weights(weights, tmp / "model.safetensors")
            ckpt.write_json(tmp / "state.json", info, "the selection's state")
        ckpt.atomic_dir_write(self.best_dir, write, "best/")

    def state_dict(self) -> dict:
        return {"best": {**self.best, "mean": None if self.best["mean"] == -math.inf else self.best["mean"]},
                "bad_evals": self.bad_evals}

    def load_state_dict(self, state: dict) -> None:
        ckpt.recover_dir(self.best_dir)        # a kill between the two renames of a best/ write
        self.best, self.bad_evals = state["best"], state["bad_evals"]
        if self.best["mean"] is None:
            self.best["mean"] = -math.inf


class MeanSelection(Selection):
    """Keeps the weights of the evaluation with the highest mean dev score over the tasks; stops
    the run after ``patience`` evaluations without a new best."""

    def on_train_start(self, trainer) -> None:
        # a run resumed under a patience that its dev curve has already used up (it was trained
        # without one, or with a longer one) stops at once, keeping the best weights it would have
        if self.patience is not None and self.bad_evals["mean"] >= self.patience:
            trainer.should_stop = True

    def select(self, trainer, dev: dict[str, float]) -> None:
        mean = sum(dev.values()) / len(dev)
        if mean > self.best["mean"]:
            self.best = {"mean": mean, "step": trainer.step, "tasks": dict(dev)}
            self.bad_evals["mean"] = 0
            info = {"step": trainer.step, "dev": dev}
            metrics = getattr(trainer, "last_dev_metrics", None)
            if metrics is not None and primary(metrics) == dev:
                info["dev_metrics"] = metrics   # every dev metric of these weights, for the runner
            self.save_best(trainer.model.state_dict(), info)
        else:
            self.bad_evals["mean"] += 1
        if self.patience is not None and self.bad_evals["mean"] >= self.patience:
            trainer.should_stop = True


class PerTaskSelection(Selection):
    """For architectures whose tasks share no parameter (``single_task``): each task keeps the
    weights of its own best dev score, and ``best/`` composes them; a task that goes ``patience``
    evaluations without improving is finished (draws no more batches), and the run stops when
    every task is.

    Args:
        best_dir: where the composed weights go.
        patience: evaluations without improvement before a task finishes; None: never.
        model: the model trained; its ``task_parameters(task)`` say which weights are whose.
        tasks: the task names.
        architecture: the architecture's name, for the error when its tasks share parameters.
    """

    def __init__(self, best_dir: Path, patience: Optional[int], model: nn.Module, tasks: list[str],
                 architecture: str):
        if not model.independent_tasks:
            raise ConfigError("trainer.select: 'per_task' needs an architecture whose tasks share "
                              f"nothing (single_task), not {architecture!r}")
        super().__init__(best_dir, patience)
        names = {id(p): n for n, p in model.named_parameters()}
        self.task_param_names = {task: [names[id(p)] for p in model.task_parameters(task)] for task in tasks}
        self.best_state: Optional[dict[str, torch.Tensor]] = None    # the composed best weights

    def on_train_start(self, trainer) -> None:
        # tasks whose patience a resumed run's dev curve has already used up are finished at once
        if self.patience is not None:
            trainer.finished.extend(task for task in trainer.tasks if task not in trainer.finished
                                    and self.bad_evals.get(task, 0) >= self.patience)
        if len(trainer.finished) == len(trainer.tasks):
            trainer.should_stop = True

    def select(self, trainer, dev: dict[str, float]) -> None:
        if self.best_state is None:
            self.best_state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
        current = trainer.model.state_dict()
        improved = False
        for task, score in dev.items():
            if task in trainer.finished:
                continue
            if score > self.best["tasks"].get(task, {}).get("dev", -math.inf):
                self.best["tasks"][task] = {"dev": score, "step": trainer.step}
                self.bad_evals[task] = 0
                for name in self.task_param_names[task]:
                    self.best_state[name] = current[name].detach().clone()
                improved = True
            else:
                self.bad_evals[task] = self.bad_evals.get(task, 0) + 1
                if self.patience is not None and self.bad_evals[task] >= self.patience:
                    trainer.finished.append(task)
        best_dev = {task: b["dev"] for task, b in self.best["tasks"].items()}
        self.best["mean"] = sum(best_dev.values()) / len(best_dev)
        if improved:
            self.best["step"] = trainer.step  # the last step at which any task improved
            self.save_best(self.best_state, {"step": trainer.step, "dev": best_dev,
                                             "per_task": self.best["tasks"]})
        if len(trainer.finished) == len(trainer.tasks):
            trainer.should_stop = True

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if (self.best_dir / "model.safetensors").is_file():
            self.best_state = ckpt.read_weights(self.best_dir / "model.safetensors")


def build_selection(cfg, model: nn.Module, tasks: list[str], best_dir: Path) -> Selection:
    """The selection ``trainer.select`` names, with ``trainer.patience``."""
    t = cfg.trainer
    if t.select == "mean":
        return MeanSelection(best_dir, t.patience)
    if t.select == "per_task":
        return PerTaskSelection(best_dir, t.patience, model, tasks, cfg.model.architecture)
    raise ConfigError(f"trainer.select: unknown selection {t.select!r} (known: mean, per_task)")
