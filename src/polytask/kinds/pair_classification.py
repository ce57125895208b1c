"""Sentence-pair classification: one label per pair of texts (NLI, paraphrase).

Reads ``tsv``, ``csv`` and ``jsonl`` files with a ``text_b_column``. How the pair is read depends
on the encoder's input side (the run's vocabulary), not on the architecture:

* word vectors: each text is encoded on its own and the head reads ``[u; v; |u - v|; u * v]`` of
  the two sentence vectors (InferSent, Conneau et al. 2017);
* a pretrained tokenizer: the pair is cross-encoded as one input ``[CLS] a [SEP] b [SEP]``
  (``tokenizer(a, b)``, with segment ids where the model has them), so the texts attend to each
  other, and the head reads that one joint sentence vector (BERT; MT-DNN).

Metrics as for classification.
"""
from __future__ import annotations

from typing import Optional

import torch.nn.functional as F
from torch import nn

from ..data.batching import Batch, Encoded, PairBatch, char_ids, collate_text, pad, text_batch
from ..data.readers import Example, tokenize
from ..modules.heads import ClassificationHead, PairClassificationHead
from .base import TaskOutput, TaskSpec, finish
from .classification import ClassificationKind


class PairClassificationKind(ClassificationKind):
    name = "pair_classification"
    formats = ("tsv", "csv", "jsonl", "hf")
    options = frozenset({"text_column", "text_b_column", "label_column", "header", "split"})

    def check_config(self, task, where: str) -> None:
        super().check_config(task, where)
        if task.text_b_column is None:
            raise ValueError(f"{where}.text_b_column: pair tasks need a second text column")

    def pair(self, task) -> bool:
        return True

    def input_type(self, task):
        return tuple[str, str]

    def input_parts(self, task) -> tuple[str, ...]:
        return ("text", "text_b")

    def encode(self, examples: list[Example], vocab, labels: list[str], max_length: int,
               char_vocab=None) -> list[Encoded]:
        ids = {label: i for i, label in enumerate(labels)}
        return [pair_item(ex, vocab, max_length, ids[ex.label] if ex.label is not None else -1, char_vocab)
                for ex in examples]

    def collate(self, task: str, items: list[Encoded], index: Optional[list[int]] = None) -> Batch:
        if items[0].ids_b is None:                        # cross-encoded: one joint text per pair
            return collate_text(task, items, index)
        return collate_pair(task, items, index, float_labels=False)

    def build_head(self, spec: TaskSpec, input_dim: int, dropout: float) -> nn.Module:
        if spec.cross_encoded:
            return ClassificationHead(input_dim, spec.num_labels, dropout)
        return PairClassificationHead(input_dim, spec.num_labels, dropout)

    def forward(self, model, batch: Batch) -> TaskOutput:
        logits, encoding = pair_logits(model, batch)                               # (B, C)
        loss = F.cross_entropy(logits, batch.labels) if batch.labels is not None else None
        return finish(logits, loss, encoding)

    def parse_inputs(self, inputs: list, task) -> list[Example]:
        return parse_pairs(inputs, task)


def pair_item(ex: Example, vocab, max_length: int, label: float, char_vocab=None) -> Encoded:
    """A pair example's ids: the two texts apart (word vectors), or one cross-encoded input with
    its segment ids (a pretrained tokenizer; ``ids_b`` None), as the vocabulary reads pairs."""
    ids, ids_b, type_ids = vocab.encode_pair(ex, max_length)
    return Encoded(ids, ids_b, label, chars=char_ids(ex.tokens[:max_length], char_vocab),
                   labelled=ex.label is not None, type_ids=type_ids)


def pair_logits(model, batch: Batch):
    """The head's output for a batch of pairs and the first encoding: from the two sentence
    vectors of a :class:`PairBatch`, or from the joint vector of a cross-encoded batch."""
    if isinstance(batch, PairBatch):
        first = model.encode(batch.task, batch.text)
        second = model.encode(batch.task, batch.text_b)
        return model.head(batch.task)(first.sentence(), second.sentence()), first
    joint = model.encode(batch.task, batch.text)                                 # [CLS] a [SEP] b [SEP]
    return model.head(batch.task)(joint.sentence()), joint


def collate_pair(task: str, items: list[Encoded], index: Optional[list[int]], float_labels: bool) -> PairBatch:
    """A batch of text pairs; labels as class ids, or as float targets."""
    import torch
    batch = PairBatch(**text_batch(task, items, index))
    batch.tokens_b, batch.mask_b, batch.lengths_b = pad([it.ids_b for it in items])
    if items[0].labelled:
        batch.labels = torch.tensor([it.label for it in items], dtype=torch.float if float_labels else torch.long)
    return batch


def parse_pairs(inputs: list, task) -> list[Example]:
    """``[a, b]`` pairs (or tuples) as examples tokenised the task's way."""
    examples = []
    for i, item in enumerate(inputs):
        if not isinstance(item, (tuple, list)) or len(item) != 2 or not all(isinstance(t, str) for t in item):
            raise ValueError(f"input {i + 1}: task {task.name!r} takes sentence pairs "
                             "(two tab-separated texts, or [a, b] in JSON)")
        a, b = item
        examples.append(Example(tokenize(a, task.tokenizer, task.lowercase) or ["<unk>"], None,
                                tokenize(b, task.tokenizer, task.lowercase) or ["<unk>"], i + 1, text=a, text_b=b))
    return examples
