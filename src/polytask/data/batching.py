"""Batches: ids padded to the longest in the batch, length bucketing, resumable iterators.

An iterator's order is a pure function of ``(seed, task, epoch)``, so its whole state is two
integers ``(epoch, position)``; a resumed run draws exactly the batches an uninterrupted one would.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Optional

import torch

from .readers import Example
from .vocab import Vocab


@dataclass
class Batch:
    """One task's mini-batch. B batch, T time."""

    task: str
    tokens: torch.Tensor                    # (B, T) word ids, 0 = padding
    mask: torch.Tensor                      # (B, T) bool, True at real tokens
    lengths: torch.Tensor                   # (B,) number of real tokens
    labels: Optional[torch.Tensor] = None   # (B,) class ids, or (B, T) tag ids (0 at padding)
    chars: Optional[torch.Tensor] = None    # (B, T, C) character ids of each token, 0 = padding
    chars_b: Optional[torch.Tensor] = None  # qa: (B, T2, C) character ids of the question's tokens
    tokens_b: Optional[torch.Tensor] = None  # (B, T2) second text of a sentence pair
    mask_b: Optional[torch.Tensor] = None
    lengths_b: Optional[torch.Tensor] = None
    index: Optional[list[int]] = None       # positions of the examples in their split
    answer_mask: Optional[torch.Tensor] = None  # qa: (B, A) real answer positions (labels = answer ids)
    oov: Optional[list[list[str]]] = None   # qa: each example's out-of-vocabulary source words
    answers_text: Optional[list[list[str]]] = None  # qa: gold answers, for EM / F1

    def to(self, device: torch.device) -> "Batch":
        moved = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()}
        return Batch(**moved)

    @property
    def size(self) -> int:
        return self.tokens.shape[0]


@dataclass
class Encoded:
    """An example as ids, truncated to the maximum length."""

    ids: list[int]
    ids_b: Optional[list[int]]
    label: int                          # -1 when unlabelled (or a tagging example)
    tags: Optional[list[int]] = None    # tag ids, for tagging
    chars: Optional[list[list[int]]] = None  # character ids per token
    answer: Optional[list[int]] = None  # qa: <s> answer </s> in the extended vocabulary
    oov: Optional[list[str]] = None     # qa: source words outside the vocabulary (ids V, V+1, ...)
    answers_text: Optional[list[str]] = None
    chars_b: Optional[list[list[int]]] = None  # qa: character ids per question token


def encode_examples(examples: list[Example], vocab: Vocab, labels: list[str], max_length: int,
                    char_vocab: Optional[Vocab] = None, max_word_length: int = 20) -> list[Encoded]:
    """Token ids and label (or tag) ids per example; an empty text becomes one unknown token.

    Tagging examples are cut to ``max_length`` tokens like any other; their tags with them.
    """
    label_ids = {label: i for i, label in enumerate(labels)}
    out = []
    for ex in examples:
        if ex.answer is not None or ex.answers_text is not None:
            out.append(_encode_qa(ex, vocab, max_length, char_vocab, max_word_length))
            continue
        ids_b = (vocab.encode(ex.tokens_b[:max_length]) or [1]) if ex.tokens_b is not None else None
        label = label_ids[ex.label] if ex.label is not None else -1
        tags = [label_ids[t] for t in ex.tags[:max_length]] if ex.tags is not None else None
        chars = _char_ids(ex.tokens[:max_length], char_vocab, max_word_length)
        out.append(Encoded(vocab.encode(ex.tokens[:max_length]) or [1], ids_b, label, tags, chars))
    return out


def _char_ids(tokens: list[str], char_vocab: Optional[Vocab], max_word_length: int) -> Optional[list[list[int]]]:
    if char_vocab is None:
        return None
    return [char_vocab.encode(list(tok[:max_word_length])) or [1] for tok in tokens] or [[1]]


def _encode_qa(ex: Example, vocab: Vocab, max_length: int, char_vocab: Optional[Vocab] = None,
               max_word_length: int = 20) -> Encoded:
    """Context and question ids in an extended vocabulary: a source word outside the vocabulary
    gets the id V + j (j-th such word of this example), so the answer can copy it."""
    V, oov = len(vocab), []

    def ext(tokens: list[str], add: bool) -> list[int]:
        ids = []
        for tok in tokens:
            i = vocab.stoi.get(tok)
            if i is None:
                if tok not in oov and add:
                    oov.append(tok)
                i = V + oov.index(tok) if tok in oov else 1
            ids.append(i)
        return ids

    context = ext(ex.tokens[:max_length], True) or [1]
    question = ext((ex.tokens_b or [])[:max_length], True) or [1]
    answer = None
    if ex.answer is not None:
        answer = [vocab.stoi["<s>"]] + ext(ex.answer[:max_length], False) + [vocab.stoi["</s>"]]
    return Encoded(context, question, -1, answer=answer, oov=oov, answers_text=ex.answers_text,
                   chars=_char_ids(ex.tokens[:max_length], char_vocab, max_word_length),
                   chars_b=_char_ids((ex.tokens_b or [])[:max_length], char_vocab, max_word_length))


