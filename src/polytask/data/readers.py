"""Readers: files in, :class:`Example` lists out, bad lines reported with file and line.

FDU-MTL files are ``label<TAB>text`` and not uniformly UTF-8 (MR is cp1252, one dvd line is
broken, imdb holds U+0085 characters that ``str.splitlines`` would split on). They are read as
bytes, split on ``b"\\n"`` only, and each line is decoded as UTF-8 with a fallback encoding;
the number of lines that needed the fallback and of replaced characters is counted.
"""
from __future__ import annotations

import codecs
import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..errors import PolytaskError, PolytaskWarning


class RowSource(str):
    """Where examples that are numbered as rows come from (a split of a Hugging Face dataset:
    ``"data/rte (split 'train')"``): a :class:`DataError` there names ``row N``, not ``:N``."""


class DataError(PolytaskError, ValueError):
    """A problem in a data file; the message names the file and, where there is one, the line
    (the row, for a :class:`RowSource`)."""

    def __init__(self, path: str | Path, message: str, line: Optional[int] = None):
        if line is None:
            where = str(path)
        else:
            where = f"{path}, row {line}" if isinstance(path, RowSource) else f"{path}:{line}"
        super().__init__(f"{where}: {message}")
        self.path, self.line = str(path), line


class DataWarning(PolytaskWarning):
    """Data that was read but looks wrong (a label seen once, say); the message names the file."""


@dataclass
class Example:
    """One example. ``tokens_b`` is the second text of a sentence pair; ``label`` None if unlabelled."""

    tokens: list[str]
    label: Optional[str] = None
    tokens_b: Optional[list[str]] = None
    line: int = 0
    tags: Optional[list[str]] = None  # one label per token, for tagging tasks
    answer: Optional[list[str]] = None   # qa: the answer's tokens (context = tokens, question = tokens_b)
    answers_text: Optional[list[str]] = None  # qa: every gold answer, as text, for EM / F1
    text: Optional[str] = None        # the text as the file gives it (case kept): what a pretrained
    text_b: Optional[str] = None      # tokenizer reads; ``text_b`` the second text of a pair
    words: Optional[list[str]] = None  # tagging: the words as the file gives them (case kept)
    pair_b: Optional[list[str]] = None   # qa cast from a pair: the second text's tokens (the question's {b})


@dataclass
class ReadStats:
    """What a reader had to repair: lines decoded with the fallback, characters replaced."""

    lines: int = 0
    fallback_lines: int = 0
    replaced_chars: int = 0
    skipped_blank: int = 0
    empty_texts: int = 0
    extra: dict = field(default_factory=dict)


_REGEX_TOKEN = re.compile(r"\w+(?:'\w+)?|[^\w\s]", re.UNICODE)
# close to the Stanford/PTB tokenisation of FDU-MTL's labelled text: "doesn't" -> "does n't"
_PTB_TOKEN = re.compile(r"\w+(?=n't\b)|n't\b|'\w+|\w+|[^\w\s]", re.UNICODE)


def tokenize(text: str, how: str = "whitespace", lowercase: bool = True) -> list[str]:
    """Split ``text`` into tokens: ``whitespace`` (pre-tokenised data), ``regex`` (words and
    punctuation) or ``ptb`` (also splits clitics: "does n't", "it 's")."""
    if lowercase:
        text = text.lower()
    if how == "whitespace":
        return text.split()
    if how == "ptb":
        return _PTB_TOKEN.findall(text)
    return _REGEX_TOKEN.findall(text)


def _decode(raw: bytes, encoding: str, fallback: str, stats: ReadStats) -> str:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError:
        stats.fallback_lines += 1
        text = raw.decode(fallback, errors="replace")
        stats.replaced_chars += text.count("\ufffd")
        return text


_WIDE_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
              (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))


def read_text_bytes(path: Path, encoding: str = "utf-8") -> bytes:
    """The bytes of a text file, as UTF-8 when ``encoding`` is a UTF-16/32 codec, without a UTF-8
    byte-order mark. A UTF-16/32 file read as anything else, or a file with NUL bytes (binary
    data), is refused: a NUL never occurs in UTF-8 text, and every other byte of UTF-16 English
    text is one."""
    if not path.is_file():
        raise DataError(path, "file not found")
    data = path.read_bytes()
    wide = codecs.lookup(encoding).name.startswith(("utf-16", "utf-32"))
    if wide:
        try:
            return data.decode(encoding).encode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(path, f"not {encoding} text (byte {exc.start}: {exc.reason})") from None
    convert = (f"convert it to UTF-8 (iconv -f {{0}} -t UTF-8 {path.name} > {path.name}.utf8) or give the task "
               f"encoding: {{1}}")
    for bom, name in _WIDE_BOMS:
        if data.startswith(bom):
            raise DataError(path, f"file is {name} (it starts with a {name} byte-order mark), not {encoding}; "
                            + convert.format(name, name.lower()))
    nul = data.find(b"\0")
    if nul >= 0:
        head = data[:4096]
        if head.count(b"\0") * 3 >= len(head) and (head[0::2].count(0) == 0 or head[1::2].count(0) == 0):
            raise DataError(path, f"file is UTF-16 (every other byte is NUL), not {encoding}; "
                            + convert.format("UTF-16LE" if head[1::2].count(0) else "UTF-16BE",
                                             "utf-16-le" if head[1::2].count(0) else "utf-16-be"))
        raise DataError(path, "a NUL byte: binary data, not text", data.count(b"\n", 0, nul) + 1)
    return data[len(codecs.BOM_UTF8):] if data.startswith(codecs.BOM_UTF8) else data


