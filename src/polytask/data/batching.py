"""Batches: ids padded to the longest in the batch, length bucketing, resumable iterators.

An iterator's order is a pure function of ``(seed, task, epoch)``, so its whole state is two
integers ``(epoch, position)``; a resumed run draws exactly the batches an uninterrupted one would.
"""
from __future__ import annotations

import random
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from .vocab import Vocab


@dataclass
class Text:
    """One text of a batch, as an architecture reads it. B batch, T time (words, or a pretrained
    tokenizer's sub-tokens), C characters per word, W words.

    A pretrained tokenizer's text also has ``type_ids`` (which segment each sub-token is in, for a
    cross-encoded pair ``[CLS] a [SEP] b [SEP]``) and, for tagging, ``word_starts``: the position
    of each word's first sub-token, where the tagging kind reads the word's state.
    """

    tokens: torch.Tensor                   # (B, T) word or sub-token ids, 0 = padding
    mask: torch.Tensor                     # (B, T) bool, True at real tokens
    chars: Optional[torch.Tensor] = None   # (B, T, C) character ids, 0 = padding
    type_ids: Optional[torch.Tensor] = None     # (B, T) segment ids (pretrained tokenizers)
    word_starts: Optional[torch.Tensor] = None  # (B, W) first sub-token of each word, 0 = padding
    word_mask: Optional[torch.Tensor] = None    # (B, W) bool, True at real words


@dataclass
class Batch:
    """One task's mini-batch of single texts. B batch, T time, C characters per word."""

    task: str
    tokens: torch.Tensor                    # (B, T) word ids, 0 = padding
    mask: torch.Tensor                      # (B, T) bool, True at real tokens
    lengths: torch.Tensor                   # (B,) number of real tokens
    labels: Optional[torch.Tensor] = None   # (B,) class ids or targets, or (B, T) tag ids (0 at padding)
    chars: Optional[torch.Tensor] = None    # (B, T, C) character ids of each token, 0 = padding
    index: Optional[list[int]] = None       # positions of the examples in their split
    type_ids: Optional[torch.Tensor] = None     # (B, T) segment ids (pretrained tokenizers)
    word_starts: Optional[torch.Tensor] = None  # (B, W) first sub-token of each word (pretrained tagging)
    word_mask: Optional[torch.Tensor] = None    # (B, W) bool, True at real words

    def to(self, device: torch.device) -> "Batch":
        moved = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()}
        return type(self)(**moved)

    @property
    def size(self) -> int:
        return self.tokens.shape[0]

    @property
    def text(self) -> Text:
        """The (first) text, as the architectures read it."""
        return Text(self.tokens, self.mask, self.chars, self.type_ids, self.word_starts, self.word_mask)

    @property
    def word_lengths(self) -> torch.Tensor:
        """(B,) number of words: of sub-token-aligned words when the text has them, else of tokens."""
        return self.word_mask.sum(1) if self.word_mask is not None else self.lengths

    def num_tokens(self) -> int:
        return int(self.lengths.sum())


@dataclass
class PairBatch(Batch):
    """A batch of text pairs: the second texts beside the first."""

    tokens_b: Optional[torch.Tensor] = None  # (B, T2)
    mask_b: Optional[torch.Tensor] = None
    lengths_b: Optional[torch.Tensor] = None

    @property
    def text_b(self) -> Text:
        """The second text (no character ids: pair tasks do not read characters)."""
        return Text(self.tokens_b, self.mask_b)

    def num_tokens(self) -> int:
        return int(self.lengths.sum()) + int(self.lengths_b.sum())


@dataclass
class QABatch(PairBatch):
    """(context, question, answer) triples: context = ``tokens``, question = ``tokens_b``, answer
    ids (``<s> … </s>``, extended vocabulary) = ``labels``."""

    chars_b: Optional[torch.Tensor] = None  # (B, T2, C) character ids of the question's tokens
    answer_mask: Optional[torch.Tensor] = None  # (B, A) real answer positions
    oov: Optional[list[list[str]]] = None   # each example's out-of-vocabulary source words
    answers_text: Optional[list[list[str]]] = None  # gold answers, for EM / F1
    # beside a pretrained encoder (MQAN's model.pretrained): the context's and the question's
    # sub-token ids (B, S) with their mask, and each word's first sub-token (B, W) with its mask
    sub_tokens: Optional[torch.Tensor] = None
    sub_mask: Optional[torch.Tensor] = None
    sub_starts: Optional[torch.Tensor] = None
    sub_start_mask: Optional[torch.Tensor] = None
    sub_tokens_b: Optional[torch.Tensor] = None
    sub_mask_b: Optional[torch.Tensor] = None
    sub_starts_b: Optional[torch.Tensor] = None
    sub_start_mask_b: Optional[torch.Tensor] = None


