"""Where the pluggable parts live, by name, so that loading a config can find an architecture's
config class without this package importing every model up front.

Each architecture module holds ``ARCHITECTURES = {name: (ConfigClass, build)}``; this table says
which module holds which name. Only the chosen architecture's module is imported when a YAML
loads. Task kinds are looked up in :data:`polytask.kinds.KINDS`.
"""
from __future__ import annotations

import importlib

ARCHITECTURE_MODULES = {
    "single_task": "single_task",
    "hard_sharing": "hard_sharing",
    "shared_private": "shared_private",
    "adversarial_shared_private": "shared_private",
    "low_supervision": "hierarchical",
    "joint_many_task": "hierarchical",
    "meta_lstm": "meta_lstm",
    "me_lstm": "shared_memory",
    "shared_memory_arc1": "shared_memory",
    "shared_memory_arc2": "shared_memory",
    "soft_sharing": "soft_sharing",
    "cross_stitch": "cross_stitch",
    "sluice": "sluice",
    "fully_adaptive": "fafs",
    "regularized_heads": "regularized_heads",
    "tucker_heads": "tensor_factorisation",
    "tensor_train_heads": "tensor_factorisation",
    "mqan": "mqan",
    "seq2seq": "mqan",
    "transformer_sp": "transformer_sharing",
    "transformer_sc": "transformer_sharing",
    "transformer_li": "transformer_sharing",
    "transformer_le": "transformer_sharing",
}


def architecture(name: str):
    """``(ConfigClass, build)`` of the architecture ``name``; KeyError for an unknown name."""
    module = importlib.import_module(f"polytask.models.{ARCHITECTURE_MODULES[name]}")
    return module.ARCHITECTURES[name]


def task_kinds() -> dict:
    """The task kinds by name (``type`` in a task's YAML)."""
    return importlib.import_module("polytask.kinds").KINDS


def weighting_methods() -> tuple[list[str], list[str]]:
    """The loss-weighting and the gradient-combining methods, by name."""
    module = importlib.import_module("polytask.training.weighting")
    return list(module.LOSS_METHODS), list(module.GRADIENT_METHODS)


def weighting_option_classes() -> dict[str, type]:
    """The options class of each weighting method that takes options."""
    return dict(importlib.import_module("polytask.training.weighting").OPTIONS)
