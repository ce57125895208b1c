"""Single-text classification: one label per text (sentiment, topic, acceptability).

Reads ``fdu`` (``label<TAB>text``), ``tsv``, ``csv`` and ``jsonl`` files. The head is a linear
layer over the architecture's sentence vector; the loss is the mean cross-entropy. Metrics:
accuracy (default), macro-F1, binary F1 of the last label, Matthews correlation.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from typing_extensions import TypedDict

from ..data.batching import Batch, Encoded, char_ids, collate_text
from ..data.hf import read_hf
from ..data.readers import Example, read_fdu, read_table, tokenize
from ..modules.heads import ClassificationHead
from .base import TaskKind, TaskOutput, TaskSpec, finish, in_order, run_eval


class LabelRecord(TypedDict):
    """The predicted label, its probability and every label's."""
    label: str
    probability: float
    probabilities: dict[str, float]


class ClassificationKind(TaskKind):
    name = "classification"
    formats = ("fdu", "tsv", "csv", "jsonl", "hf")
    metrics = ("accuracy", "macro_f1", "f1", "mcc")
    default_metrics = ("accuracy",)
    options = frozenset({"text_column", "label_column", "header", "split"})
    record_type = LabelRecord

    def balances_labels(self, task) -> bool:
        return True

    def read(self, task, path, labelled: bool = True, role: str = "train"):
        if task.format == "hf":
            return read_hf(path, role=role, split=(task.split or {}).get(role), text_column=task.text_column,
                           label_column=task.label_column if labelled else None,
                           text_b_column=task.text_b_column if labelled and self.pair(task) else None,
                           numeric=not self.labelled, tokenizer=task.tokenizer, lowercase=task.lowercase)
        if task.format == "fdu":
            return read_fdu(path, labeled=labelled, tokenizer=task.tokenizer, lowercase=task.lowercase,
                            encoding=task.encoding, fallback_encoding=task.fallback_encoding)
        return read_table(path, fmt=task.format, text_column=task.text_column,
                          label_column=task.label_column if labelled else None,
                          text_b_column=task.text_b_column if labelled and self.pair(task) else None,
                          header=task.header, tokenizer=task.tokenizer, lowercase=task.lowercase,
                          encoding=task.encoding, fallback_encoding=task.fallback_encoding)

    def encode(self, examples: list[Example], vocab, labels: list[str], max_length: int,
               char_vocab=None) -> list[Encoded]:
        ids = {label: i for i, label in enumerate(labels)}
        return [Encoded(vocab.encode_text(ex, max_length), None,
                        ids[ex.label] if ex.label is not None else -1,
                        chars=char_ids(ex.tokens[:max_length], char_vocab), labelled=ex.label is not None)
                for ex in examples]

    def collate(self, task: str, items: list[Encoded], index: Optional[list[int]] = None) -> Batch:
        return collate_text(task, items, index)

    def build_head(self, spec: TaskSpec, input_dim: int, dropout: float) -> nn.Module:
        return ClassificationHead(input_dim, spec.num_labels, dropout)

    def forward(self, model, batch: Batch) -> TaskOutput:
        encoding = model.encode(batch.task, batch.text)
        logits = model.head(batch.task)(encoding.sentence())                 # (B, C)
        loss = F.cross_entropy(logits, batch.labels) if batch.labels is not None else None
        return finish(logits, loss, encoding)

    def probabilities(self, model, task: str, items: list[Encoded], batch_size: int, device) -> torch.Tensor:
        """Class probabilities (N, C) in the order of ``items``."""
        rows: list = []
        run_eval(model, task, items, batch_size, device, self,
                 lambda batch, out: rows.extend(zip(batch.index, torch.softmax(out.logits.float(), -1).cpu())))
        return torch.stack(in_order(len(items), rows)) if rows else torch.empty(0, 0)

    def predict(self, model, task: str, items: list[Encoded], batch_size: int, device, itos=None) -> list:
        return self.probabilities(model, task, items, batch_size, device).argmax(-1).tolist() if items else []

    def gold(self, items: list[Encoded]) -> list:
        return [int(it.label) for it in items]

    def records(self, predictions, info: dict, raw=None) -> list[dict]:
        """``predictions``: probabilities (N, C) -> label, its probability and every class's."""
        labels = info["labels"]
        out = []
        for p in predictions:
            k = int(p.argmax())
            out.append({"label": labels[k], "probability": round(float(p[k]), 6),
                        "probabilities": {lab: round(float(v), 6) for lab, v in zip(labels, p)}})
        return out

    def parse_inputs(self, inputs: list, task) -> list[Example]:
        examples = []
        for i, text in enumerate(inputs):
            if not isinstance(text, str):
                raise ValueError(f"input {i + 1}: task {task.name!r} takes one text per input, "
                                 f"got {type(text).__name__}")
            examples.append(Example(tokenize(text, task.tokenizer, task.lowercase) or ["<unk>"], line=i + 1,
                                    text=text))
        return examples
