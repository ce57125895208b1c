"""The training loop: draw a task, take its next batch, forward, weight the losses, step the
optimizer, evaluate every ``trainer.eval_every`` steps. Models only compute losses.

Everything around the loop is a callback (:class:`~polytask.training.callbacks.Callback`):
``last/`` and resuming (:mod:`.resume`), best weights and early stopping (:mod:`.selection`),
``metrics.jsonl`` and the progress bar (:mod:`.callbacks`), the trackers of ``trainer.report_to``
(:mod:`.tracking`), gradient similarity and structure adaptation (:mod:`.gradients`).
:func:`default_callbacks` picks them from the config.

Training is step-based: each step draws a task from the schedule, then the next batch of that
task. Everything that decides what happens next (model, optimizer, LR schedule, task schedule,
batch iterators, torch RNG, the callbacks' state) is saved in ``last/`` at every evaluation, so
``resume=True`` continues exactly where the run stopped. SIGINT (Ctrl-C) and SIGTERM stop the loop
at the end of the step they land in, and ``last/`` is saved there; a second one stops at once
(landing mid-step, it leaves ``last/`` at the checkpoint before, as SIGKILL does).

Under ``torchrun`` with several processes (:mod:`.distributed`) every rank runs this loop on its
share of each global batch; the gradients are averaged after the backward passes, rank 0 alone
evaluates and writes, and the others follow its decisions.

A loss or gradient norm that is NaN or infinite stops the run (``trainer.on_nonfinite: stop``)
or skips its batch (``skip_batch``); weights that are not finite are never evaluated or saved.
"""
from __future__ import annotations

import logging
import math
import resource
import signal
import threading
import time
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from ..config import ConfigError, ExperimentConfig
from ..data.batching import Encoded, TaskBatchIterator
from ..kinds import get_kind
from ..data.vocab import Vocab
from ..evaluation.evaluate import evaluate_metrics, primary
from . import checkpoint as ckpt
from .callbacks import Callback, CallbackList, MetricsLog, ProgressBar
from .distributed import SingleProcess, refuse_unsupported
from .gradients import GradientSimilarity, StructureAdaptation
from .nonfinite import NonFiniteError, nonfinite_tensors
from .optim import build_lr_schedule, build_optimizer, parameter_groups
from .resume import Checkpointing
from .schedules import build_schedule
from .selection import build_selection
from .tracking import build_trackers
from .weighting import build_weighting

logger = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trainer.device: {name!r} asked for, but no CUDA device is available")
    return torch.device(name)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def default_callbacks(cfg: ExperimentConfig, model: nn.Module, tasks: list[str], run_dir: Path,
                      progress: bool, rank: int = 0) -> list[Callback]:
    """The callbacks of a run, in the order their hooks are called: the progress bar (when
    ``progress``), ``last/`` and resuming, the selection ``trainer.select`` names, gradient
    similarity (when ``trainer.gradient_similarity``), structure adaptation, ``metrics.jsonl`` and
    the trackers of ``trainer.report_to``. Under data-parallel training the ranks other than 0 write
    nothing: they keep resuming (they read ``last/``) and structure adaptation (every rank's model
    changes alike)."""
    t = cfg.trainer
    if rank != 0:
        return [Checkpointing(run_dir), StructureAdaptation(t.structure_batches, cfg.data.batch_size)]
    callbacks: list[Callback] = [ProgressBar(t.max_steps)] if progress else []
    callbacks += [Checkpointing(run_dir), build_selection(cfg, model, tasks, run_dir / "best")]
    if t.gradient_similarity:
        callbacks.append(GradientSimilarity(cfg.data.batch_size))
    callbacks += [StructureAdaptation(t.structure_batches, cfg.data.batch_size),
                  MetricsLog(run_dir / "metrics.jsonl"), *build_trackers(cfg, run_dir)]
    return callbacks