def _pad(seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    tokens = torch.zeros(len(seqs), int(lengths.max()), dtype=torch.long)
    for i, s in enumerate(seqs):
        tokens[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    mask = torch.arange(tokens.shape[1])[None, :] < lengths[:, None]
    return tokens, mask, lengths


def collate(task: str, items: list[Encoded], index: Optional[list[int]] = None) -> Batch:
    tokens, mask, lengths = _pad([it.ids for it in items])
    batch = Batch(task=task, tokens=tokens, mask=mask, lengths=lengths, index=index)
    if items[0].ids_b is not None:
        batch.tokens_b, batch.mask_b, batch.lengths_b = _pad([it.ids_b for it in items])
    if items[0].oov is not None:                                # qa
        batch.oov = [it.oov for it in items]
        batch.answers_text = [it.answers_text for it in items]
        if items[0].answer is not None:
            batch.labels, batch.answer_mask, _ = _pad([it.answer for it in items])
        if items[0].chars is not None:
            batch.chars = _pad_chars([it.chars for it in items], batch.tokens.shape[1])
            batch.chars_b = _pad_chars([it.chars_b for it in items], batch.tokens_b.shape[1])
        return batch
    if items[0].tags is not None:
        batch.labels, _, _ = _pad([it.tags for it in items])
    elif items[0].label >= 0:
        batch.labels = torch.tensor([it.label for it in items], dtype=torch.long)
    if items[0].chars is not None:
        batch.chars = _pad_chars([it.chars for it in items], batch.tokens.shape[1])
    return batch


def _pad_chars(words: list[list[list[int]]], length: int) -> torch.Tensor:
    """Per example, per token character ids -> (B, length, longest word), 0 = padding."""
    width = max(len(w) for ws in words for w in ws)
    chars = torch.zeros(len(words), length, width, dtype=torch.long)
    for i, ws in enumerate(words):
        for j, word in enumerate(ws):
            chars[i, j, : len(word)] = torch.tensor(word, dtype=torch.long)
    return chars


def bucketed_batches(lengths: list[int], batch_size: int, rng: random.Random,
                     window: int = 50) -> list[list[int]]:
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
    """Endless training batches of one task; state is ``(epoch, position)``."""

    def __init__(self, task: str, items: list[Encoded], batch_size: int, seed: int,
                 bucket: bool = True, window: int = 50):
        if not items:
            raise ValueError(f"task {task!r} has no training examples")
        self.task, self.items, self.batch_size = task, items, batch_size
        self.seed, self.bucket, self.window = seed, bucket, window
        self.epoch, self.position = 0, 0
        self._plan: Optional[list[list[int]]] = None

    def _epoch_plan(self) -> list[list[int]]:
        rng = random.Random(f"{self.seed}/{self.task}/{self.epoch}")
        if self.bucket:
            lengths = [len(it.ids) + (len(it.ids_b) if it.ids_b else 0) for it in self.items]
            return bucketed_batches(lengths, self.batch_size, rng, self.window)
        order = list(range(len(self.items)))
        rng.shuffle(order)
        return [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    @property
    def batches_per_epoch(self) -> int:
        return (len(self.items) + self.batch_size - 1) // self.batch_size

    def __next__(self) -> Batch:
        if self._plan is None:
            self._plan = self._epoch_plan()
        if self.position >= len(self._plan):
            self.epoch, self.position = self.epoch + 1, 0
            self._plan = self._epoch_plan()
        idx = self._plan[self.position]
        self.position += 1
        return collate(self.task, [self.items[i] for i in idx], idx)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._plan = None


def eval_batches(task: str, items: list[Encoded], batch_size: int):
    """Batches for evaluation, sorted by length (least padding); ``batch.index`` restores order."""
    order = sorted(range(len(items)), key=lambda i: len(items[i].ids))
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        yield collate(task, [items[i] for i in idx], idx)
