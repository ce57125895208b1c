"""Span (chunk) precision, recall and F1 for BIO / BIOES tag sequences.

Chunks are read the way the CoNLL-2000 ``conlleval`` script reads them (and ``seqeval`` in its
default mode): a chunk ends before ``B``/``S``/``O``, after ``E``/``S``, or where the type
changes; a chunk starts at ``B``/``S``, at an ``I``/``E`` that does not continue an open chunk,
or where the type changes. So ``O I-NP`` still yields an NP chunk. A chunk counts as correct when
its type, start and end all match.
"""
from __future__ import annotations


def _split(tag: str) -> tuple[str, str]:
    if tag in ("O", ""):
        return "O", ""
    prefix, sep, kind = tag.partition("-")
    if not sep:                      # a bare "B" or "I": untyped chunk
        return tag, ""
    return prefix, kind


def _ends(prev: str, prev_type: str, cur: str, cur_type: str) -> bool:
    if prev in ("E", "S"):
        return True
    if prev in ("B", "I") and cur in ("B", "S", "O"):
        return True
    return prev != "O" and prev_type != cur_type


def _starts(prev: str, prev_type: str, cur: str, cur_type: str) -> bool:
    if cur in ("B", "S"):
        return True
    if cur in ("I", "E") and prev in ("E", "S", "O"):
        return True
    return cur != "O" and prev_type != cur_type


def chunks(tags: list[str]) -> list[tuple[str, int, int]]:
    """(type, first index, last index) of every chunk in one tag sequence."""
    out = []
    prev, prev_type, begin = "O", "", None
    for i, tag in enumerate(list(tags) + ["O"]):
        cur, cur_type = _split(tag)
        if begin is not None and _ends(prev, prev_type, cur, cur_type):
            out.append((prev_type, begin, i - 1))
            begin = None
        if _starts(prev, prev_type, cur, cur_type):
            begin = i
        prev, prev_type = cur, cur_type
    return out


def span_scores(gold: list[list[str]], pred: list[list[str]]) -> dict[str, float]:
    """Micro precision, recall and F1 (percent) over all sentences."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted")
    n_gold = n_pred = n_correct = 0
    for g, p in zip(gold, pred):
        if len(g) != len(p):
            raise ValueError("a predicted sentence differs in length from its gold sentence")
        gs, ps = set(chunks(g)), set(chunks(p))
        n_gold += len(gs)
        n_pred += len(ps)
        n_correct += len(gs & ps)
    precision = 100.0 * n_correct / n_pred if n_pred else 0.0
    recall = 100.0 * n_correct / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def token_accuracy(gold: list[list[str]], pred: list[list[str]]) -> float:
    total = sum(len(g) for g in gold)
    right = sum(a == b for g, p in zip(gold, pred) for a, b in zip(g, p))
    return 100.0 * right / total if total else float("nan")
