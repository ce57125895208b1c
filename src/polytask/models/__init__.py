"""Architectures: one file each, declaring ``ARCHITECTURES = {name: (ConfigClass, build)}``;
:data:`REGISTRY` maps every name to its ``build(cfg, tasks, vocab_size, vectors, num_chars)``."""
from __future__ import annotations

from .. import catalog
from .contract import MultiTaskModel, TaskOutput, TaskSpec

REGISTRY = {name: catalog.architecture(name)[1] for name in catalog.ARCHITECTURE_MODULES}


def build_model(cfg, tasks: list[TaskSpec], vocab_size: int, vectors=None, num_chars: int = 0) -> MultiTaskModel:
    """Build the architecture ``cfg.model.architecture`` names; unknown names list the known ones."""
    name = cfg.model.architecture
    if name not in REGISTRY:
        from ..config import ConfigError
        raise ConfigError(f"model.architecture: unknown architecture {name!r} "
                          f"(known: {', '.join(sorted(REGISTRY))})")
    return REGISTRY[name](cfg, tasks, vocab_size, vectors, num_chars=num_chars)


__all__ = ["REGISTRY", "build_model", "MultiTaskModel", "TaskOutput", "TaskSpec"]
