"""Balancing tasks: loss weightings and gradient aggregators, handed to the trainer.

Every method has one job: given this step's task losses, put gradients in ``.grad``. Loss
weightings combine the losses into one scalar and call ``backward`` once; gradient methods take
one gradient per task on the shared parameters and aggregate them. The gradient aggregators
come from TorchJD (Quinton & Rey, "Jacobian Descent for Multi-Objective Optimization", 2024),
which is maintained and tested; polytask only wires them to its models. Methods keep their own
state (``state_dict``) so a resumed run continues exactly.

Under fp16 mixed precision the trainer passes ``scale`` (``torch.amp.GradScaler.scale``): methods
see the true losses, for their weights and their state, and apply ``scale`` only to what they
differentiate, so every gradient carries the loss scale that ``GradScaler.unscale_`` removes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import math
import random
from typing import Callable

import torch
from torch import nn

Losses = dict[str, torch.Tensor]
Scale = Callable[[torch.Tensor], torch.Tensor]


def unscaled(loss: torch.Tensor) -> torch.Tensor:
    """The ``scale`` of full-precision training: the loss as it is."""
    return loss


def _no_averaging(tensors: list[torch.Tensor]) -> None:
    """One process: each task's gradient is already the whole batch's."""


class EqualWeighting(nn.Module):
    """Σ_k L_k: the plain sum (one task per step reduces to that task's loss)."""

    # data-parallel training sets this (:meth:`average_task_gradients`)
    _average: Callable[[list[torch.Tensor]], None] = staticmethod(_no_averaging)

    def average_task_gradients(self, average: Callable[[list[torch.Tensor]], None]) -> None:
        """Under data-parallel training, ``average`` replaces tensors with their mean over the
        processes, in place; a method that combines per-task gradients averages them with it
        first, so that every process combines the gradients of the whole global batch."""
        self._average = average

    def backward(self, losses: Losses, model: nn.Module, scale: Scale = unscaled) -> dict[str, float]:
        """Put the gradients of this step's ``losses`` (task -> scalar, unscaled) in ``.grad``,
        backpropagating ``scale`` of what is differentiated; returns the weight of each task."""
        scale(sum(losses.values())).backward()
        return {t: 1.0 for t in losses}

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass


class FixedWeighting(EqualWeighting):
    """Σ_k w_k L_k with user-given weights (missing tasks weigh 1)."""

    def __init__(self, weights: dict[str, float]):
        super().__init__()
        self.weights = dict(weights)

    def backward(self, losses: Losses, model: nn.Module, scale: Scale = unscaled) -> dict[str, float]:
        w = {t: float(self.weights.get(t, 1.0)) for t in losses}
        scale(sum(w[t] * loss for t, loss in losses.items())).backward()
        return w


class UncertaintyWeighting(EqualWeighting):
    """Kendall, Gal, Cipolla, CVPR 2018, Eq. 10 (classification form as commonly used):
    Σ_k exp(−s_k) L_k + s_k with s_k = log σ_k² learned alongside the model."""

    def __init__(self, tasks: list[str]):
        super().__init__()
        self.log_vars = nn.ParameterDict({t: nn.Parameter(torch.zeros(())) for t in tasks})

    def backward(self, losses: Losses, model: nn.Module, scale: Scale = unscaled) -> dict[str, float]:
        total = sum(torch.exp(-self.log_vars[t]) * loss + self.log_vars[t] for t, loss in losses.items())
        scale(total).backward()
        return {t: math.exp(-self.log_vars[t].item()) for t in losses}


class DynamicWeightAverage(EqualWeighting):
    """Liu, Johns, Davison, CVPR 2019 (MTAN), Eq. 7: w_k = K exp(r_k / T) / Σ_j exp(r_j / T) with
    r_k = L_k(t−1) / L_k(t−2), the ratio of a task's average loss over the last two windows of
    ``window`` steps (equal weights until two windows are complete)."""

    def __init__(self, tasks: list[str], temperature: float = 2.0, window: int = 50):
        super().__init__()
        self.tasks, self.temperature, self.window = list(tasks), temperature, window
        self.sums = {t: 0.0 for t in tasks}
        self.counts = {t: 0 for t in tasks}
        self.history: list[dict[str, float]] = []   # the last two completed windows
        self.steps = 0

    def weights(self) -> dict[str, float]:
        if len(self.history) < 2:
            return {t: 1.0 for t in self.tasks}
        prev, last = self.history
        ratios = {t: last[t] / max(prev[t], 1e-12) for t in self.tasks}
        exps = {t: math.exp(r / self.temperature) for t, r in ratios.items()}
        z = sum(exps.values())
        return {t: len(self.tasks) * e / z for t, e in exps.items()}

    def backward(self, losses: Losses, model: nn.Module, scale: Scale = unscaled) -> dict[str, float]:
        w = self.weights()
        scale(sum(w[t] * loss for t, loss in losses.items())).backward()
        for t, loss in losses.items():
            self.sums[t] += loss.item()
            self.counts[t] += 1
        self.steps += 1
        if self.steps % self.window == 0:
            averages = {t: self.sums[t] / self.counts[t] if self.counts[t] else
                        (self.history[-1][t] if self.history else 1.0) for t in self.tasks}
            self.history = (self.history + [averages])[-2:]
            self.sums = {t: 0.0 for t in self.tasks}
            self.counts = {t: 0 for t in self.tasks}
        return {t: w[t] for t in losses}

    def extra_state(self) -> dict:
        return {"sums": self.sums, "counts": self.counts, "history": self.history, "steps": self.steps}

    def load_extra_state(self, state: dict) -> None:
        self.sums, self.counts = dict(state["sums"]), dict(state["counts"])
        self.history, self.steps = [dict(h) for h in state["history"]], int(state["steps"])


class RandomLossWeighting(EqualWeighting):
    """Lin, Ye, Zhang, Tsang, TMLR 2022 (RLW): weights drawn each step as softmax of N(0, 1)
    samples, scaled to sum to K."""

    def __init__(self, tasks: list[str], seed: int):
        super().__init__()
        self.rng = random.Random(f"{seed}/rlw")

    def backward(self, losses: Losses, model: nn.Module, scale: Scale = unscaled) -> dict[str, float]:
        draws = {t: math.exp(self.rng.gauss(0.0, 1.0)) for t in sorted(losses)}
        z = sum(draws.values())
        w = {t: len(losses) * d / z for t, d in draws.items()}
        scale(sum(w[t] * loss for t, loss in losses.items())).backward()
        return w

    def extra_state(self) -> dict:
        version, internal, gauss = self.rng.getstate()
        return {"rng": [version, list(internal), gauss]}

    def load_extra_state(self, state: dict) -> None:
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))