@dataclass
class Encoded:
    """An example as ids, truncated to the maximum length."""

    ids: list[int]
    ids_b: Optional[list[int]]
    label: float                        # class id, or a regression target; -1 when unlabelled
    tags: Optional[list[int]] = None    # tag ids, for tagging
    chars: Optional[list[list[int]]] = None  # character ids per token
    answer: Optional[list[int]] = None  # qa: <s> answer </s> in the extended vocabulary
    oov: Optional[list[str]] = None     # qa: source words outside the vocabulary (ids V, V+1, ...)
    answers_text: Optional[list[str]] = None
    chars_b: Optional[list[list[int]]] = None  # qa: character ids per question token
    labelled: bool = True
    type_ids: Optional[list[int]] = None     # segment of each sub-token (pretrained tokenizers)
    word_starts: Optional[list[int]] = None  # tagging on sub-tokens: each kept word's first sub-token
    # qa beside a pretrained encoder: (sub-token ids, first sub-token of each word) of the context
    # and of the question
    subtokens: Optional[tuple[list[int], list[int], list[int], list[int]]] = None
    # tagging, scored: an input longer than max_length in consecutive pieces, each an Encoded that
    # fits (this item's own fields are those of the first)
    pieces: Optional[list["Encoded"]] = None


def char_ids(tokens: list[str], char_vocab: Optional[Vocab], max_word_length: int = 20) -> Optional[list[list[int]]]:
    """Character ids of each token (None without a character vocabulary)."""
    if char_vocab is None:
        return None
    return [char_vocab.encode(list(tok[:max_word_length])) or [1] for tok in tokens] or [[1]]


