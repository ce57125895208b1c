"""Priors that tie the parameters of several tasks' networks together (Ruder 2017, §4, §7).

Two families, each returning a scalar penalty to add to a task's loss:

* soft parameter sharing (:mod:`polytask.models.soft_sharing`) takes ``groups``: for every
  parameter position, the K tasks' tensors of the same shape (``groups[j][k]`` is task k's copy of
  parameter j);
* priors on the task-specific output layers (:mod:`polytask.models.regularized_heads`) take the
  layers stacked into one tensor W (K, C, D).
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


# ----------------------------------------------------------------------------- task-layer priors
# These read the task-specific output layers stacked into one tensor W (K, C, D): task k's weight
# matrix W[k] maps a D-dim shared feature to C classes.


def l1_l2_penalty(stacked: torch.Tensor) -> torch.Tensor:
    """Block sparsity l1/l2 (group lasso; Argyriou et al. 2008): Σ_d ||W[:, :, d]||_2 — each input
    feature is used by all tasks or by none."""
    return stacked.pow(2).sum(dim=(0, 1)).clamp_min(1e-12).sqrt().sum()


def l1_linf_penalty(stacked: torch.Tensor) -> torch.Tensor:
    """Block sparsity l1/l∞ (Liu, Palatucci, Zhang 2009): Σ_d max_{k,c} |W[k, c, d]|."""
    return stacked.abs().amax(dim=(0, 1)).sum()


def task_clustering_penalty(stacked: torch.Tensor, mean_weight: float = 1.0,
                            spread_weight: float = 1.0) -> torch.Tensor:
    """A task-relationship prior in the spirit of Evgeniou & Pontil 2004 / Jacob et al. 2009:
    ``mean_weight ||W̄||² + spread_weight Σ_k ||W_k − W̄||²`` — task layers stay close to their
    mean (one cluster; the general form learns several)."""
    mean = stacked.mean(0)
    return mean_weight * mean.pow(2).sum() + spread_weight * (stacked - mean).pow(2).sum()


def tensor_normal_penalty(stacked: torch.Tensor, task_cov: torch.Tensor,
                          class_cov: torch.Tensor, feature_cov: torch.Tensor) -> torch.Tensor:
    """Negative log-density (up to constants) of a tensor-normal prior on W (K, C, D) with task,
    class and feature covariances Ω_K, Ω_C, Ω_D (Long, Cao, Wang, Yu, NeurIPS 2017, "Learning
    multiple tasks with multilinear relationship networks", Eq. 5-6):

        vec(W)ᵀ (Ω_K ⊗ Ω_C ⊗ Ω_D)^{-1} vec(W) + C·D log|Ω_K| + K·D log|Ω_C| + K·C log|Ω_D|
    """
    K, C, D = stacked.shape
    ik, ic, idd = (torch.linalg.inv(m) for m in (task_cov, class_cov, feature_cov))
    quad = torch.einsum("kcd,kl,ce,df,lef->", stacked, ik, ic, idd, stacked)
    logdet = (C * D * torch.logdet(task_cov) + K * D * torch.logdet(class_cov)
              + K * C * torch.logdet(feature_cov))
    return quad + logdet


def update_covariance(stacked: torch.Tensor, mode: int, others: list[torch.Tensor],
                      eps: float = 1e-3) -> torch.Tensor:
    """The flip-flop maximum-likelihood update of one mode's covariance given the other two
    (Long et al. 2017, Eq. 7), normalised to trace = size and kept positive definite."""
    W = stacked.detach()
    if mode == 0:
        a, b = (torch.linalg.inv(m) for m in others)                       # Ω_C, Ω_D
        cov = torch.einsum("kcd,ce,df,lef->kl", W, a, b, W) / (W.shape[1] * W.shape[2])
    elif mode == 1:
        a, b = (torch.linalg.inv(m) for m in others)                       # Ω_K, Ω_D
        cov = torch.einsum("kcd,kl,df,lef->ce", W, a, b, W) / (W.shape[0] * W.shape[2])
    else:
        a, b = (torch.linalg.inv(m) for m in others)                       # Ω_K, Ω_C
        cov = torch.einsum("kcd,kl,ce,lef->df", W, a, b, W) / (W.shape[0] * W.shape[1])
    n = cov.shape[0]
    cov = cov + eps * torch.eye(n, dtype=cov.dtype, device=cov.device)
    return cov * (n / torch.trace(cov))
