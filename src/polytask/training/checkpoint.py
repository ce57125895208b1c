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

Nothing is unpickled: weights are safetensors and the optimizer state is read with
``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file


def atomic_dir_write(target: Path, write) -> None:
    """Write a checkpoint directory via a temporary sibling and a rename, so a kill mid-write
    leaves the previous checkpoint intact."""
    tmp = target.with_name(target.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    write(tmp)
    old = target.with_name(target.name + ".old")
    if target.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(target, old)
    os.replace(tmp, target)
    if old.exists():
        shutil.rmtree(old)


def recover_dir(target: Path) -> None:
    """If a kill happened between the two renames, put the previous checkpoint back."""
    old = target.with_name(target.name + ".old")
    if not target.exists() and old.exists():
        os.replace(old, target)


def save_weights(state: dict[str, torch.Tensor], path: Path) -> None:
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
    save_file(tensors, str(path), metadata={"aliases": json.dumps(aliases)})


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import safe_open
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no weights file")
    state = load_file(str(path))
    with safe_open(str(path), framework="pt") as f:
        aliases = json.loads((f.metadata() or {}).get("aliases", "{}"))
    for name, source in aliases.items():
        state[name] = state[source]
    return state


def load_weights(model: torch.nn.Module, path: Path) -> None:
    state = read_weights(path)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not fit the model built from the config "
                         f"(missing {missing[:5]}, unexpected {unexpected[:5]})")


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def save_trainer_state(path: Path, tensors: dict[str, Any]) -> None:
    torch.save(tensors, path)


def load_trainer_state(path: Path) -> dict[str, Any]:
    return torch.load(path, weights_only=True)