def pad(seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Id lists -> ids (B, T) padded with 0, mask (B, T), lengths (B,)."""
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    tokens = torch.zeros(len(seqs), int(lengths.max()), dtype=torch.long)
    for i, s in enumerate(seqs):
        tokens[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    mask = torch.arange(tokens.shape[1])[None, :] < lengths[:, None]
    return tokens, mask, lengths


def pad_chars(words: list[list[list[int]]], length: int) -> torch.Tensor:
    """Per example, per token character ids -> (B, length, longest word), 0 = padding."""
    width = max(len(w) for ws in words for w in ws)
    chars = torch.zeros(len(words), length, width, dtype=torch.long)
    for i, ws in enumerate(words):
        for j, word in enumerate(ws):
            chars[i, j, : len(word)] = torch.tensor(word, dtype=torch.long)
    return chars


def text_batch(task: str, items: list[Encoded], index: Optional[list[int]] = None) -> dict:
    """The fields of a batch's first text: ids, mask, lengths, characters (and a pretrained
    tokenizer's segment ids and word starts, where the items have them)."""
    tokens, mask, lengths = pad([it.ids for it in items])
    chars = pad_chars([it.chars for it in items], tokens.shape[1]) if items[0].chars is not None else None
    fields = {"task": task, "tokens": tokens, "mask": mask, "lengths": lengths, "chars": chars, "index": index}
    if items[0].type_ids is not None:
        fields["type_ids"] = pad([it.type_ids for it in items])[0]
    if items[0].word_starts is not None:
        fields["word_starts"], fields["word_mask"], _ = pad([it.word_starts for it in items])
    return fields


def bucketed_batches(lengths: list[int], batch_size: int, rng: random.Random,
                     window: int = 8) -> list[list[int]]:
    """Shuffle, sort by length inside windows of ``window`` batches, cut, shuffle the batches.

    Batches hold examples of similar length (little padding) while the order stays random.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = batch_size * window
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start:start + chunk], key=lambda i: lengths[i])
        batches.extend(part[i:i + batch_size] for i in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


class TaskBatchIterator:
    """Endless training batches of one task; state is ``(epoch, position)``.

    With ``world_size`` > 1 (data-parallel training, :mod:`polytask.training.distributed`) every
    rank plans the same global batches of ``batch_size × world_size`` examples, the plan of one
    process with that batch size, and rank ``rank`` keeps every ``world_size``-th example of each,
    from its own position on. ``share`` is the fraction of the last global batch that this rank
    drew; a rank that a short last batch leaves without an example gets its first example, with
    ``share`` 0 (its loss then weighs nothing)."""

    def __init__(self, task: str, items: list[Encoded], batch_size: int, seed: int,
                 bucket: bool = True, window: int = 8, collate: Optional[Callable] = None,
                 rank: int = 0, world_size: int = 1):
        if not items:
            raise ValueError(f"task {task!r} has no training examples")
        self.task, self.items, self.batch_size = task, items, batch_size
        self.collate = collate or collate_text
        self.seed, self.bucket, self.window = seed, bucket, window
        self.rank, self.world_size = rank, world_size
        self.epoch, self.position = 0, 0
        self.share = 1.0
        self._plan: Optional[list[list[int]]] = None

    @property
    def global_batch_size(self) -> int:
        return self.batch_size * self.world_size

    def _epoch_plan(self) -> list[list[int]]:
        rng = random.Random(f"{self.seed}/{self.task}/{self.epoch}")
        size = self.global_batch_size
        if self.bucket:
            lengths = [len(it.ids) + (len(it.ids_b) if it.ids_b else 0) for it in self.items]
            return bucketed_batches(lengths, size, rng, self.window)
        order = list(range(len(self.items)))
        rng.shuffle(order)
        return [order[i:i + size] for i in range(0, len(order), size)]

    @property
    def batches_per_epoch(self) -> int:
        return (len(self.items) + self.global_batch_size - 1) // self.global_batch_size

    def __next__(self) -> Batch:
        if self._plan is None:
            self._plan = self._epoch_plan()
        if self.position >= len(self._plan):
            self.epoch, self.position = self.epoch + 1, 0
            self._plan = self._epoch_plan()
        idx = self._plan[self.position]
        self.position += 1
        if self.world_size > 1:
            mine = idx[self.rank::self.world_size]
            self.share = len(mine) / len(idx)
            idx = mine or idx[:1]
        return self.collate(self.task, [self.items[i] for i in idx], idx)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._plan = None


def eval_batches(task: str, items: list[Encoded], batch_size: int, collate: Optional[Callable] = None):
    """Batches for evaluation, sorted by length (least padding); ``batch.index`` restores order."""
    collate = collate or collate_text
    order = sorted(range(len(items)), key=lambda i: len(items[i].ids))
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        yield collate(task, [items[i] for i in idx], idx)


# collated evaluation batches, kept for a run's life: dev is scored at every evaluation and
# collating it again each time costs as much as a small model's forward pass. Keyed by the items
# list itself (held, so its id cannot be reused), the batch size and the collate; bounded.
_EVAL_CACHE: "OrderedDict[tuple, tuple[list, int, list]]" = OrderedDict()
EVAL_CACHE_ENTRIES = 64


def cached_eval_batches(task: str, items: list[Encoded], batch_size: int,
                        collate: Optional[Callable] = None) -> list:
    """:func:`eval_batches` as a list, collated once per (task, items, batch size, collate) and
    reused by later evaluations of the same items. The batches carry no labels (``labels`` None)
    and must not be changed by their users (:func:`polytask.kinds.base.run_eval` only reads them)."""
    collate = collate or collate_text
    key = (task, id(items), batch_size, collate)
    hit = _EVAL_CACHE.get(key)
    if hit is not None and hit[0] is items and hit[1] == len(items):
        _EVAL_CACHE.move_to_end(key)
        return hit[2]
    batches = list(eval_batches(task, items, batch_size, collate))
    for batch in batches:
        batch.labels = None
    _EVAL_CACHE[key] = (items, len(items), batches)
    while len(_EVAL_CACHE) > EVAL_CACHE_ENTRIES:
        _EVAL_CACHE.popitem(last=False)
    return batches


def clear_eval_cache() -> None:
    """Forget every collated evaluation batch (:func:`cached_eval_batches`)."""
    _EVAL_CACHE.clear()


def collate_text(task: str, items: list[Encoded], index: Optional[list[int]] = None) -> Batch:
    """A batch of single texts with class labels (the classification kind's collate)."""
    batch = Batch(**text_batch(task, items, index))
    if items[0].labelled:
        batch.labels = torch.tensor([it.label for it in items], dtype=torch.long)
    return batch