class GradNorm(EqualWeighting):
    """Chen, Badrinarayanan, Lee, Rabinovich, ICML 2018 (GradNorm), Eq. 1-2.

    Task weights w_k are learned so that the norms G_k = ||∇_W w_k L_k|| on the shared parameters
    W move towards mean(G) · r_k^α, where r_k is task k's inverse training rate (its loss relative
    to its first loss, over the mean of those ratios). Since w_k is a scalar, G_k = w_k ||∇_W L_k||
    and no second-order gradient is needed. The weights are renormalised to sum to K before use.
    The norms are taken of the scaled losses' gradients, so under fp16 the weights' own gradient
    carries the loss scale like the model's (the weights are in the optimizer that is unscaled);
    the loss ratios r_k are of the true losses.
    """

    def __init__(self, tasks: list[str], alpha: float = 1.5):
        super().__init__()
        self.weights = nn.ParameterDict({t: nn.Parameter(torch.ones(())) for t in tasks})
        self.alpha = alpha
        self.initial: dict[str, float] = {}

    def backward(self, losses: Losses, model: nn.Module, scale: Scale = unscaled) -> dict[str, float]:
        tasks = list(losses)
        with torch.no_grad():                                   # renormalise: Σ_k w_k = K
            total = sum(self.weights[t].clamp_min(1e-3) for t in self.weights)
            for t in self.weights:
                self.weights[t].copy_(self.weights[t].clamp_min(1e-3) * len(self.weights) / total)
        shared = [p for p in model.shared_parameters() if p.requires_grad]
        if len(tasks) > 1 and shared:
            norms = {}
            for t in tasks:
                grads = torch.autograd.grad(scale(losses[t]), shared, retain_graph=True, allow_unused=True)
                norms[t] = torch.sqrt(sum(g.pow(2).sum() for g in grads if g is not None))
                self.initial.setdefault(t, max(losses[t].item(), 1e-12))
            ratios = {t: losses[t].item() / self.initial[t] for t in tasks}
            mean_ratio = sum(ratios.values()) / len(tasks)
            g = {t: self.weights[t] * norms[t].detach() for t in tasks}
            mean_g = sum(v.detach() for v in g.values()) / len(tasks)
            target = {t: mean_g * (ratios[t] / mean_ratio) ** self.alpha for t in tasks}
            grad_loss = sum((g[t] - target[t]).abs() for t in tasks)
            for t, grad in zip(tasks, torch.autograd.grad(grad_loss, [self.weights[t] for t in tasks])):
                self.weights[t].grad = grad
        used = {t: self.weights[t].detach() for t in tasks}
        scale(sum(used[t] * loss for t, loss in losses.items())).backward()
        return {t: float(w) for t, w in used.items()}

    def extra_state(self) -> dict:
        return {"initial": self.initial}

    def load_extra_state(self, state: dict) -> None:
        self.initial = dict(state.get("initial", {}))


