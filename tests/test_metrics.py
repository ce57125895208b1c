"""Task metrics against values worked out by hand, and the GLUE-style metrics of a run end to end."""
from __future__ import annotations

import json
import math

import pytest

from polytask.evaluation.metrics import METRICS, compute
from polytask.data.spans import span_scores

BINARY = {"labels": ["0", "1"]}


def test_accuracy_macro_and_binary_f1_by_hand():
    gold = [0, 0, 0, 1, 1, 1, 1, 0]
    pred = [0, 1, 0, 1, 1, 0, 1, 0]            # TP 3, FP 1, FN 1, TN 3
    assert compute("accuracy", gold, pred, BINARY) == pytest.approx(75.0)
    assert compute("f1", gold, pred, BINARY) == pytest.approx(75.0)        # P = R = 3/4
    three = {"labels": ["a", "b", "c"]}
    gold3, pred3 = [0, 1, 2, 2], [0, 2, 2, 2]                             # F1: a 1, b 0, c 0.8
    assert compute("macro_f1", gold3, pred3, three) == pytest.approx(100 * (1 + 0 + 0.8) / 3)
    with pytest.raises(ValueError, match="binary F1 needs two labels"):
        compute("f1", gold3, pred3, three)


def test_matthews_correlation_by_hand():
    gold = [1, 1, 1, 0, 0, 0, 0, 0, 1, 0]
    pred = [1, 1, 0, 0, 0, 0, 1, 0, 1, 0]      # TP 3, FN 1, FP 1, TN 5
    tp, tn, fp, fn = 3, 5, 1, 1
    mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert compute("mcc", gold, pred, BINARY) == pytest.approx(100 * mcc)
    assert compute("mcc", gold, [1] * 10, BINARY) == 0.0                   # the majority answer: 0


def test_pearson_and_spearman_by_hand():
    gold = [1.0, 2.0, 3.0, 4.0, 5.0]
    pred = [1.1, 1.9, 3.2, 3.9, 30.0]          # monotone but not linear
    gx, px = sum(gold) / 5, sum(pred) / 5
    cov = sum((g - gx) * (p - px) for g, p in zip(gold, pred))
    r = cov / math.sqrt(sum((g - gx) ** 2 for g in gold) * sum((p - px) ** 2 for p in pred))
    assert compute("pearson", gold, pred, {}) == pytest.approx(100 * r)
    assert compute("spearman", gold, pred, {}) == pytest.approx(100.0)      # same ranks
    assert compute("spearman", gold, pred[::-1], {}) == pytest.approx(-100.0)  # ranks reversed
    assert compute("spearman", gold, [2.0, 1.0, 3.0, 5.0, 4.0], {}) == pytest.approx(80.0)  # 1 - 6·4/120
    assert compute("pearson", gold, [2.0] * 5, {}) == 0.0                   # constant: no relation


def test_span_f1_agrees_with_the_conlleval_reading():
    gold = [["B-NP", "I-NP", "O", "B-VP"], ["O", "B-NP", "I-NP"]]
    pred = [["B-NP", "I-NP", "O", "B-NP"], ["O", "I-NP", "I-NP"]]       # I-NP after O opens a chunk
    expected = span_scores(gold, pred)["f1"]
    assert expected == pytest.approx(100 * 2 / 3)                          # 2 of 3 chunks, both ways
    assert compute("span_f1", gold, pred, {}) == pytest.approx(expected)


def test_squad_metrics_take_the_best_gold_answer():
    gold = [["the Eiffel Tower", "Eiffel Tower"], ["1889"]]
    pred = ["Eiffel Tower", "in 1889"]
    assert compute("em", gold, pred, {}) == pytest.approx(50.0)
    assert compute("squad_f1", gold, pred, {}) == pytest.approx(100 * (1 + 2 / 3) / 2)


def test_every_metric_is_nan_on_nothing():
    assert all(math.isnan(compute(name, [], [], BINARY)) for name in METRICS)
    with pytest.raises(ValueError, match="unknown metric"):
        compute("bleu", [1], [1], {})