def _read_lines_keep_blank(path: Path, encoding: str, fallback: str,
                           stats: ReadStats) -> list[tuple[int, str]]:
    """Every line (blank ones too, as ""), numbered from 1; split on ``\n`` only."""
    data = read_text_bytes(path, encoding)
    if codecs.lookup(encoding).name.startswith(("utf-16", "utf-32")):
        encoding = "utf-8"
    if not data.strip():
        raise DataError(path, "file is empty")
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = []
    for number, raw in enumerate(lines, start=1):
        raw = raw[:-1] if raw.endswith(b"\r") else raw
        out.append((number, _decode(raw, encoding, fallback, stats) if raw.strip() else ""))
    stats.lines = len(out)
    return out


def _read_lines(path: Path, encoding: str, fallback: str, stats: ReadStats) -> list[tuple[int, str]]:
    """Non-blank lines, numbered as in the file; blank ones are counted in ``stats.skipped_blank``."""
    out = []
    for number, line in _read_lines_keep_blank(path, encoding, fallback, stats):
        if not line.strip():
            stats.skipped_blank += 1
            continue
        out.append((number, line))
    stats.lines = len(out)
    return out


def read_fdu(path: str | Path, *, labeled: bool = True, tokenizer: str = "whitespace",
             lowercase: bool = True, encoding: str = "utf-8", fallback_encoding: str = "cp1252",
             ) -> tuple[list[Example], ReadStats]:
    """Read an FDU-MTL file: ``label<TAB>text`` lines, or bare text lines when ``labeled`` is False."""
    path = Path(path)
    stats = ReadStats()
    examples = []
    for number, line in _read_lines(path, encoding, fallback_encoding, stats):
        if labeled:
            label, sep, text = line.partition("\t")
            if not sep:
                raise DataError(path, "no label column (expected 'label<TAB>text')", number)
            if "\t" in text:
                raise DataError(path, f"{line.count(chr(9)) + 1} tab-separated fields, expected 2 ('label<TAB>text'); "
                                "a tab inside the text?", number)
            label = label.strip()
            if not label:
                raise DataError(path, "empty label", number)
        else:
            label, text = None, line
        tokens = tokenize(text, tokenizer, lowercase)
        if not tokens:  # kept (FDU-MTL has one such line) so line-based splits stay as published
            stats.empty_texts += 1
        examples.append(Example(tokens=tokens, label=label, line=number, text=text))
    return examples, stats


def _rows(path: Path, fmt: str, header: bool, encoding: str, fallback: str, stats: ReadStats):
    """Yield ``(line_number, mapping)`` for tsv/csv/jsonl; headerless columns are named '0', '1', ..."""
    lines = _read_lines(path, encoding, fallback, stats)
    if fmt == "jsonl":
        for number, line in lines:
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(path, f"not valid JSON ({exc.msg})", number) from None
            if not isinstance(row, dict):
                raise DataError(path, "each JSON line must be an object", number)
            yield number, row
        return
    delimiter = "\t" if fmt == "tsv" else ","
    quoting = csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL
    names = None
    for number, line in lines:
        try:
            fields = next(csv.reader([line], delimiter=delimiter, quoting=quoting))
        except csv.Error as exc:
            problem = ("a carriage return inside the line (binary data, or a quoted field over several lines, "
                       "which polytask does not read)") if "\r" in line else str(exc)
            raise DataError(path, f"not a valid {fmt.upper()} line: {problem}", number) from None
        if names is None:
            if header:
                names = [f.strip().lstrip("\ufeff") for f in fields]
                continue
            names = [str(i) for i in range(len(fields))]
        if len(fields) != len(names):
            raise DataError(path, f"expected {len(names)} columns, found {len(fields)}", number)
        yield number, dict(zip(names, fields))


def read_table(path: str | Path, *, fmt: str, text_column: str | int, label_column: Optional[str | int],
               text_b_column: Optional[str | int] = None, header: bool = True, tokenizer: str = "regex",
               lowercase: bool = True, encoding: str = "utf-8", fallback_encoding: str = "cp1252",
               ) -> tuple[list[Example], ReadStats]:
    """Read TSV/CSV/JSONL. A column is named (the header's names; ``"0"``, ``"1"``, ... in a file
    without a header) or numbered from 0 (tsv/csv; negative numbers count from the end)."""
    path = Path(path)
    stats = ReadStats()
    examples = []
    for number, row in _rows(path, fmt, header, encoding, fallback_encoding, stats):
        def column(name: str | int) -> str:
            if isinstance(name, int):
                if fmt == "jsonl":
                    raise DataError(path, f"column {name}: JSON lines name their fields; give the field's "
                                    "name, not a number", number)
                values = list(row.values())
                if not -len(values) <= name < len(values):
                    raise DataError(path, f"no column number {name} (the line has {len(values)} columns, "
                                    "numbered from 0)", number)
                value = values[name]
            else:
                if name not in row:
                    raise DataError(path, f"no column {name!r} (columns: {', '.join(map(str, row))})", number)
                value = row[name]
            return "" if value is None else str(value)

        text = column(text_column)
        tokens = tokenize(text, tokenizer, lowercase)
        tokens_b = text_b = None
        if text_b_column is not None:
            text_b = column(text_b_column)
            tokens_b = tokenize(text_b, tokenizer, lowercase)
        if text_b_column is not None:
            for which, name, value in (("first", text_column, text), ("second", text_b_column, text_b)):
                if not value.strip():
                    raise DataError(path, f"the {which} text of the pair (column {name!r}) is empty", number)
        elif not tokens:
            stats.empty_texts += 1
        label = None
        if label_column is not None:
            label = column(label_column).strip()
            if not label:
                raise DataError(path, f"missing label in column {label_column!r}", number)
        examples.append(Example(tokens=tokens, label=label, tokens_b=tokens_b, line=number, text=text, text_b=text_b))
    return examples, stats
