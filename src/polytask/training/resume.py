"""Exact resume: the ``last/`` checkpoint and the files of a fresh run directory."""
from __future__ import annotations

import logging
from pathlib import Path

import torch
import yaml

from ..config import ConfigError, config_differences, save_config, to_dict
from . import checkpoint as ckpt
from .callbacks import Callback
from .nonfinite import refuse_nonfinite

logger = logging.getLogger(__name__)

# The settings a resumed run may change: each takes effect from the step the run resumes at (the
# learning rates reach the optimizer's parameter groups; the LR and task schedules, the weighting's
# options, patience and max_steps are read from the new config). A change of any other setting
# (the architecture, model sizes, tasks, vocabulary, seed, optimizer, weighting method, ...) is
# refused: the saved weights and state were made with it.
RESUMABLE = ("data_dir", "data.eval_batch_size",
             "model.dropout", "model.word_dropout", "model.encoder.dropout",
             "trainer.max_steps", "trainer.lr", "trainer.embedding_lr", "trainer.weight_decay",
             "trainer.clip_norm", "trainer.lr_schedule", "trainer.warmup_steps", "trainer.schedule",
             "trainer.temperature", "trainer.pretrain_tasks", "trainer.pretrain_steps", "trainer.step_mode",
             "trainer.weighting_options", "trainer.eval_every", "trainer.grad_accumulation",
             "trainer.precision", "trainer.gradient_similarity", "trainer.structure_batches",
             "trainer.patience", "trainer.device", "trainer.on_nonfinite")


# Library defaults that changed, with the value they had before (key -> earlier default). A run
# started under the earlier default and resumed without the key set to anything else keeps the
# value it started with, so that an upgrade does not turn a resume into a refused change.
EARLIER_DEFAULTS = {"data.bucket_window": 50}


def keep_earlier_defaults(saved: dict, cfg) -> list[str]:
    """Set on ``cfg`` each :data:`EARLIER_DEFAULTS` key whose saved value is the earlier default
    while ``cfg`` has today's default (the key was left to the library); returns ``key: value``
    for each kept."""
    kept = []
    for key, earlier in EARLIER_DEFAULTS.items():
        section, name = key.split(".")
        value = saved.get(section, {}).get(name) if isinstance(saved.get(section), dict) else None
        target = getattr(cfg, section)
        current_default = type(target).__dataclass_fields__[name].default
        if value == earlier and getattr(target, name) == current_default != earlier:
            setattr(target, name, earlier)
            kept.append(f"{key}: {earlier!r}")
    return kept


def resume_changes(saved: dict, cfg) -> list[str]:
    """The settings of ``cfg`` that differ from ``saved`` (the run's ``config.yaml``), as
    ``key: old -> new``; raises :class:`ConfigError` naming the first that cannot change."""
    changed = config_differences(saved, to_dict(cfg))
    for change in changed:
        key = change.split(": ", 1)[0]
        if not any(key == k or key.startswith(k + ".") for k in RESUMABLE):
            raise ConfigError(f"{change}: this setting cannot change on --resume (the saved weights and "
                              "state were made with it); resume with the run's own setting, or start a "
                              "new run in another output_dir")
    old_lr = saved.get("trainer", {}).get("embedding_lr")
    if (old_lr is None) != (cfg.trainer.embedding_lr is None):
        raise ConfigError(f"trainer.embedding_lr: {old_lr!r} -> {cfg.trainer.embedding_lr!r}: this setting "
                          "cannot change on --resume between null and a number (it adds or removes an "
                          "optimizer parameter group); change its value only")
    return changed