class JacobianAggregation(EqualWeighting):
    """A TorchJD aggregator on the shared parameters: one gradient per task (the rows of the
    Jacobian), combined by ``aggregator`` (UPGrad, MGDA, PCGrad, CAGrad, Nash-MTL, IMTL-G, ...).
    Task-specific parameters get their own task's gradient as usual.

    The methods, by ``trainer.weighting`` name: ``upgrad`` (Quinton & Rey 2024, "Jacobian
    Descent for Multi-Objective Optimization"), ``mgda`` (Sener & Koltun, NeurIPS 2018, "Multi-Task
    Learning as Multi-Objective Optimization"), ``pcgrad`` (Yu et al., NeurIPS 2020, "Gradient
    Surgery for Multi-Task Learning"), ``cagrad`` (Liu et al., NeurIPS 2021, "Conflict-Averse
    Gradient Descent for Multi-task Learning", c = 0.5), ``nashmtl`` (Navon et al., ICML 2022,
    "Multi-Task Learning as a Bargaining Game"), ``imtlg`` (Liu et al., ICLR 2021, "Towards
    Impartial Multi-task Learning")."""

    def __init__(self, aggregator, name: str):
        from torchjd.aggregation import GramianWeightedAggregator
        super().__init__()
        self.aggregator, self.name = aggregator, name
        # aggregators that weight the rows by their Gramian (all but Nash-MTL) read J Jᵀ summed over
        # the parameters, never the K × |shared| matrix concatenated from them: the Jacobian rows are
        # then the only copy (on FDU-MTL, 0.9 GB less at peak)
        self.from_gramian = isinstance(aggregator, GramianWeightedAggregator)

    def backward(self, losses: Losses, model: nn.Module, scale: Scale = unscaled) -> dict[str, float]:
        """One backward pass per task (K in all), each through that task's own graph only: the
        shared parameters' gradients become the rows of the Jacobian that the aggregator combines,
        and the task parameters get the plain sum of the tasks' gradients, as under equal weighting.

        TorchJD's ``autojac.backward`` differentiates the stacked losses instead, so each of its K
        passes walks every task's graph, and its vmapped default has no batching rule for the LSTM
        backward on CPU: on the 16 FDU-MTL domains a step took 42× equal weighting's.
        """
        from torchjd.autojac import jac_to_grad
        tasks = list(losses)
        shared = [p for p in model.shared_parameters() if p.requires_grad]
        if len(tasks) == 1 or not shared:
            return super().backward(losses, model, scale)
        shared_ids = {id(p) for p in shared}
        own = list({id(p): p for t in tasks for p in model.task_parameters(t)
                    if p.requires_grad and id(p) not in shared_ids}.values())
        jacobians = [p.new_zeros((len(tasks), *p.shape)) for p in shared]   # unused: a zero row
        for i, task in enumerate(tasks):
            # every task's own parameters too: a task layer may serve other tasks' losses as well
            # (JMT's lower heads, soft sharing's penalty, L-I's token table); they get Σ_k ∇L_k
            grads = torch.autograd.grad(scale(losses[task]), shared + own, retain_graph=i < len(tasks) - 1,
                                        allow_unused=True)
            for jac, g in zip(jacobians, grads):
                if g is not None:
                    jac[i].copy_(g)
            for p, g in zip(own, grads[len(shared):]):
                if g is not None:
                    p.grad = g if p.grad is None else p.grad + g
        self._average(jacobians)                # data-parallel: the global batch's rows
        for p, jac in zip(shared, jacobians):
            p.jac = jac                                              # (K, *p.shape), read by jac_to_grad
        del jacobians
        weights = jac_to_grad(shared, self.aggregator, optimize_gramian_computation=self.from_gramian)
        if weights is None:
            return {}
        return {t: float(w) for t, w in zip(tasks, weights)}


