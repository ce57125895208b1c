"""Sequence labelling: one tag per word (part of speech, chunks, named entities).

Reads CoNLL column files (``conll``: ``token_column`` / ``tag_column``) and CoNLL-U (``conllu``:
``conllu_field`` upos/xpos). The head reads the architecture's per-word states: a per-token
softmax, or a linear-chain CRF (``tagging_head: crf``) that, with a ``tag_scheme`` (BIO/BIOES),
never takes a forbidden transition. Metrics: span F1 (seqeval, conlleval's reading of chunks) when
the task has a scheme, token accuracy otherwise. Predictions are written as JSON or CoNLL.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from typing import Optional, Union

from torch import nn
from typing_extensions import TypedDict

from ..data.batching import Batch, Encoded, char_ids, pad, text_batch
from ..data.conll import read_conll, read_conllu
from ..data.hf import read_hf_tagging
from ..data.readers import Example
from ..evaluation.metrics import compute
from ..modules.tagging import build_tagging_head
from .base import TaskKind, TaskOutput, TaskSpec, finish, in_order, run_eval


def complete_tag_set(tags: list[str], scheme: str) -> list[str]:
    """Every prefix of every chunk type seen (a type seen as B-LST also gets I-LST), so a test
    tag whose type is known but whose prefix never occurred in training is not an error."""
    prefixes = "BI" if scheme == "BIO" else "BIES"
    kinds = {t.split("-", 1)[1] for t in tags if "-" in t}
    return sorted(set(tags) | {f"{p}-{k}" for k in kinds for p in prefixes})


# the pieces of items encoded by encode_scored, as one list per items list: dev is scored at every
# evaluation, and the same list lets the evaluation batches be collated once (cached_eval_batches)
_FLAT: "OrderedDict[int, tuple[list, int, list]]" = OrderedDict()


def _flat_pieces(items: list[Encoded]) -> list[Encoded]:
    hit = _FLAT.get(id(items))
    if hit is not None and hit[0] is items and hit[1] == len(items):
        return hit[2]
    flat = [piece for it in items for piece in (it.pieces or [it])]
    _FLAT[id(items)] = (items, len(items), flat)
    while len(_FLAT) > 16:
        _FLAT.popitem(last=False)
    return flat


class TagsRecord(TypedDict):
    """The sentence's tokens (as given) and one tag per token."""
    tokens: list[str]
    tags: list[str]


