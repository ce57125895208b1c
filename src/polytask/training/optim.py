"""The optimizer and its learning-rate schedule, built from ``trainer.*``."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..config import ConfigError


def build_optimizer(cfg, params) -> torch.optim.Optimizer:
    """The optimizer ``trainer.optimizer`` names over ``params`` (tensors or parameter groups)."""
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
