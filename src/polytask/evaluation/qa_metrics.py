"""Exact match and token F1 with the SQuAD answer normalisation (Rajpurkar et al. 2016): lower
case, drop punctuation and the articles a/an/the, collapse whitespace; each prediction is scored
against its best-matching gold answer. The decathlon score sums the tasks' metrics."""
from __future__ import annotations

import re
import string
from collections import Counter

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = sum((Counter(pred) & Counter(ref)).values())
    if not pred or not ref:
        return float(pred == ref)
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def qa_scores(predictions: list[str], golds: list[list[str]]) -> dict[str, float]:
    """Mean EM and F1 (percent), each prediction against its best gold answer."""
    if len(predictions) != len(golds):
        raise ValueError(f"{len(predictions)} predictions for {len(golds)} questions")
    em = f1 = 0.0
    for pred, answers in zip(predictions, golds):
        em += max(exact_match(pred, g) for g in answers) if answers else 0.0
        f1 += max(token_f1(pred, g) for g in answers) if answers else 0.0
    n = max(1, len(predictions))
    return {"em": 100.0 * em / n, "f1": 100.0 * f1 / n}


def decathlon_score(metrics: dict[str, float]) -> float:
    """decaNLP's overall score: the sum of the per-task metrics (each 0-100)."""
    return sum(metrics.values())