class TaggingKind(TaskKind):
    name = "tagging"
    formats = ("conll", "conllu", "hf")
    metrics = ("span_f1", "accuracy")
    default_metrics = ("accuracy",)
    options = frozenset({"token_column", "tag_column", "conllu_field", "tag_scheme", "tagging_head", "split"})
    record_type = TagsRecord

    def input_type(self, task):
        return Union[str, list[str]]         # a whitespace-tokenised sentence, or its tokens

    def input_parts(self, task) -> tuple[str, ...]:
        return ("tokens",)

    def default_metric(self, task) -> tuple[str, ...]:
        return ("span_f1",) if task.tag_scheme else ("accuracy",)

    def check_config(self, task, where: str) -> None:
        super().check_config(task, where)
        if task.metric and "span_f1" in task.metric and not task.tag_scheme:
            raise ValueError(f"{where}.metric: span_f1 reads chunks, so it needs a tag_scheme (BIO or BIOES)")
        for key in ("token_column", "tag_column"):
            value = getattr(task, key)
            if task.format == "hf" and not isinstance(value, str):
                raise ValueError(f"{where}.{key}: a Hugging Face dataset's columns are named; give the name of "
                                 f"its column of {'words' if key == 'token_column' else 'tags'} ({task.name})")
            if task.format != "hf" and not isinstance(value, int):
                raise ValueError(f"{where}.{key}: {task.format} columns are numbered from 0, not named ({task.name})")

    def read(self, task, path, labelled: bool = True, role: str = "train"):
        if task.format == "hf":
            return read_hf_tagging(path, role=role, split=(task.split or {}).get(role), token_column=task.token_column,
                                   tag_column=task.tag_column if labelled else None, lowercase=task.lowercase)
        if task.format == "conll":
            return read_conll(path, token_column=task.token_column, label_column=task.tag_column,
                              lowercase=task.lowercase, encoding=task.encoding,
                              fallback_encoding=task.fallback_encoding)
        return read_conllu(path, label_field=task.conllu_field, lowercase=task.lowercase, encoding=task.encoding)

    def gold_labels(self, example: Example) -> list[str]:
        return list(example.tags or [])

    def label_set(self, task, train: list[Example]) -> list[str]:
        labels = super().label_set(task, train)
        if task.labels is None and task.tag_scheme:
            labels = complete_tag_set(labels, task.tag_scheme)
        return labels

    def encode(self, examples: list[Example], vocab, labels: list[str], max_length: int,
               char_vocab=None) -> list[Encoded]:
        """Word ids and tag ids, both cut to ``max_length`` words; with a pretrained tokenizer the
        sub-token ids of the given words (cut to ``max_length`` sub-tokens), each kept word's
        first sub-token (``word_starts``) and the tags of the kept words."""
        ids = {label: i for i, label in enumerate(labels)}
        out = []
        for ex in examples:
            token_ids, word_starts, kept = vocab.encode_words(ex, max_length)
            out.append(Encoded(token_ids, None, -1,
                               tags=[ids[t] for t in ex.tags[:kept]] if ex.tags is not None else None,
                               chars=char_ids(ex.tokens[:max_length], char_vocab), labelled=ex.tags is not None,
                               word_starts=word_starts))
        return out

    def encode_scored(self, examples: list[Example], vocab, labels: list[str], max_length: int,
                      char_vocab=None) -> list[Encoded]:
        """Every word of every sentence: a sentence longer than ``max_length`` (words, or a
        pretrained tokenizer's sub-tokens) is encoded in consecutive pieces that each fit
        (``Encoded.pieces``); :meth:`gold` and :meth:`predict` read the pieces one after the other."""
        out = []
        for ex in examples:
            pieces, start = [], 0
            while True:
                part = ex if start == 0 else replace(
                    ex, tokens=ex.tokens[start:], words=ex.words[start:] if ex.words is not None else None,
                    tags=ex.tags[start:] if ex.tags is not None else None)
                piece = self.encode([part], vocab, labels, max_length, char_vocab)[0]
                kept = len(piece.word_starts) if piece.word_starts is not None else min(len(part.tokens), max_length)
                if kept <= 0 and part.tokens:
                    raise ValueError(f"line {ex.line}: data.max_length {max_length} leaves no room for the word "
                                     f"{part.tokens[0]!r} (a sentence is tagged in pieces of at most that many "
                                     "sub-tokens, special tokens included)")
                pieces.append(piece)
                start += kept
                if start >= len(ex.tokens):
                    break
            # a sentence in pieces reads as its first piece to whatever batches it (a loss on dev, say);
            # gold and predict read every piece
            out.append(pieces[0] if len(pieces) == 1 else replace(pieces[0], pieces=pieces))
        return out

    def collate(self, task: str, items: list[Encoded], index: Optional[list[int]] = None) -> Batch:
        batch = Batch(**text_batch(task, items, index))
        if items[0].labelled:
            batch.labels, _, _ = pad([it.tags for it in items])          # (B, W), 0 at padding
        return batch

    def build_head(self, spec: TaskSpec, input_dim: int, dropout: float) -> nn.Module:
        return build_tagging_head(input_dim, spec, dropout)

    def forward(self, model, batch: Batch) -> TaskOutput:
        encoding = model.encode(batch.task, batch.text)
        states, mask = encoding.words(batch.text)                             # (B, W, H), (B, W)
        head = model.head(batch.task)
        logits = head(states)                                                 # (B, W, C)
        predictions = head.decode(logits.detach(), mask)                      # (B, W)
        loss = head.loss(logits, batch.labels, mask) if batch.labels is not None else None
        return finish(logits, loss, encoding, predictions)

    def predict(self, model, task: str, items: list[Encoded], batch_size: int, device, itos=None) -> list:
        """Decoded tag ids per item (its own length), in the order of ``items``; an item in pieces
        (:meth:`encode_scored`) gets its pieces' tags one after the other."""
        if any(it.pieces for it in items):
            tags = iter(self.predict(model, task, _flat_pieces(items), batch_size, device, itos))
            return [[t for _ in (it.pieces or [it]) for t in next(tags)] for it in items]
        rows: list = []

        def keep(batch, out):
            for row, i, n in zip(out.predictions.cpu().tolist(), batch.index, batch.word_lengths.tolist()):
                rows.append((i, row[:n]))
        run_eval(model, task, items, batch_size, device, self, keep)
        return in_order(len(items), rows)

    def gold(self, items: list[Encoded]) -> list:
        return [[t for piece in (it.pieces or [it]) for t in piece.tags] for it in items]

    def score_against(self, gold: list, predictions: list, metrics: tuple[str, ...],
                      info: dict) -> dict[str, float]:
        labels = info["labels"]
        gold = [[labels[t] for t in tags] for tags in gold]
        guess = [[labels[t] for t in tags] for tags in predictions]
        flat_gold = [t for tags in gold for t in tags]
        flat_guess = [t for tags in guess for t in tags]
        return {name: compute(name, gold, guess, info) if name == "span_f1" else compute(name, flat_gold, flat_guess, info)
                for name in metrics}

    def records(self, predictions, info: dict, raw=None) -> list[dict]:
        """``predictions``: (tokens, tag ids) per sentence."""
        return [{"tokens": tokens, "tags": [info["labels"][t] for t in tags]} for tokens, tags in predictions]

    def parse_inputs(self, inputs: list, task) -> list[Example]:
        examples = []
        for i, item in enumerate(inputs):
            if isinstance(item, str):
                tokens = item.split()
            elif isinstance(item, list) and all(isinstance(t, str) for t in item):
                tokens = list(item)
            else:
                raise ValueError(f"input {i + 1}: task {task.name!r} tags a whitespace-tokenised sentence "
                                 "or a list of tokens")
            if not tokens:
                raise ValueError(f"input {i + 1}: empty sentence")
            examples.append(Example(tokens=tokens, line=i + 1, words=list(tokens)))
        return examples