class Trainer:
    """Train ``model`` on ``train`` splits, select on ``dev``, write everything to ``run_dir``.

    Args:
        cfg: the experiment config.
        model: an architecture from :mod:`polytask.models`.
        train / dev: encoded examples per task.
        vocab: saved with the checkpoint.
        task_info: ``{task: {"type": ..., "labels": [...]}}``, saved with the checkpoint.
        run_dir: the output directory.
        progress: show a progress bar and structure changes on the console.
        char_vocab: the character vocabulary, saved with the checkpoint when there is one.
        callbacks: instead of :func:`default_callbacks` (:func:`polytask.runner.train` reads the
            ``best_dev_mean`` and ``best_step`` that a selection adds to the summary).
        group: this process's place in data-parallel training
            (:func:`polytask.training.distributed.process_group`); None: one process.
    """

    def __init__(self, cfg: ExperimentConfig, model: nn.Module, train: dict[str, list[Encoded]],
                 dev: dict[str, list[Encoded]], vocab: Vocab, task_info: dict, run_dir: Path,
                 progress: bool = True, char_vocab: Optional[Vocab] = None,
                 callbacks: Optional[list[Callback]] = None, group: Optional[SingleProcess] = None):
        self.group = group or SingleProcess()
        refuse_unsupported(cfg, self.group.world_size)
        self.cfg, self.model, self.train_items, self.dev_items = cfg, model, train, dev
        self.vocab, self.char_vocab, self.task_info, self.run_dir = vocab, char_vocab, task_info, Path(run_dir)
        self.tasks = list(train)
        t = cfg.trainer
        self.callbacks = CallbackList(default_callbacks(cfg, model, self.tasks, self.run_dir, progress,
                                                        self.group.rank) if callbacks is None else callbacks)
        self.device = self.group.device if self.group.distributed else resolve_device(t.device)
        self.model.to(self.device)
        self.weighting = build_weighting(cfg, self.tasks, cfg.seed).to(self.device)
        self.weighting.average_task_gradients(self.group.average)
        self.params = [p for p in model.parameters() if p.requires_grad] + list(self.weighting.parameters())
        self.optimizer = build_optimizer(cfg, parameter_groups(cfg, model, self.params))
        self.lr_schedule = build_lr_schedule(cfg, self.optimizer)
        # fp16 needs loss scaling against underflow (CUDA); bf16 and fp32 do not, and a disabled
        # scaler passes the losses and the optimizer step through unchanged
        self.scaler = torch.amp.GradScaler(self.device.type,
                                           enabled=t.precision == "fp16" and self.device.type == "cuda")
        self.collate = {task: get_kind(task_info[task]["type"]).collate for task in train}
        self.iterators = {task: TaskBatchIterator(task, items, cfg.data.batch_size, cfg.seed,
                                                  cfg.data.bucket, cfg.data.bucket_window, self.collate[task],
                                                  self.group.rank, self.group.world_size)
                          for task, items in train.items()}
        sizes = {task: len(items) for task, items in train.items()}
        batches = {task: it.batches_per_epoch for task, it in self.iterators.items()}
        self.schedule = build_schedule(t.schedule, sizes, batches, cfg.seed, t.temperature, t.max_steps,
                                       t.pretrain_tasks, t.pretrain_steps)
        self.step = 0
        self.tokens = 0
        self.train_seconds = 0.0
        self.eval_seconds = 0.0              # scoring dev during training (the runner adds the final scoring)
        self.running_losses: dict[str, list[float]] = {}   # per task, since the last evaluation
        self.nonfinite_skipped = 0           # batches skipped for a non-finite loss, since the last evaluation
        self.checkpoint_step: Optional[int] = None   # the step last/ holds (None: none written yet)
        self._weights: dict[str, float] = {}    # the weighting's task weights of the last step
        self.finished: list[str] = []        # tasks that draw no more batches (callbacks add them)
        self.should_stop = False             # set by the loop at max_steps, or by a callback
        self.earlier_wall_seconds = 0.0      # wall time of the processes before a --resume
        self.earlier_peak_rss_mb: Optional[float] = 0.0   # their peak memory (None: not recorded)
        self.stop_requested = False          # a SIGINT/SIGTERM noted on some rank (data-parallel)
        self._signals: Optional[_StopAtStepEnd] = None
        self.rank_rng_states: Optional[list] = None   # every rank's RNG state at the checkpoint point
        self._process_start = time.perf_counter()

    # ------------------------------------------------------------------ the recipe

    def setup(self, resume: bool = False) -> None:
        """Prepare the run directory; with ``resume`` continue the run saved in it."""
        if self.group.is_main:
            with ckpt.writing(self.run_dir, "the run directory"):
                self.run_dir.mkdir(parents=True, exist_ok=True)
        self.callbacks.on_setup(self, resume)
        # every rank starts from rank 0's weights (built from the same seed, or loaded from last/)
        self.group.broadcast_tensors(list(self.model.state_dict().values())
                                     + list(self.weighting.state_dict().values()))

    def train(self) -> dict:
        """Run until ``max_steps`` or until a callback stops the run; returns a summary."""
        t = self.cfg.trainer
        self.should_stop = self.step >= t.max_steps
        self.callbacks.on_train_start(self)
        self._follow_rank0()
        mid_step = False                        # within train_step a KeyboardInterrupt leaves an inexact state
        with _StopAtStepEnd() as signals:
            self._signals = signals
            try:
                while not self.should_stop:
                    t0 = time.perf_counter()
                    mid_step = True
                    weights = self.train_step()
                    mid_step = False
                    self.callbacks.on_step_end(self)
                    self.train_seconds += time.perf_counter() - t0
                    if self.step % t.eval_every == 0 or self.step >= t.max_steps:
                        self.evaluate(weights)
                        self._gather_rng_states()
                        self.callbacks.on_checkpoint(self)
                        self.checkpoint_step = self.step
                    # data-parallel: every rank stops at the step where some rank noted the signal
                    stop = self.stop_requested if self.group.distributed else signals.received is not None
                    if stop:
                        raise TrainingInterrupted(signals.received or signal.SIGTERM)
            except KeyboardInterrupt:
                # between two steps (a signal noted during the step, or a KeyboardInterrupt a
                # second signal or a callback raised there) the state is exact: save it; in the
                # middle of a step (a second signal landing there) it is not: save nothing
                if mid_step:
                    since = "step 0: no checkpoint was written yet" if self.checkpoint_step is None \
                        else f"the checkpoint of step {self.checkpoint_step}"
                    logger.warning("stopped at once, without saving; --resume continues from %s", since)
                else:
                    self._gather_rng_states()
                    self.callbacks.on_interrupt(self)
                raise
        return self.summary()

    def train_step(self) -> dict[str, float]:
        """One optimizer step over ``trainer.grad_accumulation`` draws of the task schedule (or of
        every active task); returns the weighting's task weights of the last draw.

        A loss, or the gradient norm computed for clipping, that is not finite stops the run
        (:class:`NonFiniteError`) before the optimizer step, or with ``on_nonfinite: skip_batch``
        drops the step's gradients and counts the step without an update."""
        t = self.cfg.trainer
        active = [task for task in self.tasks if task not in self.finished]
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        step_losses: list[tuple[str, float]] = []
        for _ in range(t.grad_accumulation):
            step_tasks = active if t.step_mode == "all_tasks" else [self.schedule.next(active, self.step)]
            losses, tokens = {}, 0
            for task in step_tasks:
                iterator = self.iterators[task]
                batch = next(iterator).to(self.device)
                with self._autocast():
                    loss = self.model(batch).loss.float()
                if self.group.distributed:      # this rank's part of the global batch's mean loss
                    loss = loss * (iterator.share * self.group.world_size)
                losses[task] = loss / t.grad_accumulation
                tokens += batch.num_tokens() if iterator.share else 0
            values = {task: loss.item() * t.grad_accumulation for task, loss in losses.items()}
            noted = self._signals is not None and self._signals.received is not None
            values, tokens, self.stop_requested = self.group.reduce_step(values, tokens,
                                                                         self.stop_requested or noted)
            self.tokens += tokens
            bad = {task: v for task, v in values.items() if not math.isfinite(v)}
            if bad:
                return self._nonfinite("loss", bad)
            # the weighting sees the true losses; only what it backpropagates is scaled
            self._weights = self.weighting.backward(losses, self.model, scale=self.scaler.scale)
            step_losses += values.items()
        self.group.average_gradients(self.params)
        self.scaler.unscale_(self.optimizer)
        if t.clip_norm:
            norm = float(torch.nn.utils.clip_grad_norm_(self.params, t.clip_norm))
            # fp16 loss scaling meets infinities by design: the scaler skips those steps itself
            if not math.isfinite(norm) and not self.scaler.is_enabled():
                return self._nonfinite("gradient norm", {task: norm for task, _ in step_losses})
        for task, value in step_losses:
            self.running_losses.setdefault(task, []).append(value)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.lr_schedule.step()
        self.step += 1
        return self._weights

    def _nonfinite(self, what: str, values: dict[str, float]) -> dict[str, float]:
        """Step ``self.step + 1`` met a non-finite ``what`` (per task): log it, then stop or skip."""
        step, action = self.step + 1, self.cfg.trainer.on_nonfinite
        tasks = [task for task in self.tasks if task in values]
        self.log({"step": step, "event": "nonfinite", "what": what, "tasks": tasks, "action": action})
        if action == "stop":
            found = ", ".join(f"{task!r} ({values[task]})" for task in tasks)
            raise NonFiniteError(f"step {step}: the {what} is not finite for {'task' if len(tasks) == 1 else 'tasks'} "
                                 f"{found}; training stopped. {self._kept()}", step, tasks, what)
        self.optimizer.zero_grad(set_to_none=True)
        self.nonfinite_skipped += 1
        self.lr_schedule.step()
        self.step += 1
        return self._weights

    def _kept(self) -> str:
        """What a stopped run leaves, and how to go on."""
        advice = ("Check the data and word vectors, lower trainer.lr, or set trainer.on_nonfinite=skip_batch "
                  "to skip such batches")
        if self.checkpoint_step is None:
            return (f"No checkpoint was written yet (the first comes at step {self.cfg.trainer.eval_every}). "
                    f"{advice}, then train again.")
        return f"last/ (step {self.checkpoint_step}) and best/ keep the last finite state. {advice}, then --resume."

    def evaluate(self, weights: dict[str, float]) -> dict:
        """Score every task on dev, let the callbacks judge the scores, log the record. Weights
        that are not finite are not scored (their constant predictions could look good): the run
        stops with :class:`NonFiniteError`."""
        bad = nonfinite_tensors({**self.model.state_dict(), **self.weighting.state_dict()})
        if bad:
            self.log({"step": self.step, "event": "nonfinite", "what": "weights", "tasks": [], "action": "stop"})
            raise NonFiniteError(f"step {self.step}: the weights are not finite ({len(bad)} tensors: "
                                 f"{', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}); training stopped "
                                 f"before this evaluation. {self._kept()}", self.step, (), "weights")
        if not self.group.is_main:
            return {}                           # rank 0 evaluates; _follow_rank0 brings its decisions
        # every metric (what evaluate_model computes anyway): the selection keeps them with best/
        # so that the runner need not score dev again (see polytask.runner._kept_dev_metrics)
        t0 = time.perf_counter()
        self.last_dev_metrics = evaluate_metrics(self.model, self.dev_items, self.cfg.data.eval_batch_size,
                                                 self.device, self.task_info, getattr(self.vocab, "itos", None))
        self.eval_seconds += time.perf_counter() - t0
        dev = primary(self.last_dev_metrics)
        record = {"step": self.step, "event": "eval",
                  "train_loss": {k: sum(v) / len(v) for k, v in self.running_losses.items()},
                  "dev": dev, "weights": weights,
                  "dev_mean": sum(dev.values()) / len(dev) if dev else float("nan")}
        if self.cfg.trainer.on_nonfinite == "skip_batch":
            record["nonfinite_skipped"] = self.nonfinite_skipped
        self.running_losses, self.nonfinite_skipped = {}, 0
        self.should_stop = self.step >= self.cfg.trainer.max_steps
        self.callbacks.on_evaluate(self, record)
        record.update({"lr": self.lr_schedule.get_last_lr()[0], "finished": list(self.finished),
                       "tokens_per_s": self.tokens / max(self.train_seconds, 1e-9)})
        self.log(record)
        return record

    def log(self, record: dict) -> None:
        """Hand ``record`` (``{"step", "event", ...}``) to the logging callbacks (rank 0's)."""
        if self.group.is_main:
            self.callbacks.on_log(self, record)

    # ------------------------------------------------------------------ data-parallel training

    def _follow_rank0(self) -> None:
        """Data-parallel: after rank 0's callbacks judged the dev scores, every rank takes their
        decisions (stop, finished tasks), so that the ranks keep drawing the same tasks."""
        if self.group.distributed:
            self.should_stop, finished = self.group.broadcast_object((self.should_stop, self.finished))
            self.finished[:] = finished

    def _gather_rng_states(self) -> None:
        """Data-parallel, at a checkpoint point: every rank's RNG states, for rank 0's ``last/``;
        and a check that the ranks' weights are still equal."""
        if self.group.distributed:
            self._follow_rank0()
            self.group.check_same_weights(self.model.state_dict())
            self.rank_rng_states = self.group.gather_objects(self._rng_state())

    def _rng_state(self) -> dict:
        state = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def summary(self) -> dict:
        """The run's figures: steps, the selection's best dev mean and step, time, memory."""
        summary: dict = {"steps": self.step}
        self.callbacks.on_train_end(self, summary)
        peak = self.peak_rss_mb()
        summary.update({"train_seconds": self.train_seconds, "eval_seconds": self.eval_seconds,
                        "wall_seconds": self.wall_seconds(),
                        "train_tokens_per_s": self.tokens / max(self.train_seconds, 1e-9),
                        "peak_rss_mb": peak_rss_mb() if peak is None else peak,
                        "peak_rss_covers_run": peak is not None})
        return summary

    def load_best(self) -> None:
        """Load the weights that the selection kept in ``best/``."""
        path = self.run_dir / "best" / "model.safetensors"
        if path.is_file():
            ckpt.load_weights(self.model, path)

    def _autocast(self):
        precision = self.cfg.trainer.precision
        if precision == "fp32":
            return torch.autocast(self.device.type, enabled=False)
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    # ------------------------------------------------------------------ state for exact resume

    def state_dict(self) -> dict:
        """The loop's place, JSON-serialisable (``last/state.json``): step, task schedule, batch
        iterators, finished tasks, counters, the losses since the last evaluation and the
        weighting's own state."""
        return {"step": self.step, "schedule_name": self.cfg.trainer.schedule,
                "schedule": self.schedule.state_dict(),
                "iterators": {t: it.state_dict() for t, it in self.iterators.items()},
                "finished": self.finished, "tokens": self.tokens, "train_seconds": self.train_seconds,
                "eval_seconds": self.eval_seconds,
                "wall_seconds": self.wall_seconds(), "peak_rss_mb": self.peak_rss_mb(),
                "weighting": self.weighting.extra_state(), "running_losses": self.running_losses,
                "nonfinite_skipped": self.nonfinite_skipped, "world_size": self.group.world_size}

    def tensor_state_dict(self) -> dict:
        """The loop's tensors (``last/trainer.pt``): optimizer, weighting parameters, LR schedule,
        torch RNG."""
        tensors = {"optimizer": self.optimizer.state_dict(), "weighting": self.weighting.state_dict(),
                   "lr_schedule": self.lr_schedule.state_dict(), "torch_rng": torch.get_rng_state()}
        if self.group.distributed:             # each rank's own (dropout masks differ between ranks)
            tensors["rank_rng"] = self.rank_rng_states
        return tensors

    def load_state_dict(self, state: dict, tensors: dict) -> None:
        """Restore what :meth:`state_dict` and :meth:`tensor_state_dict` saved.

        The learning rates and weight decay come from this run's config, not from the saved
        optimizer, so a resume with a new ``trainer.lr`` (or LR schedule) trains with it from the
        step it resumes at; a task schedule of another kind starts from its own seed."""
        configured = [(group["initial_lr"], group["weight_decay"]) for group in self.optimizer.param_groups]
        self.optimizer.load_state_dict(tensors["optimizer"])
        self.weighting.load_state_dict(tensors["weighting"])
        self.weighting.load_extra_state(state.get("weighting", {}))
        self.lr_schedule.load_state_dict(tensors["lr_schedule"])
        self._use_configured_lr(configured)
        if self.group.distributed:
            rng = tensors["rank_rng"][self.group.rank]
            torch.set_rng_state(rng["torch"])
            if "cuda" in rng and self.device.type == "cuda":
                torch.cuda.set_rng_state(rng["cuda"], self.device)
        else:
            torch.set_rng_state(tensors["torch_rng"])
        if state.get("schedule_name", self.cfg.trainer.schedule) == self.cfg.trainer.schedule:
            self.schedule.load_state_dict(state["schedule"])
        for task, s in state["iterators"].items():
            self.iterators[task].load_state_dict(s)
        self.step, self.finished, self.tokens = state["step"], state["finished"], state["tokens"]
        self.checkpoint_step = self.step
        self.train_seconds = state["train_seconds"]
        self.eval_seconds = state.get("eval_seconds", 0.0)     # absent in checkpoints of older code
        self.running_losses = {task: list(v) for task, v in state.get("running_losses", {}).items()}
        self.nonfinite_skipped = state.get("nonfinite_skipped", 0)
        self.earlier_wall_seconds = state.get("wall_seconds", 0.0)
        self.earlier_peak_rss_mb = state.get("peak_rss_mb")    # absent in checkpoints of older code

    def _use_configured_lr(self, configured: list[tuple[float, float]]) -> None:
        """Set each parameter group's base LR and weight decay to ``configured`` and its current LR
        to what the LR schedule gives at the restored step (``base × factor(step)``, the very
        expression the schedule uses, so an unchanged LR is restored bit for bit)."""
        schedule = self.lr_schedule
        schedule.base_lrs = [lr for lr, _ in configured]
        for group, factor, (lr, decay) in zip(self.optimizer.param_groups, schedule.lr_lambdas, configured):
            group["initial_lr"], group["weight_decay"] = lr, decay
            group["lr"] = lr * factor(schedule.last_epoch)
        schedule._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def wall_seconds(self) -> float:
        """Wall time of this run so far, over every process that trained it (resumes included)."""
        return self.earlier_wall_seconds + time.perf_counter() - self._process_start

    def peak_rss_mb(self) -> Optional[float]:
        """Peak resident memory over every process that trained this run; None when a process
        before a --resume did not record its own (its checkpoint came from older code)."""
        return None if self.earlier_peak_rss_mb is None else max(self.earlier_peak_rss_mb, peak_rss_mb())


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped the loop at the end of a step; ``signum`` says which."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _StopAtStepEnd:
    """Within, SIGINT and SIGTERM do not interrupt the step they land in: the handler notes the
    signal (``received``) and the loop stops at the end of the step, where its state is exact. A
    second signal raises KeyboardInterrupt at once (the loop saves nothing if it lands mid-step).
    Signal handlers belong to the main thread; elsewhere the signals keep their handlers."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self) -> "_StopAtStepEnd":
        self.received: Optional[int] = None
        self.previous: dict = {}
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self.previous[signum] = signal.signal(signum, self._note)
        return self

    def _note(self, signum, frame) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
