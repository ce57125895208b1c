"""Is one system better than another on the same test examples, or could the difference be chance?

Two views of each comparison, both in ``polytask report``:

- **Examples**: a paired approximate randomisation test (Noreen 1989; Riezler & Maxwell 2005; Dror
  et al., ACL 2018) over the test examples, with scipy's ``permutation_test`` doing the shuffling
  (``permutation_type="samples"``: each example's pair of predictions is swapped between the systems
  or not). The statistic is the difference of the systems' test averages: the mean over tasks of each
  task's first metric. Each system's predictions are pooled over its seeds: an example contributes
  its metric counts (correct / total, true and false positives, confusion cells, ...) averaged over
  the seeds, so a metric of a set of examples is a function of summed counts and each shuffle costs
  one matrix product. Under the null hypothesis that the two systems are exchangeable, which one
  made an example's predictions is a coin flip; the p-value is the share of shuffles whose |Δ| is at
  least the observed one.
- **Seeds**: each system's test average over its seeds (mean ± sample standard deviation) and, with
  two seeds or more on both sides, Welch's t-test over them: how much training randomness alone moves
  the number, which the example-level test does not see.

The verdict names the example-level test: "significant at α" when p < α, otherwise "not
distinguishable at this sample size". Metrics without per-example counts (Spearman's ρ, whose ranks
depend on the whole set) fall back to recomputing the metric with the kind's own scoring for each
shuffle (slower, same test).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..kinds import get_kind
from .evaluate import task_metrics
from .predictions import read_predictions
from .qa_metrics import exact_match, token_f1


# ----------------------------------------------------------------------------- per-example counts

def _onehot(values: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros((len(values), size))
    out[np.arange(len(values)), values] = 1.0
    return out


def _class_counts(metric: str, gold: np.ndarray, pred: np.ndarray, num_labels: int) -> np.ndarray:
    """Counts of single-label predictions (one row per unit: an example, or a token)."""
    if metric == "accuracy":
        return np.stack([(gold == pred).astype(float), np.ones(len(gold))], axis=1)
    if metric == "f1":                               # the positive class is label 1
        return np.stack([(gold == 1) & (pred == 1), (gold != 1) & (pred == 1), (gold == 1) & (pred != 1)],
                        axis=1).astype(float)
    if metric == "macro_f1":                         # (tp, fp, fn) of each label
        g, p = _onehot(gold, num_labels), _onehot(pred, num_labels)
        return np.stack([g * p, (1 - g) * p, g * (1 - p)], axis=2).reshape(len(gold), -1)
    if metric == "mcc":                              # the confusion-matrix cell of each unit
        return _onehot(gold * num_labels + pred, num_labels * num_labels)
    raise KeyError(metric)


def _span_counts(gold_tags: list[str], pred_tags: list[str]) -> list[float]:
    from seqeval.metrics.sequence_labeling import get_entities
    gold, pred = set(get_entities(gold_tags)), set(get_entities(pred_tags))
    return [len(gold & pred), len(pred), len(gold)]


def example_counts(kind: str, metric: str, gold: list, pred: list, labels: list) -> Optional[np.ndarray]:
    """(N, C) counts of each example such that ``metric`` of any multiset of examples is
    :func:`metric_from_counts` of their summed counts; None for a metric without them (spearman).

    ``gold``/``pred`` are in the kind's own form (``predictions/test.jsonl``).
    """
    n_labels = len(labels)
    if kind in ("classification", "pair_classification") and metric in ("accuracy", "f1", "macro_f1", "mcc"):
        return _class_counts(metric, np.asarray(gold, dtype=int), np.asarray(pred, dtype=int), n_labels)
    if kind == "tagging" and metric == "accuracy":
        return np.array([[sum(a == b for a, b in zip(g, p)), len(g)] for g, p in zip(gold, pred)], dtype=float)
    if kind == "tagging" and metric == "span_f1":
        return np.array([_span_counts([labels[t] for t in g], [labels[t] for t in p])
                         for g, p in zip(gold, pred)], dtype=float).reshape(len(gold), 3)
    if kind == "regression" and metric == "pearson":
        g, p = np.asarray(gold, dtype=float), np.asarray(pred, dtype=float)
        return np.stack([g, p, g * g, p * p, g * p, np.ones(len(g))], axis=1)
    if kind == "qa" and metric in ("em", "squad_f1"):
        score = exact_match if metric == "em" else token_f1
        return np.array([[max((score(p, a) for a in answers), default=0.0), 1.0]
                         for p, answers in zip(pred, gold)], dtype=float)
    return None


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0 (the metrics' zero_division=0)."""
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def metric_from_counts(metric: str, totals: np.ndarray, num_labels: int) -> np.ndarray:
    """The metric (0-100) of summed counts ``totals`` (..., C), as :mod:`.metrics` computes it."""
    t = np.asarray(totals, dtype=float)
    if metric in ("accuracy", "em", "squad_f1"):
        return 100.0 * _ratio(t[..., 0], t[..., 1])
    if metric == "f1":
        tp, fp, fn = t[..., 0], t[..., 1], t[..., 2]
        return 100.0 * _ratio(2 * tp, 2 * tp + fp + fn)
    if metric == "macro_f1":
        c = t.reshape(t.shape[:-1] + (num_labels, 3))
        return 100.0 * _ratio(2 * c[..., 0], 2 * c[..., 0] + c[..., 1] + c[..., 2]).mean(-1)
    if metric == "mcc":                              # sklearn's multi-class MCC (Gorodkin 2004)
        c = t.reshape(t.shape[:-1] + (num_labels, num_labels))
        true, guessed = c.sum(-1), c.sum(-2)
        total, correct = true.sum(-1), np.trace(c, axis1=-2, axis2=-1)
        cov_tp = correct * total - (true * guessed).sum(-1)
        cov_pp = total ** 2 - (guessed * guessed).sum(-1)
        cov_tt = total ** 2 - (true * true).sum(-1)
        return 100.0 * _ratio(cov_tp, np.sqrt(np.maximum(cov_tt * cov_pp, 0.0)))
    if metric == "span_f1":
        return 100.0 * _ratio(2 * t[..., 0], t[..., 1] + t[..., 2])
    if metric == "pearson":
        sg, sp, sgg, spp, sgp, n = (t[..., i] for i in range(6))
        vg, vp = n * sgg - sg * sg, n * spp - sp * sp
        # a constant side has no linear relation (metrics.py gives 0); allow for rounding in the sums
        flat = (vg <= 1e-9 * np.abs(n * sgg)) | (vp <= 1e-9 * np.abs(n * spp)) | (n < 2)
        r = _ratio(n * sgp - sg * sp, np.sqrt(np.where(flat, 0.0, vg * vp)))
        return 100.0 * np.clip(r, -1.0, 1.0)
    raise KeyError(metric)


