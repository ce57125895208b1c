"""Evaluation: run a model over encoded examples in length-sorted batches, without gradients."""
from __future__ import annotations

from typing import Optional

import torch

from ..data.batching import Encoded, eval_batches
from .qa_metrics import qa_scores
from .spans import span_scores, token_accuracy


@torch.inference_mode()
def predict_items(model: torch.nn.Module, task: str, items: list[Encoded], batch_size: int,
                  device: torch.device) -> torch.Tensor:
    """Class probabilities (N, C) for ``items``, in their original order."""
    was_training = model.training
    model.eval()
    probs = None
    try:
        for batch in eval_batches(task, items, batch_size):
            batch.labels = None
            p = torch.softmax(model(batch.to(device)).logits.float(), dim=-1).cpu()
            if probs is None:
                probs = torch.empty(len(items), p.shape[-1])
            probs[torch.tensor(batch.index)] = p
    finally:
        model.train(was_training)
    return probs if probs is not None else torch.empty(0, 0)


@torch.inference_mode()
def predict_tags(model: torch.nn.Module, task: str, items: list[Encoded], batch_size: int,
                 device: torch.device) -> list[list[int]]:
    """Decoded tag ids per item (its own length), in the original order."""
    was_training = model.training
    model.eval()
    out: list[list[int]] = [[] for _ in items]
    try:
        for batch in eval_batches(task, items, batch_size):
            batch.labels = None
            pred = model(batch.to(device)).predictions.cpu()
            for row, i, n in zip(pred.tolist(), batch.index, batch.lengths.tolist()):
                out[i] = row[:n]
    finally:
        model.train(was_training)
    return out


@torch.inference_mode()
def generate_answers(model: torch.nn.Module, task: str, items: list[Encoded], batch_size: int,
                     device: torch.device, itos: list[str]) -> list[str]:
    """Decoded answers as text, in the original order; copied ids ≥ V map to the example's OOV words."""
    was_training = model.training
    model.eval()
    out = [""] * len(items)
    try:
        for batch in eval_batches(task, items, batch_size):
            batch.labels = None
            for seq, i in zip(model.generate(batch.to(device)), batch.index):
                oov = items[i].oov or []
                words = [itos[w] if w < len(itos) else (oov[w - len(itos)] if w - len(itos) < len(oov) else "<unk>")
                         for w in seq]
                out[i] = " ".join(words)
    finally:
        model.train(was_training)
    return out


def tagging_score(pred: list[list[int]], items: list[Encoded], info: dict) -> float:
    """Span F1 when the task has a BIO/BIOES scheme, token accuracy otherwise (percent)."""
    labels = info["labels"]
    gold = [[labels[t] for t in it.tags] for it in items]
    guess = [[labels[t] for t in p] for p in pred]
    if info.get("scheme"):
        return span_scores(gold, guess)["f1"]
    return token_accuracy(gold, guess)


def accuracy(probs: torch.Tensor, items: list[Encoded]) -> float:
    if not items:
        return float("nan")
    gold = torch.tensor([it.label for it in items])
    return 100.0 * (probs.argmax(-1) == gold).float().mean().item()


def evaluate_model(model: torch.nn.Module, splits: dict[str, list[Encoded]], batch_size: int,
                   device: torch.device, info: Optional[dict[str, dict]] = None,
                   itos: Optional[list[str]] = None) -> dict[str, float]:
    """Each task's metric in percent: accuracy, or for tagging token accuracy / span F1 (which
    needs ``info[task]`` with ``labels`` and ``scheme``). Tasks with an empty split are left out."""
    scores = {}
    for task, items in splits.items():
        if not items:
            continue
        if items[0].oov is not None:                                     # qa: generated answers
            metric = (info or {}).get(task, {}).get("metric", "em")
            if itos is None:
                raise ValueError("evaluating a qa task needs the vocabulary (itos)")
            answers = generate_answers(model, task, items, batch_size, device, itos)
            scores[task] = qa_scores(answers, [it.answers_text or [] for it in items])[metric]
        elif items[0].tags is not None:
            task_info = (info or {}).get(task, {"labels": [], "scheme": None})
            pred = predict_tags(model, task, items, batch_size, device)
            if not task_info.get("labels"):
                flat = [(a == b) for p, it in zip(pred, items) for a, b in zip(p, it.tags)]
                scores[task] = 100.0 * sum(flat) / len(flat)
            else:
                scores[task] = tagging_score(pred, items, task_info)
        else:
            scores[task] = accuracy(predict_items(model, task, items, batch_size, device), items)
    return scores
