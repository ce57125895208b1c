"""Task metrics, each on a 0-100 scale as GLUE averages them, computed with scikit-learn, SciPy
and seqeval rather than re-derived: accuracy, macro-F1, binary F1, Matthews correlation (CoLA),
Pearson and Spearman correlation (STS-B), span F1 (CoNLL chunks, conlleval's reading), and SQuAD's
exact match and token F1.

``compute(name, gold, predicted, info)`` takes the gold values and predictions in the form the
task's kind gives them: class ids, floats, tag-string sequences (span F1) or answer strings with
the gold answers of each question (em, squad_f1).
"""
from __future__ import annotations

import math
from typing import Callable

from .qa_metrics import qa_scores


def _accuracy(gold: list, pred: list, info: dict) -> float:
    from sklearn.metrics import accuracy_score
    return 100.0 * accuracy_score(gold, pred)


def _macro_f1(gold: list, pred: list, info: dict) -> float:
    from sklearn.metrics import f1_score
    labels = list(range(len(info["labels"]))) if info.get("labels") else None
    return 100.0 * f1_score(gold, pred, labels=labels, average="macro", zero_division=0)


def _binary_f1(gold: list, pred: list, info: dict) -> float:
    """F1 of the positive class: the last label (``1`` of ``0``/``1``, ``entailment``, ...)."""
    from sklearn.metrics import f1_score
    if len(info.get("labels") or ()) != 2:
        raise ValueError(f"binary F1 needs two labels, the task has {info.get('labels')}; use macro_f1")
    return 100.0 * f1_score(gold, pred, pos_label=1, average="binary", zero_division=0)


def _mcc(gold: list, pred: list, info: dict) -> float:
    from sklearn.metrics import matthews_corrcoef
    return 100.0 * matthews_corrcoef(gold, pred)


def _correlation(fn: Callable) -> Callable:
    def metric(gold: list, pred: list, info: dict) -> float:
        if len(gold) < 2 or len(set(pred)) < 2 or len(set(gold)) < 2:
            return 0.0               # undefined for a constant: no linear (or rank) relation shown
        value = fn(gold, pred)[0]
        return 0.0 if math.isnan(value) else 100.0 * float(value)
    return metric


def _pearson(gold: list, pred: list) -> tuple:
    from scipy.stats import pearsonr
    return pearsonr(gold, pred)


def _spearman(gold: list, pred: list) -> tuple:
    from scipy.stats import spearmanr
    return spearmanr(gold, pred)


def _span_f1(gold: list, pred: list, info: dict) -> float:
    """Chunk F1 over tag sequences (seqeval's default mode reads chunks as conlleval does)."""
    from seqeval.metrics import f1_score
    return 100.0 * f1_score(gold, pred, zero_division=0)


def _em(gold: list, pred: list, info: dict) -> float:
    return qa_scores(pred, gold)["em"]


def _squad_f1(gold: list, pred: list, info: dict) -> float:
    return qa_scores(pred, gold)["f1"]


METRICS: dict[str, Callable[[list, list, dict], float]] = {
    "accuracy": _accuracy,
    "macro_f1": _macro_f1,
    "f1": _binary_f1,
    "mcc": _mcc,
    "pearson": _correlation(_pearson),
    "spearman": _correlation(_spearman),
    "span_f1": _span_f1,
    "em": _em,
    "squad_f1": _squad_f1,
}


def compute(name: str, gold: list, pred: list, info: dict) -> float:
    """Metric ``name`` (0-100) of ``pred`` against ``gold``; NaN when there is nothing to score."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r} (known: {', '.join(METRICS)})")
    if not gold:
        return float("nan")
    return float(METRICS[name](gold, pred, info))
