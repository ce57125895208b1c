"""Token and label vocabularies, saved as JSON."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterable, Optional

PAD, UNK = "<pad>", "<unk>"
BOS, EOS = "<s>", "</s>"          # answer start / end (qa tasks: ids 2 and 3)


class Vocab:
    """Maps tokens to ids. Id 0 is padding, id 1 the unknown token.

    Besides ``encode`` it meets the input side of the encoder contract that a pretrained
    tokenizer (:class:`polytask.modules.pretrained.PretrainedVocab`) also meets: the task kinds
    ask for the ids of one text (``encode_text``), of a pair (``encode_pair``: here two separate
    texts, each read on its own) or of the words of a tagged sentence (``encode_words``: here one
    id per word). The word-vector path reads an example's ``tokens`` (lowercased when the task says
    so); a pretrained tokenizer reads the raw ``text``.
    """

    def __init__(self, tokens: list[str]):
        if tokens[:2] != [PAD, UNK]:
            tokens = [PAD, UNK] + [t for t in tokens if t not in (PAD, UNK)]
        self.itos = list(tokens)
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    @classmethod
    def build(cls, sentences: Iterable[list[str]], min_freq: int = 1,
              max_size: Optional[int] = None) -> "Vocab":
        """Most frequent first (ties alphabetical, so the ids are deterministic)."""
        counts = Counter(tok for sent in sentences for tok in sent)
        kept = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[: max(0, max_size - 2)]
        return cls(kept)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: list[str]) -> list[int]:
        get = self.stoi.get
        return [get(t, 1) for t in tokens]

    def encode_text(self, example, max_length: int) -> list[int]:
        """The ids of an example's (first) text, cut to ``max_length`` tokens ([<unk>] if empty)."""
        return self.encode(example.tokens[:max_length]) or [1]

    def encode_pair(self, example, max_length: int) -> tuple[list[int], Optional[list[int]], Optional[list[int]]]:
        """``(ids of text a, ids of text b, None)``: the two texts of a pair are encoded apart."""
        return self.encode_text(example, max_length), self.encode(example.tokens_b[:max_length]) or [1], None

    def encode_words(self, example, max_length: int) -> tuple[list[int], Optional[list[int]], int]:
        """``(ids, None, number of words kept)``: one id per word, the first ``max_length`` words."""
        return self.encode(example.tokens[:max_length]) or [1], None, min(len(example.tokens), max_length)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.itos, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> "Vocab":
        return cls(json.loads(path.read_text(encoding="utf-8")))


def load_vocab(path: Path):
    """A run's vocabulary: polytask's word list, or a pretrained model's tokenizer."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict) and "tokenizer" in data:
        from ..modules.pretrained import PretrainedVocab, WordsBesidePretrained
        return WordsBesidePretrained.load(path) if "words" in data else PretrainedVocab.load(path)
    return Vocab(data)
