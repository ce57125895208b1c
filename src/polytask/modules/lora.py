"""LoRA adapters (Hu et al. 2021, via ``peft``) on a :class:`~polytask.modules.pretrained.PretrainedEncoder`:
the checks before they are added, their names, and the state-dict hooks of an adapter-only
encoder (the frozen base left out of its saved weights).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from torch import nn

from ..errors import PolytaskError


class AdapterTargetError(PolytaskError, ValueError):
    """A LoRA target module name the model does not have."""


class MissingPeftError(PolytaskError, ImportError):
    """``model.adapter`` without the ``peft`` package installed."""


def load_peft():
    try:
        import peft
    except ImportError:
        raise MissingPeftError("model.adapter: LoRA adapters need the package peft: pip install 'polytask[peft]'"
                               ) from None
    return peft


def linear_layer_names(model: nn.Module) -> list[str]:
    """The last name part of every Linear layer of ``model`` (what LoRA's target_modules match)."""
    return sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear)})


def check_lora_targets(model: nn.Module, targets: Sequence[str], where: Path,
                       key: str = "model.adapter.target_modules") -> None:
    """Refuse a target that names no Linear layer of ``model`` (peft matches a name or its last
    parts: ``query`` or ``attention.self.query``), listing the names it has."""
    linear = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    for target in targets:
        if not any(name == target or name.endswith("." + target) for name in linear):
            raise AdapterTargetError(f"{key}: the model in {where} has no Linear layer named {target!r}; its Linear "
                                     f"layers are named {', '.join(linear_layer_names(model))}")


def adapter_names(names: Sequence[str]) -> dict[str, str]:
    """A peft adapter name for each of ``names`` (tasks'): peft keeps adapters in ModuleDicts,
    whose keys may not hold dots; two names that read alike there get their position added. The
    prefix ``task_`` keeps them apart from peft's own parameter names (``lora_A``, ``lora_B``, ...):
    a task named ``A`` must not collect the ``lora_A`` matrices of every adapter."""
    out: dict[str, str] = {}
    for i, name in enumerate(names):
        peft_name = "task_" + re.sub(r"[^0-9A-Za-z_]", "_", name)
        out[name] = peft_name if peft_name not in out.values() else f"{peft_name}_{i}"
    return out


def leave_out_base_weights(module: nn.Module, state: dict, prefix: str, local_metadata) -> None:
    """state_dict hook of an adapter-only encoder: the base weights are the run's pretrained/ copy."""
    for key in module._base_keys:
        state.pop(prefix + key, None)


def keep_base_weights(module: nn.Module, state: dict, prefix: str, local_metadata, strict,
                       missing_keys, unexpected_keys, error_msgs) -> None:
    """load_state_dict pre-hook of an adapter-only encoder: a state without the base weights keeps
    those the encoder was built with."""
    own = None
    for key in module._base_keys:
        if prefix + key not in state:
            if own is None:
                own = {**dict(module.named_parameters(remove_duplicate=False)),
                       **dict(module.named_buffers(remove_duplicate=False))}
            state[prefix + key] = own[key].detach()
