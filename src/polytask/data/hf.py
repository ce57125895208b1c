"""The ``hf`` format: Hugging Face ``datasets`` as a reader.

A task's path is either a directory written by ``save_to_disk`` (a ``DatasetDict`` of named splits,
or one ``Dataset``) or a local data file read by ``load_dataset("csv" | "json" | "parquet",
data_files=...)`` (``.csv``, ``.tsv``, ``.json``, ``.jsonl``, ``.parquet``). The task's ``split``
mapping says which split of a ``DatasetDict`` plays which role (``train``, ``dev``, ``test``,
``unlabeled``); a single dataset has no splits to name. Nothing is ever fetched: only local paths
are read, with ``HF_DATASETS_OFFLINE`` set.

Columns are named as the dataset names them (or numbered from 0 in its column order). A
``ClassLabel`` column gives its class names as the labels; other label columns give their values
as text (``1``, ``entailment``). Tagging reads a column of word lists and a column of tag lists
(``ClassLabel`` names, or strings). Texts keep their case in ``Example.text``/``words`` for a
pretrained tokenizer, as the other readers do. Rows are numbered as ``dataset[i]`` takes them
(from 0): an error names the dataset's path, the split and the row.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Optional, Union

from .readers import DataError, Example, ReadStats, RowSource, tokenize

EXTRA = "pip install 'polytask[hf]'"
DATA_FILE_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
ROLES = ("train", "dev", "test", "unlabeled")
# the split a role reads from a DatasetDict when the task's ``split`` mapping does not name one
DEFAULT_SPLITS = {"train": "train", "dev": "validation", "test": "test", "unlabeled": "train"}

Column = Union[str, int]


def _datasets(path: Path):
    """The ``datasets`` module, offline; a missing package is an error naming the extra."""
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["HF_UPDATE_DOWNLOAD_COUNTS"] = "0"   # load_dataset("csv") would otherwise ping a bucket
    try:
        import datasets
    except ImportError:
        raise DataError(path, f"format: hf reads Hugging Face datasets, which needs the datasets package: {EXTRA}") \
            from None
    # in case it was imported before the variables were set (the test checks no connection is opened)
    datasets.config.HF_HUB_OFFLINE = datasets.config.HF_DATASETS_OFFLINE = True
    datasets.config.HF_UPDATE_DOWNLOAD_COUNTS = False
    datasets.disable_progress_bars()
    return datasets


def open_split(path: str | Path, role: str = "train", split: Optional[str] = None):
    """``(dataset, where)``: the split of ``path`` that plays ``role`` and its location for errors.

    ``split`` is the split's name in a ``DatasetDict`` (default :data:`DEFAULT_SPLITS`); a single
    ``Dataset`` or a data file is one split, so naming another is an error.
    """
    path = Path(path)
    datasets = _datasets(path)
    if not path.exists():
        raise DataError(path, "not found (format: hf reads a directory saved with save_to_disk or a local data file: "
                        f"{', '.join(DATA_FILE_BUILDERS)})")
    if path.is_dir():
        if not any((path / name).is_file() for name in ("dataset_dict.json", "state.json")):
            raise DataError(path, "not a dataset saved with save_to_disk (no dataset_dict.json or state.json); "
                            f"give its directory, or a data file ({', '.join(DATA_FILE_BUILDERS)})")
        try:
            loaded = datasets.load_from_disk(str(path))
        except Exception as exc:   # noqa: BLE001  (the library raises many types for a damaged directory)
            raise DataError(path, f"cannot be read as a saved dataset ({type(exc).__name__}: {exc})") from None
    else:
        builder = DATA_FILE_BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise DataError(path, f"format: hf reads data files ending in {', '.join(DATA_FILE_BUILDERS)} "
                            "or a directory saved with save_to_disk")
        options = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
        try:
            loaded = datasets.load_dataset(builder, data_files=str(path.resolve()), split="train", **options)
        except Exception as exc:   # noqa: BLE001
            raise DataError(path, f"cannot be read as {builder} ({type(exc).__name__}: {exc})") from None
    if isinstance(loaded, datasets.DatasetDict):
        name = split if split is not None else DEFAULT_SPLITS[role]
        if name not in loaded:
            raise DataError(path, f"no split {name!r} for the task's {role} split (splits: {', '.join(loaded)}); "
                            f"say which in the task's split: mapping (split: {{{role}: NAME}})")
        return loaded[name], RowSource(f"{path} (split {name!r})")
    if split is not None and split != "train":
        raise DataError(path, f"split.{role}: {split!r} names a split, but this is one dataset without named splits "
                        f"(a Dataset saved with save_to_disk, or a data file); leave split.{role} out")
    return loaded, RowSource(str(path))


def _column_name(dataset, column: Column, where: RowSource, key: str) -> str:
    names = list(dataset.column_names)
    if isinstance(column, int):
        if not -len(names) <= column < len(names):
            raise DataError(where, f"{key}: no column number {column} (the dataset has {len(names)} columns: "
                            f"{', '.join(names)})")
        return names[column]
    if column not in names:
        raise DataError(where, f"{key}: no column {column!r} (columns: {', '.join(names)})")
    return column


def _class_names(feature) -> Optional[list[str]]:
    """The names of a ClassLabel feature (or of a sequence of them), else None."""
    inner = getattr(feature, "feature", None)          # Sequence(ClassLabel)
    if inner is None and isinstance(feature, list) and feature:   # [ClassLabel] (datasets' List shorthand)
        inner = feature[0]
    target = inner if inner is not None else feature
    names = getattr(target, "names", None)
    return list(names) if names is not None and type(target).__name__ == "ClassLabel" else None


def _label_text(value, names: Optional[list[str]], where: RowSource, row: int, column: str) -> Optional[str]:
    """A label as text: a ClassLabel's name, else the value itself; None for a missing label
    (None, or ClassLabel's -1, as GLUE's unlabelled test splits hold)."""
    if value is None:
        return None
    if names is not None:
        if not isinstance(value, int) or value < -1 or value >= len(names):
            raise DataError(where, f"label {value!r} in column {column!r} is not a class of its ClassLabel "
                            f"({len(names)} names)", row)
        return None if value == -1 else names[value]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def _text(value, where: RowSource, row: int, column: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataError(where, f"column {column!r} holds {type(value).__name__} values, not text", row)
    return value


def read_hf(path: str | Path, *, role: str = "train", split: Optional[str] = None, text_column: Column = "text",
            label_column: Optional[Column] = "label", text_b_column: Optional[Column] = None,
            numeric: bool = False, tokenizer: str = "regex", lowercase: bool = True) -> tuple[list[Example], ReadStats]:
    """Sentence (or sentence-pair) examples of one split; ``label_column`` None reads no labels;
    ``numeric`` requires each label to be a finite number (regression). A pair whose texts are
    not both there is an error naming the row."""
    dataset, where = open_split(path, role, split)
    text_col = _column_name(dataset, text_column, where, "text_column")
    b_col = _column_name(dataset, text_b_column, where, "text_b_column") if text_b_column is not None else None
    label_col = _column_name(dataset, label_column, where, "label_column") if label_column is not None else None
    names = _class_names(dataset.features[label_col]) if label_col is not None and not numeric else None
    columns = dataset.select_columns([c for c in dict.fromkeys((text_col, b_col, label_col)) if c]).to_dict()
    stats = ReadStats(lines=len(dataset), extra={"source": where})
    examples = []
    for row in range(len(dataset)):
        text = _text(columns[text_col][row], where, row, text_col)
        tokens = tokenize(text, tokenizer, lowercase)
        text_b = tokens_b = None
        if b_col is not None:
            text_b = _text(columns[b_col][row], where, row, b_col)
            tokens_b = tokenize(text_b, tokenizer, lowercase)
            for which, column, value in (("first", text_col, text), ("second", b_col, text_b)):
                if not value.strip():
                    raise DataError(where, f"the {which} text of the pair (column {column!r}) is empty", row)
        elif not tokens:
            stats.empty_texts += 1
        label = None
        if label_col is not None:
            value = columns[label_col][row]
            if numeric:
                label = _number(value, where, row, label_col)
            else:
                label = _label_text(value, names, where, row, label_col)
                if label is None:
                    raise DataError(where, f"no label in column {label_col!r}"
                                    + (" (-1: ClassLabel's mark of an unlabelled row)" if value == -1 else ""), row)
        examples.append(Example(tokens=tokens, label=label, tokens_b=tokens_b, line=row, text=text, text_b=text_b))
    if not examples:
        raise DataError(where, "no rows")
    return examples, stats


def _number(value, where: RowSource, row: int, column: str) -> str:
    try:
        number = float(value) if not isinstance(value, bool) and value is not None else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise DataError(where, f"target {value!r} in column {column!r} is not a finite number (a regression task)", row)
    return repr(number) if not isinstance(value, str) else value.strip()


def read_hf_tagging(path: str | Path, *, role: str = "train", split: Optional[str] = None,
                    token_column: Column = "tokens", tag_column: Optional[Column] = "tags",
                    lowercase: bool = False) -> tuple[list[Example], ReadStats]:
    """Tagged sentences of one split: a column of word lists and one of tag lists (the same
    length), tags as ClassLabel names or strings; ``tag_column`` None reads words only."""
    dataset, where = open_split(path, role, split)
    word_col = _column_name(dataset, token_column, where, "token_column")
    tag_col = _column_name(dataset, tag_column, where, "tag_column") if tag_column is not None else None
    names = _class_names(dataset.features[tag_col]) if tag_col is not None else None
    columns = dataset.select_columns([c for c in (word_col, tag_col) if c]).to_dict()
    stats = ReadStats(lines=len(dataset), extra={"source": where})
    examples = []
    for row in range(len(dataset)):
        words = columns[word_col][row]
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise DataError(where, f"column {word_col!r} must hold lists of words", row)
        if not words:
            raise DataError(where, f"an empty sentence (column {word_col!r})", row)
        tags = None
        if tag_col is not None:
            given = columns[tag_col][row]
            if not isinstance(given, list) or len(given) != len(words):
                raise DataError(where, f"{len(words)} words in column {word_col!r} but "
                                f"{len(given) if isinstance(given, list) else 'no list of'} tags in column {tag_col!r}",
                                row)
            tags = []
            for value in given:
                tag = _label_text(value, names, where, row, tag_col)
                if tag is None:
                    raise DataError(where, f"a missing tag in column {tag_col!r}", row)
                tags.append(tag)
        tokens = [w.lower() for w in words] if lowercase else list(words)
        examples.append(Example(tokens=tokens, tags=tags, line=row, words=list(words)))
    if not examples:
        raise DataError(where, "no rows")
    return examples, stats
