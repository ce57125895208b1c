"""Architectures: one file each, and a plain registry ``name -> build(cfg, tasks, vocab_size, vectors)``."""
from __future__ import annotations

from . import (cross_stitch, fafs, hard_sharing, hierarchical, meta_lstm, mqan, regularized_heads, shared_memory,
               shared_private, single_task, sluice, soft_sharing, tensor_factorisation, transformer_sharing)
from .outputs import TaskOutput, TaskSpec

REGISTRY = {
    "single_task": single_task.build,
    "hard_sharing": hard_sharing.build,
    "shared_private": shared_private.build_sp,
    "adversarial_shared_private": shared_private.build_asp,
    "low_supervision": hierarchical.build_low_supervision,
    "joint_many_task": hierarchical.build_joint_many_task,
    "meta_lstm": meta_lstm.build,
    "me_lstm": shared_memory.build_me_lstm,
    "shared_memory_arc1": shared_memory.build_arc1,
    "shared_memory_arc2": shared_memory.build_arc2,
    "soft_sharing": soft_sharing.build,
    "cross_stitch": cross_stitch.build,
    "sluice": sluice.build,
    "fully_adaptive": fafs.build,
    "regularized_heads": regularized_heads.build,
    "tucker_heads": tensor_factorisation.build_tucker,
    "tensor_train_heads": tensor_factorisation.build_tensor_train,
    "mqan": mqan.build_mqan,
    "seq2seq": mqan.build_seq2seq,
    **transformer_sharing.REGISTRY,   # transformer_sp, transformer_sc, transformer_li, transformer_le
}


def build_model(cfg, tasks: list[TaskSpec], vocab_size: int, vectors=None, num_chars: int = 0):
    """Build the architecture ``cfg.model.architecture`` names; unknown names list the known ones."""
    name = cfg.model.architecture
    if name not in REGISTRY:
        from ..config import ConfigError
        raise ConfigError(f"model.architecture: unknown architecture {name!r} "
                          f"(known: {', '.join(sorted(REGISTRY))})")
    return REGISTRY[name](cfg, tasks, vocab_size, vectors, num_chars=num_chars)


__all__ = ["REGISTRY", "build_model", "TaskOutput", "TaskSpec"]
