"""The trainer owns the loop: device, optimizer, task schedule, clipping, evaluation, early
stopping, checkpoints, logging and progress. Models only compute losses.

Training is step-based: each step draws a task from the schedule, then the next batch of that
task. Everything that decides what happens next (model, optimizer, LR schedule, task schedule,
batch iterators, torch RNG, early-stopping counters) is saved in ``last/`` at every evaluation,
so ``resume=True`` continues exactly where the run stopped.
"""
from __future__ import annotations

import json
import math
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Optional

import torch
import yaml
from torch import nn

from ..config import ConfigError, ExperimentConfig, config_differences, save_config, to_dict
from ..data.batching import Encoded, TaskBatchIterator
from ..data.vocab import Vocab
from ..evaluation.evaluate import evaluate_model
from . import checkpoint as ckpt
from .schedules import build_schedule
from .weighting import build_weighting


def build_optimizer(cfg, params) -> torch.optim.Optimizer:
    t = cfg.trainer
    # the fused kernels are several times faster than the loop, also on CPU (7 ms against 48 ms a
    # step for a 70k x 200 embedding table); fall back where a build lacks them
    if t.optimizer in ("adam", "adamw"):
        cls = torch.optim.Adam if t.optimizer == "adam" else torch.optim.AdamW
        try:
            return cls(params, lr=t.lr, weight_decay=t.weight_decay, fused=True)
        except (RuntimeError, TypeError):
            return cls(params, lr=t.lr, weight_decay=t.weight_decay)
    if t.optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr=t.lr, weight_decay=t.weight_decay)
    raise ConfigError(f"trainer.optimizer: unknown optimizer {t.optimizer!r}")


def parameter_groups(cfg, model: nn.Module, params: list) -> list[dict]:
    """One group, or two when ``trainer.embedding_lr`` gives the word vectors a learning rate of
    their own (Sun 2019 trains the word vectors of the Transformer slower than the rest)."""
    if cfg.trainer.embedding_lr is None:
        return [{"params": params}]
    from ..modules.embeddings import WordEmbedding
    words = {id(p) for m in model.modules() if isinstance(m, WordEmbedding) for p in m.parameters()}
    return [{"params": [p for p in params if id(p) not in words]},
            {"params": [p for p in params if id(p) in words], "lr": cfg.trainer.embedding_lr}]