# ----------------------------------------------------------------------------- systems' predictions

@dataclass
class TaskPredictions:
    """One task's test examples and a system's predictions of them, one list per seed."""

    kind: str
    info: dict
    gold: list
    predictions: list[list] = field(default_factory=list)

    @property
    def metric(self) -> str:
        return task_metrics(self.info)[0]


def load_predictions(run_dirs: list[Path]) -> dict[str, TaskPredictions]:
    """The test predictions of one system's runs (its seeds), by task; every run must have scored
    the same test examples."""
    import json
    out: dict[str, TaskPredictions] = {}
    for run_dir in run_dirs:
        info = json.loads((Path(run_dir) / "tasks.json").read_text(encoding="utf-8"))
        for task, (gold, pred) in read_predictions(run_dir).items():
            entry = out.setdefault(task, TaskPredictions(info[task]["type"], info[task], gold))
            if gold != entry.gold:
                raise ValueError(f"{run_dir}: task {task!r} has other test examples than {run_dirs[0]}")
            entry.predictions.append(pred)
    return out


# ----------------------------------------------------------------------------- the tests

def _first_metric(a: TaskPredictions, b: TaskPredictions, task: str) -> str:
    if a.metric != b.metric:
        raise ValueError(f"task {task!r}: the systems report different first metrics ({a.metric}, {b.metric})")
    if list(a.info.get("labels") or []) != list(b.info.get("labels") or []):
        raise ValueError(f"task {task!r}: the systems' label orders differ; their ids cannot be paired")
    return a.metric


def _pooled_counts(task: TaskPredictions, metric: str) -> Optional[np.ndarray]:
    per_seed = [example_counts(task.kind, metric, task.gold, pred, task.info.get("labels") or [])
                for pred in task.predictions]
    return None if per_seed[0] is None else np.mean(per_seed, axis=0)


