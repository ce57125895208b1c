"""Readers for token-level data: CoNLL column files and CoNLL-U.

Both return :class:`~polytask.data.readers.Example` objects whose ``tags`` hold one label per
token. Malformed lines are errors naming the file and line.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from .readers import DataError, Example, ReadStats, _read_lines_keep_blank


def _sentences(path: Path, lines: list[tuple[int, str]], parse, lowercase: bool) -> list[Example]:
    """Group numbered lines into sentences at blank lines; ``parse(number, line)`` returns a
    (word, tag) pair or None for a line to skip; ``lowercase`` gives the tokens the word-vector
    models read (``words`` keeps the file's). A sentence's ``line`` is its first token's."""
    examples: list[Example] = []
    words: list[str] = []
    tags: list[str] = []
    start = 0
    for number, line in lines + [(0, "")]:
        if not line.strip():
            if words:
                tokens = [w.lower() for w in words] if lowercase else list(words)
                examples.append(Example(tokens=tokens, tags=tags, line=start, words=words))
                words, tags = [], []
            continue
        pair = parse(number, line)
        if pair is None:
            continue
        if not words:
            start = number
        words.append(pair[0])
        tags.append(pair[1])
    if not examples:
        raise DataError(path, "no sentences found")
    return examples


def read_conll(path: str | Path, *, token_column: int = 0, label_column: int = -1,
               separator: Optional[str] = None, lowercase: bool = False, encoding: str = "utf-8",
               fallback_encoding: str = "cp1252") -> tuple[list[Example], ReadStats]:
    """Read a CoNLL column file: one token per line, blank lines between sentences.

    ``-DOCSTART-`` lines (and the blank line after them) are skipped. Columns are split on
    whitespace unless ``separator`` is given; every token line of a file must have the same
    number of columns.
    """
    path = Path(path)
    stats = ReadStats()
    width = None

    def parse(number: int, line: str):
        nonlocal width
        fields = line.split(separator) if separator else line.split()
        if fields[0] == "-DOCSTART-":
            return None
        if width is None:
            width = len(fields)
        if len(fields) != width:
            raise DataError(path, f"expected {width} columns, found {len(fields)}", number)
        try:
            token, label = fields[token_column], fields[label_column]
        except IndexError:
            raise DataError(path, f"no column {label_column} (the line has {len(fields)})", number) from None
        return token, label

    lines = _read_lines_keep_blank(path, encoding, fallback_encoding, stats)
    return _sentences(path, lines, parse, lowercase), stats


def read_conllu(path: str | Path, *, label_field: str = "upos", lowercase: bool = False,
                encoding: str = "utf-8") -> tuple[list[Example], ReadStats]:
    """Read CoNLL-U: ``label_field`` is ``upos`` or ``xpos``.

    Comment lines (``#``), multi-word token ranges (``3-4``) and empty nodes (``8.1``) are
    skipped: the syntactic words are the tokens.
    """
    column = {"upos": 3, "xpos": 4}.get(label_field)
    if column is None:
        raise ValueError(f"label_field must be 'upos' or 'xpos', not {label_field!r}")
    path = Path(path)
    stats = ReadStats()

    def parse(number: int, line: str):
        if line.startswith("#"):
            return None
        fields = line.split("\t")
        if len(fields) != 10:
            raise DataError(path, f"expected 10 tab-separated CoNLL-U fields, found {len(fields)}", number)
        if "-" in fields[0] or "." in fields[0]:
            return None
        if not fields[0].isdigit():
            raise DataError(path, f"bad token id {fields[0]!r}", number)
        label = fields[column]
        if label in ("", "_"):
            raise DataError(path, f"missing {label_field.upper()} label", number)
        return fields[1], label

    return _sentences(path, _read_lines_keep_blank(path, encoding, encoding, stats), parse, lowercase), stats