def _torchjd_aggregator(name: str, n_tasks: int):
    """TorchJD's aggregator for ``name``. CAGrad and Nash-MTL solve a small convex problem each step
    with cvxpy (the ``balancing`` extra installs it)."""
    try:
        import torchjd.aggregation as agg
    except ImportError:
        raise ImportError(f"trainer.weighting {name!r} needs TorchJD: pip install 'polytask[balancing]'") from None
    makers = {"upgrad": agg.UPGrad, "mgda": agg.MGDA, "pcgrad": agg.PCGrad, "imtlg": agg.IMTLG,
              "cagrad": lambda: agg.CAGrad(c=0.5),                     # c = 0.5 as in Liu et al. 2021
              "nashmtl": lambda: agg.NashMTL(n_tasks=n_tasks)}
    try:
        return makers[name]()
    except ImportError as e:
        raise ImportError(f"trainer.weighting {name!r}: {e} (or pip install 'polytask[balancing]')") from None


GRADIENT_METHODS = ("upgrad", "mgda", "pcgrad", "imtlg", "cagrad", "nashmtl")
LOSS_METHODS = ("equal", "fixed", "uncertainty", "dwa", "rlw", "gradnorm")


@dataclass
class FixedOptions:
    """``fixed``: a weight per task (tasks not named weigh 1)."""

    weights: dict[str, float] = field(default_factory=dict)


@dataclass
class DWAOptions:
    """``dwa``: the softmax temperature T and the window of steps a loss average covers."""

    temperature: float = 2.0
    window: int = 50


@dataclass
class GradNormOptions:
    """``gradnorm``: α, how strongly training rates are equalised."""

    alpha: float = 1.5


# the options each method takes under ``trainer.weighting_options`` (the others take none)
OPTIONS = {"fixed": FixedOptions, "dwa": DWAOptions, "gradnorm": GradNormOptions}


def build_weighting(cfg, tasks: list[str], seed: int) -> EqualWeighting:
    """The method ``trainer.weighting`` names (options under ``trainer.weighting_options``)."""
    from ..config import weighting_options
    name = cfg.trainer.weighting
    opts = weighting_options(name, cfg.trainer.weighting_options, OPTIONS.get(name))
    if name == "equal":
        return EqualWeighting()
    if name == "fixed":
        return FixedWeighting(opts.weights)
    if name == "uncertainty":
        return UncertaintyWeighting(tasks)
    if name == "dwa":
        return DynamicWeightAverage(tasks, opts.temperature, opts.window)
    if name == "rlw":
        return RandomLossWeighting(tasks, seed)
    if name == "gradnorm":
        return GradNorm(tasks, opts.alpha)
    if name in GRADIENT_METHODS:
        return JacobianAggregation(_torchjd_aggregator(name, len(tasks)), name)
    raise ValueError(f"trainer.weighting: unknown method {name!r} "
                     f"(known: {', '.join(LOSS_METHODS + GRADIENT_METHODS)})")
