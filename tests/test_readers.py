"""Readers: FDU files with their encoding quirks, TSV/CSV/JSONL tables, and task loading; every bad
line is reported with its file and line number."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from polytask.config import DevSplitConfig, TaskConfig
from polytask.data.readers import DataError, read_fdu, read_table
from polytask.tasks import load_task


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ----------------------------------------------------------------------------- FDU


def test_fdu_reads_labels_tokens_and_line_numbers(tmp_path):
    path = write(tmp_path / "x.train", b"1\tA Good film\n0\tbad ,  plot\n")
    examples, stats = read_fdu(path)
    assert [ex.label for ex in examples] == ["1", "0"]
    assert [ex.tokens for ex in examples] == [["a", "good", "film"], ["bad", ",", "plot"]]
    assert [ex.line for ex in examples] == [1, 2]
    assert stats.lines == 2 and stats.fallback_lines == 0


def test_fdu_cp1252_byte_uses_the_fallback_and_is_counted(tmp_path):
    # 0x92 is a right single quote in cp1252 and invalid as UTF-8
    path = write(tmp_path / "mr.train", b"1\tit\x92s good\n0\tplain bad\n1\tcaf\xc3\xa9 good\n")
    examples, stats = read_fdu(path)
    assert len(examples) == 3
    assert examples[0].tokens == ["it\u2019s", "good"]
    assert examples[2].tokens == ["caf\u00e9", "good"]  # valid UTF-8 stays UTF-8
    assert stats.fallback_lines == 1
    assert stats.replaced_chars == 0


def test_fdu_bytes_undefined_in_the_fallback_are_replaced_and_counted(tmp_path):
    # 0x81 is undefined in cp1252: it becomes U+FFFD
    path = write(tmp_path / "x.train", b"1\tgood \x81 film\n")
    examples, stats = read_fdu(path)
    assert stats.fallback_lines == 1 and stats.replaced_chars == 1
    assert "\ufffd" in examples[0].tokens


def test_fdu_next_line_character_does_not_split_a_line(tmp_path):
    # U+0085 (NEL) is a line break for str.splitlines; the reader must split on b"\n" only
    path = write(tmp_path / "imdb.train", "1\tgood film\u0085 really\n0\tbad one\n".encode("utf-8"))
    examples, stats = read_fdu(path)
    assert len(examples) == 2
    assert [ex.label for ex in examples] == ["1", "0"]
    assert [ex.line for ex in examples] == [1, 2]
    assert "good" in examples[0].tokens and "really" in examples[0].tokens
    assert stats.fallback_lines == 0


def test_fdu_crlf_line_endings(tmp_path):
    path = write(tmp_path / "x.train", b"1\tgood film\r\n0\tbad film\r\n")
    examples, _ = read_fdu(path)
    assert [ex.label for ex in examples] == ["1", "0"]
    assert examples[1].tokens == ["bad", "film"]
    assert all("\r" not in tok for ex in examples for tok in ex.tokens)


def test_fdu_blank_lines_are_skipped_and_line_numbers_kept(tmp_path):
    path = write(tmp_path / "x.train", b"1\tgood\n\n   \n0\tbad\n\r\n")
    examples, stats = read_fdu(path)
    assert [ex.line for ex in examples] == [1, 4]
    assert stats.skipped_blank == 3
    assert stats.lines == 2


def test_fdu_last_line_without_newline(tmp_path):
    path = write(tmp_path / "x.train", b"1\tgood\n0\tbad")
    examples, _ = read_fdu(path)
    assert [ex.label for ex in examples] == ["1", "0"]


def test_fdu_empty_text_is_kept_and_counted(tmp_path):
    path = write(tmp_path / "x.train", b"1\tgood\n0\t \n")
    examples, stats = read_fdu(path)
    assert len(examples) == 2 and examples[1].tokens == []
    assert stats.empty_texts == 1


def test_fdu_line_without_label_names_file_and_line(tmp_path):
    path = write(tmp_path / "x.train", b"1\tgood film\n0\tbad\nno tab on this line\n")
    with pytest.raises(DataError) as info:
        read_fdu(path)
    assert f"{path}:3" in str(info.value)
    assert "label" in str(info.value)
    assert info.value.line == 3 and info.value.path == str(path)


def test_fdu_empty_label_names_file_and_line(tmp_path):
    path = write(tmp_path / "x.train", b"1\tgood\n \tbad\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:2: empty label")):
        read_fdu(path)


def test_fdu_unlabeled_lines_keep_their_text(tmp_path):
    path = write(tmp_path / "x.unlabel", b"just\ttext here\nmore text\n")
    examples, _ = read_fdu(path, labeled=False)
    assert [ex.label for ex in examples] == [None, None]
    assert examples[0].tokens == ["just", "text", "here"]


@pytest.mark.parametrize("content", [b"", b"\n\n", b"  \r\n"])
def test_fdu_empty_file_is_an_error(tmp_path, content):
    path = write(tmp_path / "empty.train", content)
    with pytest.raises(DataError, match="empty"):
        read_fdu(path)


def test_fdu_missing_file_is_an_error(tmp_path):
    path = tmp_path / "missing.train"
    with pytest.raises(DataError) as info:
        read_fdu(path)
    assert str(path) in str(info.value) and "not found" in str(info.value)


def test_regex_tokenizer_splits_punctuation(tmp_path):
    path = write(tmp_path / "x.train", b"1\tIt's GOOD, really!\n")
    examples, _ = read_fdu(path, tokenizer="regex", lowercase=False)
    assert examples[0].tokens == ["It's", "GOOD", ",", "really", "!"]


# ----------------------------------------------------------------------------- tables


def test_tsv_named_columns(tmp_path):
    path = write(tmp_path / "p.tsv", b"label\tsentence1\tsentence2\nyes\tA cat\tA pet\r\nno\tDog\tNo dog\n")
    examples, _ = read_table(path, fmt="tsv", text_column="sentence1", text_b_column="sentence2",
                             label_column="label", tokenizer="whitespace")
    assert [ex.label for ex in examples] == ["yes", "no"]
    assert examples[0].tokens == ["a", "cat"] and examples[0].tokens_b == ["a", "pet"]
    assert [ex.line for ex in examples] == [2, 3]


def test_tsv_does_not_interpret_quotes(tmp_path):
    path = write(tmp_path / "x.tsv", b'text\tlabel\n"quoted\tpos\n')
    examples, _ = read_table(path, fmt="tsv", text_column="text", label_column="label",
                             tokenizer="whitespace")
    assert examples[0].tokens == ['"quoted'] and examples[0].label == "pos"


def test_headerless_tsv_columns_are_named_by_index(tmp_path):
    path = write(tmp_path / "x.tsv", b"pos\tnice one\nneg\tawful\n")
    examples, _ = read_table(path, fmt="tsv", text_column="1", label_column="0", header=False,
                             tokenizer="whitespace")
    assert [(ex.label, ex.tokens) for ex in examples] == [("pos", ["nice", "one"]), ("neg", ["awful"])]


def test_csv_named_columns_and_quoted_commas(tmp_path):
    path = write(tmp_path / "x.csv", b'\xef\xbb\xbftext,label\n"good, very good",1\nbad,0\n')
    examples, _ = read_table(path, fmt="csv", text_column="text", label_column="label")
    assert examples[0].tokens == ["good", ",", "very", "good"]  # BOM stripped from the header
    assert [ex.label for ex in examples] == ["1", "0"]


def test_jsonl_named_fields(tmp_path):
    path = write(tmp_path / "x.jsonl",
                 b'{"premise": "A man", "hypothesis": "A person", "gold": "entail"}\n'
                 b'\n{"premise": "Rain", "hypothesis": "Sun", "gold": 0}\n')
    examples, _ = read_table(path, fmt="jsonl", text_column="premise", text_b_column="hypothesis",
                             label_column="gold")
    assert [ex.label for ex in examples] == ["entail", "0"]
    assert examples[1].tokens == ["rain"] and examples[1].tokens_b == ["sun"]
    assert [ex.line for ex in examples] == [1, 3]


@pytest.mark.parametrize("fmt, content, line", [
    ("tsv", b"text\tlabel\ngood\t1\nbad\t0\textra\n", 3),
    ("tsv", b"text\tlabel\ngood\t1\nno label column\n", 3),
    ("csv", b"text,label\ngood,1\n\nbad,0,more\n", 4),
])
def test_wrong_column_count_names_file_and_line(tmp_path, fmt, content, line):
    path = write(tmp_path / f"x.{fmt}", content)
    with pytest.raises(DataError) as info:
        read_table(path, fmt=fmt, text_column="text", label_column="label")
    assert f"{path}:{line}" in str(info.value)
    assert "columns" in str(info.value)


def test_json_error_names_file_and_line(tmp_path):
    path = write(tmp_path / "x.jsonl", b'{"text": "good", "label": "1"}\n{"text": "bad", "label": \n')
    with pytest.raises(DataError) as info:
        read_table(path, fmt="jsonl", text_column="text", label_column="label")
    assert f"{path}:2" in str(info.value) and "JSON" in str(info.value)


def test_json_line_that_is_not_an_object(tmp_path):
    path = write(tmp_path / "x.jsonl", b'{"text": "good", "label": "1"}\n["bad", "0"]\n')
    with pytest.raises(DataError, match=re.escape(f"{path}:2: each JSON line must be an object")):
        read_table(path, fmt="jsonl", text_column="text", label_column="label")


def test_missing_column_names_file_line_and_column(tmp_path):
    path = write(tmp_path / "x.jsonl", b'{"text": "good", "label": "1"}\n{"txt": "bad", "label": "0"}\n')
    with pytest.raises(DataError) as info:
        read_table(path, fmt="jsonl", text_column="text", label_column="label")
    assert f"{path}:2" in str(info.value) and "'text'" in str(info.value)


def test_missing_label_in_a_table(tmp_path):
    path = write(tmp_path / "x.tsv", b"text\tlabel\ngood\t1\nbad\t \n")
    with pytest.raises(DataError, match=re.escape(f"{path}:3: missing label")):
        read_table(path, fmt="tsv", text_column="text", label_column="label")


# ----------------------------------------------------------------------------- tasks


def fdu_task(tmp_path, train: bytes, test: bytes | None = None, **kwargs) -> TaskConfig:
    write(tmp_path / "t.train", train)
    if test is not None:
        write(tmp_path / "t.test", test)
    return TaskConfig(name="t", train="t.train", test="t.test" if test is not None else None,
                      **kwargs)


TRAIN = b"".join(b"%d\tline %d\n" % (i % 2, i) for i in range(1, 13))   # lines 1..12


def test_tail_dev_split_takes_the_last_lines(tmp_path):
    cfg = fdu_task(tmp_path, TRAIN, dev_split=DevSplitConfig("tail", 4))
    task = load_task(cfg, tmp_path)
    assert [ex.line for ex in task.train] == list(range(1, 9))
    assert [ex.line for ex in task.dev] == [9, 10, 11, 12]
    assert task.labels == ["0", "1"] and task.test == []


def test_random_dev_split_is_seeded_and_disjoint(tmp_path):
    cfg = fdu_task(tmp_path, TRAIN, dev_split=DevSplitConfig("random", 4))
    first, again = load_task(cfg, tmp_path, seed=3), load_task(cfg, tmp_path, seed=3)
    dev_lines = [ex.line for ex in first.dev]
    assert dev_lines == [ex.line for ex in again.dev]
    assert len(dev_lines) == 4
    assert sorted(dev_lines + [ex.line for ex in first.train]) == list(range(1, 13))


def test_dev_split_larger_than_train_is_an_error(tmp_path):
    cfg = fdu_task(tmp_path, TRAIN, dev_split=DevSplitConfig("tail", 12))
    with pytest.raises(DataError, match="leaves no training data"):
        load_task(cfg, tmp_path)


def test_unknown_label_in_test_file_names_file_and_line(tmp_path):
    cfg = fdu_task(tmp_path, TRAIN, test=b"1\tfine\n0\tfine too\n\n2\tthird class\n",
                   dev_split=DevSplitConfig("tail", 2), labels=["0", "1"])
    with pytest.raises(DataError) as info:
        load_task(cfg, tmp_path)
    msg = str(info.value)
    assert f"{tmp_path / 't.test'}:4" in msg
    assert "unknown label '2'" in msg


def test_unknown_label_in_the_dev_tail_names_the_train_file_and_line(tmp_path):
    cfg = fdu_task(tmp_path, TRAIN + b"pos\tline 13\n", dev_split=DevSplitConfig("tail", 3),
                   labels=["0", "1"])
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 't.train'}:13: unknown label 'pos'")):
        load_task(cfg, tmp_path)


def test_labels_from_train_when_not_fixed(tmp_path):
    cfg = fdu_task(tmp_path, TRAIN, test=b"1\tx\n7\ty\n", dev_split=DevSplitConfig("none"))
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 't.test'}:2: unknown label '7'")):
        load_task(cfg, tmp_path)


def test_a_single_label_is_an_error(tmp_path):
    cfg = fdu_task(tmp_path, b"1\ta\n1\tb\n1\tc\n", dev_split=DevSplitConfig("none"))
    with pytest.raises(DataError, match="at least two labels"):
        load_task(cfg, tmp_path)


def test_missing_test_file_is_an_error(tmp_path):
    cfg = fdu_task(tmp_path, TRAIN, dev_split=DevSplitConfig("tail", 2))
    cfg.test = "nope.test"
    with pytest.raises(DataError) as info:
        load_task(cfg, tmp_path)
    assert str(tmp_path / "nope.test") in str(info.value)


def test_pair_task_from_tsv(tmp_path):
    write(tmp_path / "p.tsv", b"s1\ts2\tlab\n" + b"".join(b"a %d\tb %d\t%s\n" % (i, i, b"yn"[i % 2:i % 2 + 1])
                                                         for i in range(8)))
    cfg = TaskConfig(name="p", type="pair_classification", format="tsv", train="p.tsv",
                     text_column="s1", text_b_column="s2", label_column="lab",
                     dev_split=DevSplitConfig("tail", 2))
    task = load_task(cfg, tmp_path)
    assert task.pair and task.labels == ["n", "y"]
    assert len(task.train) == 6 and len(task.dev) == 2
    assert task.train[0].tokens_b == ["b", "0"]
