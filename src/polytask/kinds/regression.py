"""Regression: one real-valued target per text or text pair (STS-B similarity, ratings).

Reads ``tsv``, ``csv``, ``jsonl`` (and ``fdu``: ``target<TAB>text``) files; the label column holds
a number. With a ``text_b_column`` each example is a pair, read as pair classification reads it
(two texts apart, or cross-encoded by a pretrained tokenizer). The head is a linear layer to one
output (over ``[u; v; |u - v|; u * v]`` for pairs read apart); the loss is
the mean squared error. Metrics: Pearson (default, first) and Spearman correlation, times 100 as
GLUE reports them.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from typing_extensions import TypedDict

from ..data.batching import Batch, Encoded, PairBatch, char_ids, text_batch
from ..data.readers import DataError, Example
from ..modules.heads import ClassificationHead, PairClassificationHead
from .base import TaskKind, TaskOutput, TaskSpec, finish, in_order, run_eval
from .classification import ClassificationKind
from .pair_classification import collate_pair, pair_item, pair_logits, parse_pairs


class ScoreRecord(TypedDict):
    """The predicted value."""
    score: float


class RegressionKind(TaskKind):
    name = "regression"
    formats = ("fdu", "tsv", "csv", "jsonl", "hf")
    metrics = ("pearson", "spearman")
    default_metrics = ("pearson", "spearman")
    options = frozenset({"text_column", "text_b_column", "label_column", "header", "split"})
    labelled = False
    record_type = ScoreRecord

    def pair(self, task) -> bool:
        return task.text_b_column is not None

    def input_type(self, task):
        return tuple[str, str] if self.pair(task) else str

    def input_parts(self, task) -> tuple[str, ...]:
        return ("text", "text_b") if self.pair(task) else ("text",)

    def check_config(self, task, where: str) -> None:
        super().check_config(task, where)
        if task.labels is not None:
            raise ValueError(f"{where}.labels: a regression task has a numeric target, not a label set")
        if task.format == "fdu" and self.pair(task):
            raise ValueError(f"{where}.format: the fdu format has one text column; use tsv/csv/jsonl for pairs")

    def read(self, task, path, labelled: bool = True, role: str = "train"):
        reader = ClassificationKind.read(self, task, path, labelled, role)    # same files, a numeric label
        examples, stats = reader
        if labelled:
            for ex in examples:
                try:
                    value = float(ex.label)
                except ValueError:
                    value = math.nan
                if not math.isfinite(value):
                    raise DataError(path, f"target {ex.label!r} in column {task.label_column!r} is not a "
                                    "finite number (a regression task)", ex.line)
        return examples, stats

    def encode(self, examples: list[Example], vocab, labels: list[str], max_length: int,
               char_vocab=None) -> list[Encoded]:
        def item(ex: Example) -> Encoded:
            target = float(ex.label) if ex.label is not None else math.nan
            if ex.tokens_b is not None:
                return pair_item(ex, vocab, max_length, target, char_vocab)
            return Encoded(vocab.encode_text(ex, max_length), None, target,
                           chars=char_ids(ex.tokens[:max_length], char_vocab), labelled=ex.label is not None)
        return [item(ex) for ex in examples]

    def collate(self, task: str, items: list[Encoded], index: Optional[list[int]] = None) -> Batch:
        if items[0].ids_b is not None:
            return collate_pair(task, items, index, float_labels=True)
        batch = Batch(**text_batch(task, items, index))
        if items[0].labelled:
            batch.labels = torch.tensor([it.label for it in items], dtype=torch.float)
        return batch

    def build_head(self, spec: TaskSpec, input_dim: int, dropout: float) -> nn.Module:
        if spec.pair and not spec.cross_encoded:
            return PairClassificationHead(input_dim, 1, dropout)
        return ClassificationHead(input_dim, 1, dropout)

    def forward(self, model, batch: Batch) -> TaskOutput:
        if isinstance(batch, PairBatch):
            logits, first = pair_logits(model, batch)
            scores = logits[:, 0]                                                        # (B,)
        else:                                   # one text, or a cross-encoded pair
            first = model.encode(batch.task, batch.text)
            scores = model.head(batch.task)(first.sentence())[:, 0]                     # (B,)
        loss = F.mse_loss(scores.float(), batch.labels) if batch.labels is not None else None
        return finish(scores, loss, first)

    def predict(self, model, task: str, items: list[Encoded], batch_size: int, device, itos=None) -> list:
        rows: list = []
        run_eval(model, task, items, batch_size, device, self,
                 lambda batch, out: rows.extend(zip(batch.index, out.logits.float().cpu().tolist())))
        return in_order(len(items), rows)

    def gold(self, items: list[Encoded]) -> list:
        return [float(it.label) for it in items]

    def records(self, predictions, info: dict, raw=None) -> list[dict]:
        return [{"score": round(float(p), 6)} for p in predictions]

    def parse_inputs(self, inputs: list, task) -> list[Example]:
        if self.pair(task):
            return parse_pairs(inputs, task)
        return ClassificationKind.parse_inputs(self, inputs, task)