def build_lr_schedule(cfg, optimizer) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up, then constant, linear or cosine decay to zero at ``max_steps``."""
    t = cfg.trainer

    def factor(step: int) -> float:
        if t.warmup_steps and step < t.warmup_steps:
            return (step + 1) / t.warmup_steps
        if t.lr_schedule == "constant":
            return 1.0
        progress = (step - t.warmup_steps) / max(1, t.max_steps - t.warmup_steps)
        progress = min(max(progress, 0.0), 1.0)
        if t.lr_schedule == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trainer.device: {name!r} asked for, but no CUDA device is available")
    return torch.device(name)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class Trainer:
    """Train ``model`` on ``train`` splits, select on ``dev``, write everything to ``run_dir``.

    Args:
        cfg: the experiment config.
        model: an architecture from :mod:`polytask.models`.
        train / dev: encoded examples per task.
        vocab: saved with the checkpoint.
        task_info: ``{task: {"type": ..., "labels": [...]}}``, saved with the checkpoint.
        run_dir: the output directory.
    """

    def __init__(self, cfg: ExperimentConfig, model: nn.Module, train: dict[str, list[Encoded]],
                 dev: dict[str, list[Encoded]], vocab: Vocab, task_info: dict, run_dir: Path,
                 progress: bool = True, char_vocab: Optional[Vocab] = None):
        self.progress, self.char_vocab = progress, char_vocab
        self.cfg, self.model, self.train_items, self.dev_items = cfg, model, train, dev
        self.vocab, self.task_info, self.run_dir = vocab, task_info, Path(run_dir)
        self.tasks = list(train)
        t = cfg.trainer
        if t.select == "per_task" and not getattr(model, "independent_tasks", False):
            raise ConfigError("trainer.select: 'per_task' needs an architecture whose tasks share "
                              f"nothing (single_task), not {cfg.model.architecture!r}")
        self.device = resolve_device(t.device)
        self.model.to(self.device)
        self.weighting = build_weighting(cfg, self.tasks, cfg.seed).to(self.device)
        self.params = [p for p in model.parameters() if p.requires_grad] + list(self.weighting.parameters())
        self.optimizer = build_optimizer(cfg, parameter_groups(cfg, model, self.params))
        self.lr_schedule = build_lr_schedule(cfg, self.optimizer)
        self.iterators = {task: TaskBatchIterator(task, items, cfg.data.batch_size, cfg.seed,
                                                  cfg.data.bucket, cfg.data.bucket_window)
                          for task, items in train.items()}
        sizes = {task: len(items) for task, items in train.items()}
        batches = {task: it.batches_per_epoch for task, it in self.iterators.items()}
        self.schedule = build_schedule(t.schedule, sizes, batches, cfg.seed, t.temperature, t.max_steps,
                                       t.pretrain_tasks, t.pretrain_steps)
        self.step = 0
        self.best: dict = {"mean": -math.inf, "step": 0, "tasks": {}}
        self.bad_evals: dict[str, int] = {"mean": 0}
        self.finished: list[str] = []
        self.tokens = 0
        self.train_seconds = 0.0
        self.earlier_wall_seconds = 0.0      # wall time of the processes before a --resume
        self.earlier_peak_rss_mb: Optional[float] = 0.0   # their peak memory (None: not recorded)
        self._process_start = time.perf_counter()
        self._best_state: Optional[dict[str, torch.Tensor]] = None
        self._writer = None
        # fp16 needs loss scaling against underflow (CUDA); bf16 and fp32 do not
        self.scaler = torch.amp.GradScaler("cuda") if t.precision == "fp16" and self.device.type == "cuda" else None
        self._task_param_names = self._param_names_by_task()

    # ------------------------------------------------------------------ setup / checkpoints

    def _param_names_by_task(self) -> dict[str, list[str]]:
        names = {id(p): n for n, p in self.model.named_parameters()}
        return {task: [names[id(p)] for p in self.model.task_parameters(task)] for task in self.tasks}

    def setup(self, resume: bool = False) -> None:
        """Prepare the run directory; with ``resume`` restore the state saved in ``last/``."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        last = self.run_dir / "last"
        ckpt.recover_dir(last)
        ckpt.recover_dir(self.run_dir / "best")
        if resume and (last / "state.json").is_file():
            changed = self._warn_changed_config()
            self._load_last(last)
            if changed:                      # the weights fit: the run goes on under the new settings
                save_config(self.cfg, self.run_dir / "config.yaml")
            return
        if resume:
            print(f"[polytask] no checkpoint in {last}; starting from step 0", file=sys.stderr)
        elif last.exists():
            raise FileExistsError(f"{self.run_dir} already holds a run; pass --resume to continue it "
                                  "or choose another output_dir")
        save_config(self.cfg, self.run_dir / "config.yaml")
        self.vocab.save(self.run_dir / "vocab.json")
        if self.char_vocab is not None:
            self.char_vocab.save(self.run_dir / "chars.json")
        ckpt.write_json(self.run_dir / "tasks.json", self.task_info)
        (self.run_dir / "metrics.jsonl").write_text("", encoding="utf-8")
        torch.manual_seed(self.cfg.seed)

    def _warn_changed_config(self) -> list[str]:
        """Say which settings differ from the ones the run was last trained with (a longer
        ``trainer.max_steps`` is the usual, deliberate one)."""
        saved = self.run_dir / "config.yaml"
        if not saved.is_file():
            return []
        changed = config_differences(yaml.safe_load(saved.read_text(encoding="utf-8")) or {}, to_dict(self.cfg))
        if changed:
            print(f"[polytask] resuming {self.run_dir} with settings that differ from its config.yaml: "
                  + "; ".join(changed), file=sys.stderr)
        return changed

    def _load_last(self, last: Path) -> None:
        state = ckpt.read_json(last / "state.json")
        ckpt.load_weights(self.model, last / "model.safetensors")
        blobs = ckpt.load_trainer_state(last / "trainer.pt")
        self.optimizer.load_state_dict(blobs["optimizer"])
        self.weighting.load_state_dict(blobs["weighting"])
        self.weighting.load_extra_state(state.get("weighting", {}))
        self.lr_schedule.load_state_dict(blobs["lr_schedule"])
        torch.set_rng_state(blobs["torch_rng"])
        self.schedule.load_state_dict(state["schedule"])
        for task, s in state["iterators"].items():
            self.iterators[task].load_state_dict(s)
        self.step, self.best, self.bad_evals = state["step"], state["best"], state["bad_evals"]
        self.finished, self.tokens = state["finished"], state["tokens"]
        self.train_seconds = state["train_seconds"]
        self.earlier_wall_seconds = state.get("wall_seconds", 0.0)
        self.earlier_peak_rss_mb = state.get("peak_rss_mb")    # absent in checkpoints of older code
        if self.best["mean"] is None:
            self.best["mean"] = -math.inf
        if self.cfg.trainer.select == "per_task" and (self.run_dir / "best" / "model.safetensors").is_file():
            self._best_state = ckpt.read_weights(self.run_dir / "best" / "model.safetensors")
        # drop log lines written after the checkpoint by the interrupted run
        log = self.run_dir / "metrics.jsonl"
        if log.is_file():
            kept = [line for line in log.read_text(encoding="utf-8").splitlines()
                    if line and json.loads(line).get("step", 0) <= self.step]
            log.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        print(f"[polytask] resumed {self.run_dir} at step {self.step}", file=sys.stderr)

    def wall_seconds(self) -> float:
        """Wall time of this run so far, over every process that trained it (resumes included)."""
        return self.earlier_wall_seconds + time.perf_counter() - self._process_start

    def peak_rss_mb(self) -> Optional[float]:
        """Peak resident memory over every process that trained this run; None when a process
        before a --resume did not record its own (its checkpoint came from older code)."""
        return None if self.earlier_peak_rss_mb is None else max(self.earlier_peak_rss_mb, peak_rss_mb())

    def save_checkpoint(self) -> None:
        state = {"step": self.step, "schedule": self.schedule.state_dict(),
                 "iterators": {t: it.state_dict() for t, it in self.iterators.items()},
                 "best": {**self.best, "mean": None if self.best["mean"] == -math.inf else self.best["mean"]},
                 "bad_evals": self.bad_evals, "finished": self.finished, "tokens": self.tokens,
                 "train_seconds": self.train_seconds, "wall_seconds": self.wall_seconds(),
                 "peak_rss_mb": self.peak_rss_mb(), "weighting": self.weighting.extra_state()}

        def write(tmp: Path) -> None:
            ckpt.save_weights(self.model.state_dict(), tmp / "model.safetensors")
            ckpt.save_trainer_state(tmp / "trainer.pt", {
                "optimizer": self.optimizer.state_dict(),
                "weighting": self.weighting.state_dict(),
                "lr_schedule": self.lr_schedule.state_dict(),
                "torch_rng": torch.get_rng_state()})
            ckpt.write_json(tmp / "state.json", state)

        ckpt.atomic_dir_write(self.run_dir / "last", write)

    def _save_best(self, weights: dict[str, torch.Tensor], info: dict) -> None:
        def write(tmp: Path) -> None:
            ckpt.save_weights(weights, tmp / "model.safetensors")
            ckpt.write_json(tmp / "state.json", info)
        ckpt.atomic_dir_write(self.run_dir / "best", write)

    def log(self, record: dict) -> None:
        """Append to ``metrics.jsonl``; mirror the numbers to TensorBoard when it is installed."""
        with (self.run_dir / "metrics.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        writer = self._tensorboard()
        if writer is not None:
            step = record["step"]
            for task, value in record.get("dev", {}).items():
                writer.add_scalar(f"dev/{task}", value, step)
            for task, value in record.get("train_loss", {}).items():
                writer.add_scalar(f"train_loss/{task}", value, step)
            for key in ("dev_mean", "lr", "tokens_per_s"):
                if key in record:
                    writer.add_scalar(key, record[key], step)
            writer.flush()

    def _tensorboard(self):
        if self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self._writer = SummaryWriter(str(self.run_dir / "tensorboard"))
            except ImportError:  # tensorboard is optional: pip install 'polytask[tensorboard]'
                self._writer = False
        return self._writer or None

    # ------------------------------------------------------------------ evaluation / selection

    def task_gradients(self, params: list[torch.nn.Parameter], batches: int = 1,
                       source: str = "dev") -> list[Optional[torch.Tensor]]:
        """Each task's loss gradient on ``params``, flattened, summed over its first ``batches``
        batches of ``source`` ("dev" or "train"; None for a task without such data). Dropout is
        off and no batch is drawn from the training stream, so asking changes nothing about
        training. (cuDNN's RNN backward refuses eval mode, so cuDNN is off for this.)"""
        from ..data.batching import eval_batches
        grads: list[Optional[torch.Tensor]] = []
        data = self.dev_items if source == "dev" else self.train_items
        self.model.eval()
        try:
            with torch.backends.cudnn.flags(enabled=False):
                for task in self.tasks:
                    items = data.get(task) or []
                    if not items or not params:
                        grads.append(None)
                        continue
                    total = None
                    for _, batch in zip(range(batches), eval_batches(task, items, self.cfg.data.batch_size)):
                        g = torch.autograd.grad(self.model(batch.to(self.device)).loss, params, allow_unused=True)
                        flat = torch.cat([(x if x is not None else torch.zeros_like(p)).reshape(-1)
                                          for x, p in zip(g, params)])
                        total = flat if total is None else total + flat
                    grads.append(total)
        finally:
            self.model.train()
        return grads

    def gradient_cosines(self) -> list[list[float]]:
        """Cosine similarity between the tasks' gradients on the shared parameters, each from the
        first dev batch of the task. Tasks without dev data get NaN rows."""
        shared = [p for p in self.model.shared_parameters() if p.requires_grad]
        grads = self.task_gradients(shared)
        matrix = []
        for a in grads:
            row = []
            for b in grads:
                if a is None or b is None:
                    row.append(float("nan"))
                else:
                    row.append(float(torch.nn.functional.cosine_similarity(a, b, dim=0)))
            matrix.append(row)
        return matrix

    def _adapt_structure(self) -> None:
        """Let an architecture that changes its own structure (``fully_adaptive``) do so."""
        adapt = getattr(self.model, "adapt", None)
        if adapt is None:
            return

        def gradients(params):
            grads = self.task_gradients(params, batches=self.cfg.trainer.structure_batches, source="train")
            return torch.stack([g if g is not None else torch.zeros_like(next(x for x in grads if x is not None))
                                for g in grads])
        event = adapt(self.step, gradients)
        if event:
            self.log({"step": self.step, "event": "structure", **event})
            if self.progress:
                print(f"\n[polytask] step {self.step}: layer {event['layer']} now branches as {event['groups']}",
                      file=sys.stderr)

    def evaluate_dev(self) -> dict[str, float]:
        return evaluate_model(self.model, self.dev_items, self.cfg.data.eval_batch_size, self.device,
                              self.task_info, getattr(self.vocab, "itos", None))

    def _select(self, dev: dict[str, float]) -> bool:
        """Update best weights and early-stopping counters; True when training should stop."""
        t = self.cfg.trainer
        if not dev:  # no dev data: keep the last weights as the best
            self._save_best(self.model.state_dict(), {"step": self.step, "dev": {}})
            return False
        mean = sum(dev.values()) / len(dev)
        if t.select == "mean":
            if mean > self.best["mean"]:
                self.best = {"mean": mean, "step": self.step, "tasks": dict(dev)}
                self.bad_evals["mean"] = 0
                self._save_best(self.model.state_dict(), {"step": self.step, "dev": dev})
            else:
                self.bad_evals["mean"] += 1
            return t.patience is not None and self.bad_evals["mean"] >= t.patience
        # per task: each task keeps its own best weights and stops on its own patience
        if self._best_state is None:
            self._best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        current = self.model.state_dict()
        improved = False
        for task, score in dev.items():
            if task in self.finished:
                continue
            if score > self.best["tasks"].get(task, {}).get("dev", -math.inf):
                self.best["tasks"][task] = {"dev": score, "step": self.step}
                self.bad_evals[task] = 0
                for name in self._task_param_names[task]:
                    self._best_state[name] = current[name].detach().clone()
                improved = True
            else:
                self.bad_evals[task] = self.bad_evals.get(task, 0) + 1
                if t.patience is not None and self.bad_evals[task] >= t.patience:
                    self.finished.append(task)
        best_dev = {task: b["dev"] for task, b in self.best["tasks"].items()}
        self.best["mean"] = sum(best_dev.values()) / len(best_dev)
        if improved:
            self.best["step"] = self.step  # the last step at which any task improved
            self._save_best(self._best_state, {"step": self.step, "dev": best_dev,
                                               "per_task": self.best["tasks"]})
        return len(self.finished) == len(self.tasks)

    def _patience_spent(self) -> bool:
        """True when every task is done: a run resumed under a ``trainer.patience`` that its dev
        curve has already used up (it was trained without one, or with a longer one) stops at once,
        keeping the best checkpoint that the patience would have kept."""
        t = self.cfg.trainer
        if t.patience is not None and t.select == "mean":
            return self.bad_evals["mean"] >= t.patience
        if t.patience is not None:
            self.finished += [task for task in self.tasks
                              if task not in self.finished and self.bad_evals.get(task, 0) >= t.patience]
        return len(self.finished) == len(self.tasks)

    def _autocast(self):
        precision = self.cfg.trainer.precision
        if precision == "fp32":
            return torch.autocast(self.device.type, enabled=False)
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    # ------------------------------------------------------------------ the loop

    def train(self) -> dict:
        """Run until ``max_steps`` or early stopping; returns a summary."""
        t = self.cfg.trainer
        try:
            from tqdm.auto import tqdm
        except ImportError:  # pragma: no cover
            tqdm = None
        bar = tqdm(total=t.max_steps, initial=self.step, disable=not self.progress or tqdm is None,
                   desc="train", dynamic_ncols=True, mininterval=1.0) if tqdm else None
        running: dict[str, list[float]] = {}
        stop = self.step >= t.max_steps or self._patience_spent()
        previous_handler = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            while not stop:
                t0 = time.perf_counter()
                active = [task for task in self.tasks if task not in self.finished]
                self.model.train()
                self.optimizer.zero_grad(set_to_none=True)
                for _ in range(t.grad_accumulation):
                    step_tasks = active if t.step_mode == "all_tasks" else [self.schedule.next(active, self.step)]
                    losses = {}
                    for task in step_tasks:
                        batch = next(self.iterators[task]).to(self.device)
                        with self._autocast():
                            losses[task] = self.model(batch).loss.float() / t.grad_accumulation
                        self.tokens += int(batch.lengths.sum()) + (int(batch.lengths_b.sum())
                                                                   if batch.lengths_b is not None else 0)
                    # the weighting sees the true losses; only what it backpropagates is scaled
                    weights = self.weighting.backward(losses, self.model,
                                                      **({"scale": self.scaler.scale} if self.scaler else {}))
                    for task, loss in losses.items():
                        running.setdefault(task, []).append(loss.item() * t.grad_accumulation)
                if self.scaler:
                    self.scaler.unscale_(self.optimizer)
                if t.clip_norm:
                    torch.nn.utils.clip_grad_norm_(self.params, t.clip_norm)
                if self.scaler:
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                else:
                    self.optimizer.step()
                self.lr_schedule.step()
                self.step += 1
                self._adapt_structure()
                self.train_seconds += time.perf_counter() - t0
                if bar:
                    bar.update(1)
                if self.step % t.eval_every == 0 or self.step >= t.max_steps:
                    dev = self.evaluate_dev()
                    mean_losses = {k: sum(v) / len(v) for k, v in running.items()}
                    running = {}
                    stop = self._select(dev) or self.step >= t.max_steps
                    mean = sum(dev.values()) / len(dev) if dev else float("nan")
                    extra = {"grad_cosine": {"tasks": self.tasks, "matrix": self.gradient_cosines()}} \
                        if t.gradient_similarity else {}
                    self.log({**extra, "step": self.step, "event": "eval", "train_loss": mean_losses, "dev": dev,
                              "weights": weights,
                              "dev_mean": mean, "best_dev_mean": self.best["mean"],
                              "lr": self.lr_schedule.get_last_lr()[0], "finished": list(self.finished),
                              "tokens_per_s": self.tokens / max(self.train_seconds, 1e-9)})
                    self.save_checkpoint()
                    if bar:
                        bar.set_postfix(dev=f"{mean:.2f}", best=f"{self.best['mean']:.2f}")
        except KeyboardInterrupt:
            self.save_checkpoint()
            if bar:
                bar.close()
            print(f"\n[polytask] interrupted at step {self.step}; checkpoint saved. Continue with "
                  f"--resume (output_dir {self.run_dir}).", file=sys.stderr)
            raise
        finally:
            signal.signal(signal.SIGTERM, previous_handler)
        if bar:
            bar.close()
        peak = self.peak_rss_mb()
        return {"steps": self.step, "best_dev_mean": self.best["mean"], "best_step": self.best.get("step"),
                "train_seconds": self.train_seconds, "wall_seconds": self.wall_seconds(),
                "train_tokens_per_s": self.tokens / max(self.train_seconds, 1e-9),
                "peak_rss_mb": peak_rss_mb() if peak is None else peak, "peak_rss_covers_run": peak is not None}

    def load_best(self) -> None:
        path = self.run_dir / "best" / "model.safetensors"
        if path.is_file():
            ckpt.load_weights(self.model, path)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt
