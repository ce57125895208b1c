"""The trainer's hooks, and the callbacks that report a run: ``metrics.jsonl`` and the progress
bar (the trackers of ``trainer.report_to`` are in :mod:`.tracking`).

A callback overrides the hooks it needs; the trainer calls every callback's hook in list order.
The others live beside the job they do: :mod:`.resume` (``last/`` and resuming), :mod:`.selection`
(best weights and early stopping), :mod:`.gradients` (gradient similarity, structure adaptation).
"""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from .checkpoint import writing

logger = logging.getLogger(__name__)


class Callback:
    """The hooks, in the order a run calls them; each does nothing unless overridden.

    A hook receives the :class:`~polytask.training.trainer.Trainer` and may read its public
    attributes (``model``, ``step``, ``tasks``, ``run_dir``, ...). Two attributes are for callbacks
    to set: ``trainer.should_stop`` (end the run after this evaluation) and ``trainer.finished``
    (tasks that draw no more batches).
    """

    def on_setup(self, trainer, resume: bool) -> None:
        """The run directory exists; ``resume`` asks to continue the run saved there."""

    def on_train_start(self, trainer) -> None:
        """The loop is about to start (at ``trainer.step``, 0 or where a resumed run stopped)."""

    def on_step_end(self, trainer) -> None:
        """An optimizer step is done; ``trainer.step`` counts it."""

    def on_evaluate(self, trainer, record: dict) -> None:
        """The dev scores are in ``record["dev"]``; a callback may judge them, set
        ``trainer.should_stop`` and add fields to ``record`` before it is logged."""

    def on_log(self, trainer, record: dict) -> None:
        """A record for the log: ``{"step", "event", ...}``; ``event`` is "eval", "structure",
        "nonfinite" (a NaN/Inf loss, gradient norm or weights: ``what``, ``tasks``, ``action``) or
        "resume" (the settings a resumed run changed, from this step: ``changed``)."""

    def on_checkpoint(self, trainer) -> None:
        """A point to save at: after each evaluation's record is logged."""

    def on_interrupt(self, trainer) -> None:
        """Ctrl-C or SIGTERM stopped the loop at the end of a step; the trainer re-raises after
        this hook."""

    def on_train_end(self, trainer, summary: dict) -> None:
        """The loop has ended; a callback may add fields to the run's ``summary``."""

    def on_results(self, trainer, results: dict) -> None:
        """:func:`polytask.runner.train` has written ``results.json`` (``results``: its content),
        after the best weights were scored on dev and test."""

    def state_dict(self) -> dict:
        """What this callback needs to continue exactly after a resume, JSON-serialisable. The keys
        go to the top level of ``last/state.json`` beside the trainer's, so they must be unique."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore from the whole ``last/state.json`` (this callback's keys among the others)."""


class MetricsLog(Callback):
    """Appends every record to ``metrics.jsonl`` as one JSON line.

    A run that starts at step 0 starts an empty log. A resumed run keeps the records up to its
    checkpoint's step: the interrupted process may have logged past it, and the resumed run logs
    those steps again.
    """

    def __init__(self, path: Path):
        self.path = Path(path)

    def on_setup(self, trainer, resume: bool) -> None:
        kept = []
        if trainer.step > 0 and self.path.is_file():
            kept = [line for line in self.path.read_text(encoding="utf-8").splitlines()
                    if line and json.loads(line).get("step", 0) <= trainer.step]
        with writing(self.path, "the metrics log"):
            self.path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")

    def on_log(self, trainer, record: dict) -> None:
        with writing(self.path, "the metrics log"), self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


class ProgressBar(Callback):
    """The console view of a run. On a terminal, a tqdm bar over ``max_steps`` (none when tqdm is
    missing; a widget in Jupyter) showing the last and best dev means; where stderr is a file or a
    pipe (a log, a job scheduler), no bar but one ``polytask`` log line per evaluation (step, dev
    mean, best, speed), so a log holds lines, not carriage-return updates. In both, a log line for
    each change of the model's structure.

    Args:
        max_steps: the length of the bar.
        interactive: draw the bar (True) or log lines (False); None: draw it when stderr is a
            terminal or the process is a Jupyter kernel.
    """

    def __init__(self, max_steps: int, interactive: bool | None = None):
        self.max_steps = max_steps
        self.interactive = interactive
        self.bar = None

    def on_train_start(self, trainer) -> None:
        interactive = self.interactive
        if interactive is None:             # a terminal, or a Jupyter kernel (tqdm.auto draws a widget there)
            interactive = bool(getattr(sys.stderr, "isatty", lambda: False)()) or "ipykernel" in sys.modules
        if not interactive:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:  # pragma: no cover
            return
        self.bar = tqdm(total=self.max_steps, initial=trainer.step, desc="train", dynamic_ncols=True,
                        mininterval=1.0)

    def on_step_end(self, trainer) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def on_log(self, trainer, record: dict) -> None:
        if record["event"] == "structure":
            logger.info("step %d: layer %d now branches as %s", record["step"], record["layer"], record["groups"])
        elif record["event"] == "eval":
            best = record.get("best_dev_mean", float("nan"))
            if self.bar is not None:
                self.bar.set_postfix(dev=f"{record['dev_mean']:.2f}", best=f"{best:.2f}")
            else:
                logger.info("step %d/%d: dev mean %.2f, best %.2f, %.0f tokens/s", record["step"], self.max_steps,
                            record["dev_mean"], best, record.get("tokens_per_s", float("nan")))
        elif record["event"] == "nonfinite" and record["action"] == "stop":
            self._close()                    # the error message comes next, on a line of its own

    def on_interrupt(self, trainer) -> None:
        self._close()

    def on_train_end(self, trainer, summary: dict) -> None:
        self._close()

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class CallbackList(Callback):
    """Calls each hook on every callback in ``callbacks``, in order."""

    def __init__(self, callbacks: list[Callback]):
        self.callbacks = list(callbacks)

    def on_setup(self, trainer, resume: bool) -> None:
        for callback in self.callbacks:
            callback.on_setup(trainer, resume)

    def on_train_start(self, trainer) -> None:
        for callback in self.callbacks:
            callback.on_train_start(trainer)

    def on_step_end(self, trainer) -> None:
        for callback in self.callbacks:
            callback.on_step_end(trainer)

    def on_evaluate(self, trainer, record: dict) -> None:
        for callback in self.callbacks:
            callback.on_evaluate(trainer, record)

    def on_log(self, trainer, record: dict) -> None:
        for callback in self.callbacks:
            callback.on_log(trainer, record)

    def on_checkpoint(self, trainer) -> None:
        for callback in self.callbacks:
            callback.on_checkpoint(trainer)

    def on_interrupt(self, trainer) -> None:
        for callback in self.callbacks:
            callback.on_interrupt(trainer)

    def on_train_end(self, trainer, summary: dict) -> None:
        for callback in self.callbacks:
            callback.on_train_end(trainer, summary)

    def on_results(self, trainer, results: dict) -> None:
        for callback in self.callbacks:
            callback.on_results(trainer, results)

    def state_dict(self) -> dict:
        state: dict = {}
        for callback in self.callbacks:
            state.update(callback.state_dict())
        return state

    def load_state_dict(self, state: dict) -> None:
        for callback in self.callbacks:
            callback.load_state_dict(state)
