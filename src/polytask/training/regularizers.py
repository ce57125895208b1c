"""Regularizers that tie the parameters of several tasks' networks together.

Each takes ``groups``: for every parameter position, the K tasks' tensors of the same shape
(``groups[j][k]`` is task k's copy of parameter j) and returns a scalar.
"""
from __future__ import annotations

import torch


def l2_distance_penalty(groups: list[list[torch.Tensor]]) -> torch.Tensor:
    """Σ_{k<l} ||θ_k − θ_l||² over all parameters (Duong et al. 2015).

    Computed as K Σ_k ||θ_k||² − ||Σ_k θ_k||², which equals the pairwise sum but costs O(K).
    """
    total = None
    for tensors in groups:
        stacked = torch.stack([t.reshape(-1) for t in tensors])              # (K, P)
        k = stacked.shape[0]
        value = k * stacked.pow(2).sum() - stacked.sum(0).pow(2).sum()
        total = value if total is None else total + value
    return total if total is not None else torch.zeros(())


def trace_norm_penalty(groups: list[list[torch.Tensor]]) -> torch.Tensor:
    """Σ_j ||[θ_1; …; θ_K]_j||_* : the nuclear norm of each parameter stacked over tasks, a convex
    surrogate for low rank, i.e. for tasks sharing a few directions (Yang & Hospedales 2017)."""
    total = None
    for tensors in groups:
        stacked = torch.stack([t.reshape(-1) for t in tensors])              # (K, P)
        value = torch.linalg.svdvals(stacked).sum()
        total = value if total is None else total + value
    return total if total is not None else torch.zeros(())
