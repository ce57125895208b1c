"""Checkpoints are directories: resolved config, safetensors weights, vocab/labels JSON,
trainer state for exact resume, metrics.

Layout of a run directory::

    config.yaml          the resolved config
    vocab.json           token list (id = position)
    tasks.json           {task: {"type": ..., "labels": [...]}}
    metrics.jsonl        one JSON object per log event
    best/model.safetensors, best/state.json      weights of the best dev step(s)
    last/model.safetensors, last/trainer.pt, last/state.json   everything needed to resume
    results.json         final dev/test metrics
    run.lock             the PID of the process that trains in it (:mod:`.lock`)

Nothing is unpickled: weights are safetensors and the optimizer state is read with
``torch.load(weights_only=True)``. A write that fails (disk full, read-only, permission) is one
:class:`CheckpointError` naming the file and what it holds, and leaves no partial directory.
"""
from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import PolytaskError


class CheckpointError(PolytaskError, OSError):
    """A run directory's file could not be written (disk full, read-only, permission) or a saved
    state could not be read; the message names the path and what was being written or read."""

    def __init__(self, message: str, path: Path | None = None, what: str = "", reason: str = ""):
        super().__init__(message)
        self.path, self.what, self.reason = path, what, reason

    def __str__(self) -> str:
        return self.args[0]


@contextlib.contextmanager
def writing(path: Path, what: str):
    """Within, a failed write becomes one :class:`CheckpointError` naming ``path`` and ``what``
    (torch reports a failed write as a RuntimeError, safetensors as a SafetensorError)."""
    try:
        yield
    except CheckpointError:
        raise
    except (OSError, RuntimeError, SafetensorError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
        raise CheckpointError(f"{path}: could not write {what}: {reason}", Path(path), what, reason) from exc


def atomic_dir_write(target: Path, write: Callable[[Path], None], what: str = "the checkpoint") -> None:
    """Write a checkpoint directory via a temporary sibling and a rename, so a kill mid-write
    leaves the previous checkpoint intact.

    ``write(tmp)`` fills the temporary directory. A write that fails (disk full, read-only, ...)
    raises one :class:`CheckpointError` naming the file under ``target`` and what it holds "of"
    ``what`` (e.g. ``last/``), and leaves no temporary directory behind and ``target`` as it was.
    """
    tmp = target.with_name(target.name + ".tmp")
    try:
        with writing(target, what):
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
        write(tmp)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, CheckpointError) and exc.path is not None and exc.path.parent == tmp:
            path = target / exc.path.name
            kept = f"the previous {what} is kept" if target.exists() else "nothing partial was left"
            raise CheckpointError(f"{path}: could not write {exc.what} of {what}: {exc.reason} ({kept})",
                                  path, exc.what, exc.reason) from exc
        raise
    old = target.with_name(target.name + ".old")
    with writing(target, what):
        if target.exists():
            if old.exists():
                shutil.rmtree(old)
            os.replace(target, old)
        os.replace(tmp, target)
        if old.exists():
            shutil.rmtree(old)


def recover_dir(target: Path) -> None:
    """If a kill happened between the two renames, put the previous checkpoint back; remove what
    a kill left half-written."""
    old = target.with_name(target.name + ".old")
    if not target.exists() and old.exists():
        os.replace(old, target)
    shutil.rmtree(target.with_name(target.name + ".tmp"), ignore_errors=True)


def save_weights(state: dict[str, torch.Tensor], path: Path, what: str = "the model weights") -> None:
    """Save a state dict; a tensor shared under several names (a shared embedding table) is
    stored once and the other names are recorded as aliases in the metadata."""
    tensors, aliases, seen = {}, {}, {}
    for name, value in state.items():
        key = (value.data_ptr(), tuple(value.shape), value.dtype) if value.numel() else None
        if key is not None and key in seen:
            aliases[name] = seen[key]
            continue
        if key is not None:
            seen[key] = name
        tensors[name] = value.detach().contiguous().cpu().clone()
    with writing(path, what):
        save_file(tensors, str(path), metadata={"aliases": json.dumps(aliases)})


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import safe_open
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no weights file")
    try:
        state = load_file(str(path))
        with safe_open(str(path), framework="pt") as f:
            aliases = json.loads((f.metadata() or {}).get("aliases", "{}"))
    except (SafetensorError, ValueError) as exc:
        raise CheckpointError(f"{path}: weights unreadable: {str(exc).splitlines()[0]}", path) from exc
    for name, source in aliases.items():
        state[name] = state[source]
    return state


def load_weights(model: torch.nn.Module, path: Path) -> None:
    state = read_weights(path)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:                # a tensor of another shape
        raise ValueError(f"{path}: weights do not fit the model built from the config: "
                         f"{str(exc).splitlines()[-1].strip()}") from None
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not fit the model built from the config "
                         f"(missing {missing[:5]}, unexpected {unexpected[:5]})")


def write_json(path: Path, data: Any, what: str | None = None) -> None:
    with writing(path, what or path.name):
        path.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def save_trainer_state(path: Path, tensors: dict[str, Any]) -> None:
    # through a Python file, whose failed write names its cause (torch's own writer reports a
    # full disk as "enforce fail ... unexpected pos")
    with writing(path, "the trainer state"), path.open("wb") as f:
        torch.save(tensors, f)


def load_trainer_state(path: Path) -> dict[str, Any]:
    """The trainer's tensors; anything but plain tensors and containers is refused, unread."""
    try:
        return torch.load(path, weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"checkpoint state refused: not plain tensors ({path})", path) from None
    except (RuntimeError, EOFError, ValueError) as exc:
        raise CheckpointError(f"checkpoint state unreadable: {str(exc).splitlines()[0]} ({path})", path) from None