def _count_statistic(parts: list[tuple[str, int, np.ndarray, np.ndarray, np.ndarray]], n: int) -> Callable:
    """Δ of the test averages for an assignment of examples to systems. ``x`` holds, per shuffled
    position i, i (system A's predictions) or i + n (B's); ``parts``: (metric, labels, A counts,
    B counts, the examples at the shuffled positions) per task, tasks in position order. Examples
    whose counts are the same for both systems are left out of the positions: swapping them changes
    nothing, so the null distribution is the same with or without them."""
    def score(owner_b: np.ndarray) -> np.ndarray:              # (..., n) 1.0 where B's counts count
        scores, start = [], 0
        for metric, n_labels, a, b, shuffled in parts:
            block = owner_b[..., start:start + len(shuffled)]
            totals = a.sum(0) + block @ (b[shuffled] - a[shuffled])          # (..., C)
            scores.append(metric_from_counts(metric, totals, n_labels))
            start += len(shuffled)
        return np.mean(scores, axis=0)

    def statistic(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        x, y = np.moveaxis(np.asarray(x), axis, -1), np.moveaxis(np.asarray(y), axis, -1)
        return score((x >= n).astype(float)) - score((y >= n).astype(float))
    return statistic


def _scored_statistic(tasks: list[tuple[str, str, TaskPredictions, TaskPredictions]], n: int) -> Callable:
    """The same Δ, rescoring pooled predictions with the kind's own metrics (for metrics without
    counts): each system's predictions of an example, over all of its seeds, beside the gold value."""
    def score(positions: np.ndarray) -> float:
        values, start = [], 0
        for task, metric, a, b in tasks:
            gold, pred = [], []
            for i, where in enumerate(positions[start:start + len(a.gold)]):
                system = a if where < n else b
                for seed_pred in system.predictions:
                    gold.append(a.gold[i])
                    pred.append(seed_pred[i])
            values.append(get_kind(a.kind).score_against(gold, pred, (metric,), a.info)[metric])
            start += len(a.gold)
        return float(np.mean(values))

    def statistic(x: np.ndarray, y: np.ndarray) -> float:
        return score(np.asarray(x)) - score(np.asarray(y))
    return statistic


def paired_test(a: dict[str, TaskPredictions], b: dict[str, TaskPredictions], n_resamples: int = 10000,
                seed: int = 0) -> dict:
    """Approximate randomisation over the examples of the tasks both systems share (see the module
    docstring): ``{"delta", "p_value", "exact", "tasks", "metrics", "examples", "swappable",
    "resamples", "seeds"}`` (``swappable``: the examples whose counts differ between the systems,
    the only ones a swap can change)."""
    from scipy.stats import permutation_test
    tasks = [t for t in a if t in b]
    if not tasks:
        raise ValueError("the systems share no task")
    for task in tasks:
        if a[task].gold != b[task].gold:
            raise ValueError(f"task {task!r}: the systems were tested on different examples")
    metrics = {task: _first_metric(a[task], b[task], task) for task in tasks}
    n = sum(len(a[t].gold) for t in tasks)
    counts = {t: (_pooled_counts(a[t], metrics[t]), _pooled_counts(b[t], metrics[t])) for t in tasks}
    if all(ca is not None for ca, _ in counts.values()):
        shuffled = {t: np.flatnonzero(np.any(cb != ca, axis=1)) for t, (ca, cb) in counts.items()}
        parts = [(metrics[t], len(a[t].info.get("labels") or []), *counts[t], shuffled[t]) for t in tasks]
        m = sum(len(i) for i in shuffled.values())
        statistic, vectorized = _count_statistic(parts, m), True
        batch = max(1, min(n_resamples, 2_000_000 // max(m, 1)))
    else:
        m = n
        statistic = _scored_statistic([(t, metrics[t], a[t], b[t]) for t in tasks], n)
        vectorized, batch = False, None
    out = {"tasks": tasks, "metrics": metrics, "examples": n, "swappable": m, "resamples": n_resamples,
           "seeds": [len(a[tasks[0]].predictions), len(b[tasks[0]].predictions)]}
    positions = np.arange(m)
    if m < 2:    # at most one example to swap: the null distribution is ±Δ, so p = 1 (scipy needs two)
        delta = float(statistic(positions[None], positions[None] + m)[0]) if m else 0.0
        return {"delta": delta, "p_value": 1.0, "exact": True, **out}
    result = permutation_test((positions, positions + m), statistic, permutation_type="samples",
                              vectorized=vectorized, n_resamples=n_resamples, batch=batch,
                              alternative="two-sided", rng=np.random.default_rng(seed))
    return {"delta": float(result.statistic), "p_value": float(result.pvalue),
            "exact": len(result.null_distribution) == 2 ** m, **out}


def seed_test(a: list[float], b: list[float]) -> dict:
    """Welch's t-test of two systems' per-seed test averages (p None below two seeds a side)."""
    out = {"a": a, "b": b, "p_value": None}
    if len(a) >= 2 and len(b) >= 2:
        import warnings
        from scipy.stats import ttest_ind
        with warnings.catch_warnings():         # seeds that all score alike: no spread to test
            warnings.simplefilter("ignore", RuntimeWarning)
            p = float(ttest_ind(a, b, equal_var=False).pvalue)
        out["p_value"] = None if math.isnan(p) else p
    return out


def verdict(p_value: Optional[float], alpha: float) -> str:
    if p_value is None:
        return "not tested"
    return f"significant at α = {alpha:g}" if p_value < alpha else "not distinguishable at this sample size"