class Checkpointing(Callback):
    """Saves ``last/`` at every checkpoint point (each evaluation, and the end of the step an
    interrupt landed in), and on ``resume`` restores the run from it, so the resumed run ends
    exactly as an uninterrupted one.

    ``last/`` holds the model weights (``model.safetensors``), the trainer's tensors (``trainer.pt``:
    optimizer, weighting parameters, LR schedule, torch RNG) and ``state.json``: the trainer's
    counters and positions with every callback's :meth:`~Callback.state_dict` beside them. It is
    written through a temporary directory and a rename, so a kill mid-write leaves the previous one.

    A resume may change the settings in :data:`RESUMABLE`; they take effect from the step it
    resumes at, are printed and logged (a ``"resume"`` record), and ``config.yaml`` is rewritten
    with them. Any other change is refused before anything is loaded (:func:`resume_changes`).

    A fresh run (no ``resume``, or nothing to resume) gets the files that :func:`polytask.runner.load_run`
    reads (``config.yaml``, ``vocab.json``, ``chars.json``, ``tasks.json``) and seeds torch from
    ``cfg.seed``; a directory that already holds a run is refused unless resumed. This callback
    must come before the callbacks whose ``on_setup`` reads the restored ``trainer.step``.

    Under data-parallel training (:mod:`.distributed`) only rank 0 writes; every rank reads
    ``last/`` on resume (so on several machines ``output_dir`` must be on a filesystem they all
    see), a checkpoint of another world size is refused, and each rank restores its own random
    state (rank 0 gathered them into ``trainer.pt``). A fresh run seeds rank r's torch RNG with
    ``seed + r``, so the ranks' dropout masks differ.
    """

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.last = self.run_dir / "last"
        self.changed: list[str] = []

    def on_setup(self, trainer, resume: bool) -> None:
        group = trainer.group
        if group.is_main:
            ckpt.recover_dir(self.last)
        group.barrier()                           # the other ranks read last/ once it is whole
        if resume and (self.last / "state.json").is_file():
            self.changed = self._changed_settings(trainer.cfg, quiet=not group.is_main)
            self.restore(trainer)
            group.barrier()                       # every rank read config.yaml before it is rewritten
            if group.is_main:
                with ckpt.writing(self.run_dir / "config.yaml", "the run's config"):
                    save_config(trainer.cfg, self.run_dir / "config.yaml")    # what the run goes on with
            return
        if resume and group.is_main:
            logger.warning("no checkpoint in %s; starting from step 0", self.last)
        elif not resume and self.last.exists():
            raise FileExistsError(f"{self.run_dir} already holds a run; pass --resume to continue it "
                                  "or choose another output_dir")
        if not group.is_main:
            torch.manual_seed(trainer.cfg.seed + group.rank)
            return
        with ckpt.writing(self.run_dir, "the run's config and vocabularies"):
            save_config(trainer.cfg, self.run_dir / "config.yaml")
            trainer.vocab.save(self.run_dir / "vocab.json")
            if trainer.char_vocab is not None:
                trainer.char_vocab.save(self.run_dir / "chars.json")
            ckpt.write_json(self.run_dir / "tasks.json", trainer.task_info)
        torch.manual_seed(trainer.cfg.seed)

    def on_train_start(self, trainer) -> None:
        if self.changed:
            trainer.log({"step": trainer.step, "event": "resume", "changed": self.changed})

    def on_checkpoint(self, trainer) -> None:
        if trainer.group.is_main:
            self.save(trainer)

    def on_interrupt(self, trainer) -> None:
        if not trainer.group.is_main:
            return
        if trainer.checkpoint_step != trainer.step:         # not saved at this step's evaluation
            self.save(trainer)
        logger.warning("interrupted at step %d; checkpoint saved. Continue with --resume (output_dir %s).",
                       trainer.step, self.run_dir)

    def save(self, trainer) -> None:
        """Write ``last/`` from the trainer and its callbacks (never with non-finite weights)."""
        state = {**trainer.state_dict(), **trainer.callbacks.state_dict()}
        weights = trainer.model.state_dict()
        refuse_nonfinite(weights, str(self.last))

        def write(tmp: Path) -> None:
            ckpt.save_weights(weights, tmp / "model.safetensors")
            ckpt.save_trainer_state(tmp / "trainer.pt", trainer.tensor_state_dict())
            ckpt.write_json(tmp / "state.json", state, "the training state")

        ckpt.atomic_dir_write(self.last, write, "last/")
        logger.debug("saved %s at step %d", self.last, trainer.step)

    def restore(self, trainer) -> None:
        """Load ``last/`` into the model, the trainer and every callback."""
        state = ckpt.read_json(self.last / "state.json")
        saved, world = state.get("world_size", 1), trainer.group.world_size
        if saved != world:
            raise ConfigError(f"{self.last}: this run was trained by {saved} process{'es' if saved > 1 else ''} and "
                              f"is resumed by {world}; resume it with the same world size (torchrun "
                              f"--nnodes × --nproc_per_node = {saved}{', or without torchrun' if saved == 1 else ''}): "
                              "each process's batches and random state are part of the checkpoint")
        ckpt.load_weights(trainer.model, self.last / "model.safetensors")
        tensors = ckpt.load_trainer_state(self.last / "trainer.pt")
        try:
            trainer.load_state_dict(state, tensors)
        except (KeyError, ValueError, RuntimeError) as exc:
            raise ckpt.CheckpointError(f"{self.last}: the saved trainer state does not fit this run "
                                       f"({type(exc).__name__}: {exc})", self.last) from exc
        trainer.callbacks.load_state_dict(state)
        if trainer.group.is_main:
            logger.info("resumed %s at step %d", self.run_dir, trainer.step)

    def _changed_settings(self, cfg, quiet: bool = False) -> list[str]:
        """Say which settings differ from the ones the run was last trained with (a longer
        ``trainer.max_steps`` is the usual, deliberate one); refuse those that cannot change."""
        saved = self.run_dir / "config.yaml"
        if not saved.is_file():
            return []
        changed = resume_changes(yaml.safe_load(saved.read_text(encoding="utf-8")) or {}, cfg)
        if changed and not quiet:
            logger.info("resuming %s with settings that differ from its config.yaml, in effect from the step it "
                        "resumes at: %s", self.run_dir, "; ".join(changed))
        return changed
