"""Clear errors at the edges (issue 23, item 6): a UTF-16 or binary file, a malformed CSV/TSV line,
a line with more fields than its format has, a label typo when no ``labels:`` is given. Through
the readers and through ``polytask.cli.main``: one line, ``polytask: error: FILE:LINE: ...``, no
traceback unless ``--debug``."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from polytask.cli import main
from polytask.config import TaskConfig
from polytask.data.conll import read_conll, read_conllu
from polytask.data.qa import read_squad
from polytask.data.readers import DataError, DataWarning, read_fdu, read_table
from polytask.tasks import load_task

from conftest import write_yaml

FDU = "1\tgood film\n0\tbad plot\n"
TSV = "text\tlabel\ngood film\t1\nbad plot\t0\n"
CONLL = "The DT\ndog NN\n\nA DT\n"
CONLLU = "1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_\n\n"
SQUAD = json.dumps({"data": [{"title": "t", "paragraphs": [{"context": "a b", "qas": [
    {"id": "1", "question": "q?", "answers": [{"text": "a", "answer_start": 0}]}]}]}]})

READERS = {
    "fdu": (FDU, lambda p, **kw: read_fdu(p, **kw)),
    "tsv": (TSV, lambda p, **kw: read_table(p, fmt="tsv", text_column="text", label_column="label", **kw)),
    "csv": (TSV.replace("\t", ","), lambda p, **kw: read_table(p, fmt="csv", text_column="text",
                                                               label_column="label", **kw)),
    "jsonl": ('{"text": "good", "label": "1"}\n', lambda p, **kw: read_table(p, fmt="jsonl", text_column="text",
                                                                              label_column="label", **kw)),
    "conll": (CONLL, lambda p, **kw: read_conll(p, **kw)),
    "conllu": (CONLLU, lambda p, **kw: read_conllu(p, **kw)),
    "squad": (SQUAD, lambda p, **kw: read_squad(p)),
}


def run_cli(argv, capsys) -> tuple[int, str]:
    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr().err


# ----------------------------------------------------------------------------- encodings


@pytest.mark.parametrize("fmt", sorted(READERS))
def test_utf16_file_with_a_bom_is_refused_naming_the_file(tmp_path, fmt):
    text, read = READERS[fmt]
    path = tmp_path / f"data.{fmt}"
    path.write_bytes(text.encode("utf-16"))              # with its byte-order mark
    with pytest.raises(DataError) as info:
        read(path)
    assert str(info.value).startswith(f"{path}: file is UTF-16 (it starts with a UTF-16 byte-order mark)")
    assert "convert it to UTF-8" in str(info.value)


@pytest.mark.parametrize("fmt", sorted(READERS))
def test_utf16_file_without_a_bom_is_refused_naming_the_file(tmp_path, fmt):
    text, read = READERS[fmt]
    path = tmp_path / f"data.{fmt}"
    path.write_bytes(text.encode("utf-16-le"))
    with pytest.raises(DataError, match=r"file is UTF-16 \(every other byte is NUL\).*iconv -f UTF-16LE"):
        read(path)


def test_utf32_file_is_refused_naming_the_encoding(tmp_path):
    path = tmp_path / "x.train"
    path.write_bytes(FDU.encode("utf-32"))
    with pytest.raises(DataError, match="file is UTF-32"):
        read_fdu(path)


def test_utf16_file_reads_when_the_task_says_so(tmp_path):
    path = tmp_path / "x.train"
    path.write_bytes(FDU.encode("utf-16"))
    examples, _ = read_fdu(path, encoding="utf-16")
    assert [(ex.label, ex.tokens) for ex in examples] == [("1", ["good", "film"]), ("0", ["bad", "plot"])]


def test_utf8_byte_order_mark_is_not_part_of_the_first_label(tmp_path):
    path = tmp_path / "x.train"
    path.write_bytes(b"\xef\xbb\xbf" + FDU.encode())
    examples, _ = read_fdu(path)
    assert examples[0].label == "1"


@pytest.mark.parametrize("fmt", ["fdu", "tsv", "csv", "jsonl", "conll", "conllu"])
def test_nul_bytes_are_refused_with_file_and_line(tmp_path, fmt):
    text, read = READERS[fmt]
    path = tmp_path / f"data.{fmt}"
    path.write_bytes(text.encode() + b"\x00\x01\x02\xff\n")
    line = text.count("\n") + 1
    with pytest.raises(DataError, match=rf"^{path}:{line}: a NUL byte: binary data, not text$"):
        read(path)


def test_unknown_encoding_in_a_task_is_a_config_error(tmp_path, capsys, fdu_config):
    fdu_config["task_defaults"]["encoding"] = "utf-9"
    rc, err = run_cli(["train", write_yaml(fdu_config, tmp_path / "exp.yaml"), "--quiet"], capsys)
    assert rc == 2 and "tasks[0].encoding: unknown encoding 'utf-9'" in err


# ----------------------------------------------------------------------------- malformed lines


@pytest.mark.parametrize("fmt", ["tsv", "csv"])
def test_carriage_return_inside_a_table_line_names_file_and_line(tmp_path, fmt):
    # before: _csv.Error: new-line character seen in unquoted field (a traceback)
    text, read = READERS[fmt]
    path = tmp_path / f"data.{fmt}"
    sep = "\t" if fmt == "tsv" else ","
    path.write_bytes(text.encode() + f"bro\rken{sep}1\n".encode())
    with pytest.raises(DataError, match=rf"^{path}:4: not a valid {fmt.upper()} line: a carriage return inside"):
        read(path)


def test_fdu_line_with_an_extra_tab_is_an_error(tmp_path):
    # before: read as the text "good<TAB>film" of label 1
    path = tmp_path / "x.train"
    path.write_text("0\tbad plot\n1\tgood\tfilm\n")
    with pytest.raises(DataError, match=rf"^{path}:2: 3 tab-separated fields, expected 2 \('label<TAB>text'\)"):
        read_fdu(path)


def test_fdu_unlabelled_lines_may_hold_tabs(tmp_path):
    path = tmp_path / "x.unlabel"
    path.write_text("raw\ttext\n")
    assert read_fdu(path, labeled=False)[0][0].tokens == ["raw", "text"]


@pytest.mark.parametrize("content, message", [
    ('{"data": [{"paragraphs": [{"context": "c", "qas": [{"answers": []}]}]}]}',
     r"data\[0\]\.paragraphs\[0\]\.qas\[0\]\.question: expected a string"),
    ('{"data": [{"paragraphs": [{"context": 3}]}]}', r"data\[0\]\.paragraphs\[0\]\.context: expected a string"),
    ('{"data": [7]}', r"data\[0\]: expected a JSON object"),
    ('{"data": [{"paragraphs": [{"context": "c", "qas": [{"question": "q", "answers": [{"text": "c"}]}]}]}]}',
     r"answers\[0\]\.answer_start: expected an integer"),
])
def test_malformed_squad_file_names_the_entry(tmp_path, content, message):
    path = tmp_path / "squad.json"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        read_squad(path)


# ----------------------------------------------------------------------------- through the CLI


@pytest.fixture
def table_config(fdu_config, data_dir):
    def make(fmt: str, data: bytes) -> dict:
        (data_dir / f"t.{fmt}").write_bytes(data)
        fdu_config["tasks"][1] = {"name": "b", "format": fmt, "train": f"t.{fmt}", "test": None,
                                  "dev_split": {"policy": "tail", "size": 2}}
        return fdu_config
    return make


def assert_one_line_error(rc: int, err: str, *needles: str) -> None:
    assert rc == 2 and err.startswith("polytask: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)


def test_binary_bytes_in_a_tsv_file_give_file_and_line(tmp_path, capsys, data_dir, table_config):
    raw = table_config("tsv", (TSV * 5).encode() + b"\x8a\x00\xff\r\x01\n")
    rc, err = run_cli(["train", write_yaml(raw, tmp_path / "exp.yaml"), "--quiet"], capsys)
    assert_one_line_error(rc, err, f"{data_dir / 't.tsv'}:16: a NUL byte")


def test_carriage_return_in_a_csv_file_gives_file_and_line(tmp_path, capsys, data_dir, table_config):
    raw = table_config("csv", (TSV.replace("\t", ",") * 2).encode() + b"a\rb,1\n")
    rc, err = run_cli(["train", write_yaml(raw, tmp_path / "exp.yaml"), "--quiet"], capsys)
    assert_one_line_error(rc, err, f"{data_dir / 't.csv'}:7: not a valid CSV line: a carriage return")


def test_utf16_data_file_through_the_cli(tmp_path, capsys, fdu_config, data_dir):
    train = data_dir / "fdu" / "a.task.train"
    train.write_bytes(train.read_text().encode("utf-16"))
    rc, err = run_cli(["train", write_yaml(fdu_config, tmp_path / "exp.yaml"), "--quiet"], capsys)
    assert_one_line_error(rc, err, f"{train}: file is UTF-16", "convert it to UTF-8")


def test_fdu_line_with_an_extra_tab_through_the_cli(tmp_path, capsys, fdu_config, data_dir):
    train = data_dir / "fdu" / "a.task.train"
    lines = train.read_text().splitlines()
    lines[3] += "\textra"
    train.write_text("\n".join(lines) + "\n")
    rc, err = run_cli(["train", write_yaml(fdu_config, tmp_path / "exp.yaml"), "--quiet"], capsys)
    assert_one_line_error(rc, err, f"{train}:4: 3 tab-separated fields")


def test_debug_shows_the_traceback(tmp_path, capsys, fdu_config, data_dir):
    train = data_dir / "fdu" / "a.task.train"
    train.write_bytes(train.read_text().encode("utf-16"))
    config = write_yaml(fdu_config, tmp_path / "exp.yaml")
    for argv in (["--debug", "train", config, "--quiet"], ["train", config, "--quiet", "--debug"]):
        rc, err = run_cli(argv, capsys)
        assert rc == 2 and "Traceback (most recent call last)" in err and "read_text_bytes" in err
        assert err.rstrip().splitlines()[-1].startswith("polytask: error: ")


# ----------------------------------------------------------------------------- label typos


def _typo(data_dir: Path) -> Path:
    train = data_dir / "fdu" / "a.task.train"
    lines = train.read_text().splitlines()
    lines[3] = "l" + lines[3][1:]                     # "1\t..." -> "l\t..."
    train.write_text("\n".join(lines) + "\n")
    return train


def test_label_typo_without_labels_warns_with_the_counts(tmp_path, capsys, fdu_config, data_dir):
    # before: silence, and a third class 'l' trained
    train = _typo(data_dir)
    del fdu_config["task_defaults"]["labels"]
    fdu_config["trainer"].update(max_steps=2, eval_every=2)
    rc, err = run_cli(["train", write_yaml(fdu_config, tmp_path / "exp.yaml"), "--quiet"], capsys)
    assert rc == 0, err
    warning = [line for line in err.splitlines() if line.startswith("polytask: warning: ")]
    assert len(warning) == 1, err
    assert warning[0].startswith(f"polytask: warning: {train}: task 'a' gives no labels:")
    assert "'l' (seen once, in the example at line 4) may be a typo" in warning[0]
    assert "Labels found: '1' 25, '0' 24, 'l' 1." in warning[0]   # 50 train lines: the last 10 are dev


def test_label_typo_with_labels_given_is_an_error_not_a_warning(tmp_path, capsys, fdu_config, data_dir):
    train = _typo(data_dir)
    rc, err = run_cli(["train", write_yaml(fdu_config, tmp_path / "exp.yaml"), "--quiet"], capsys)
    assert_one_line_error(rc, err, f"{train}:4: unknown label 'l'")


def test_balanced_labels_without_labels_give_no_warning(tmp_path):
    path = tmp_path / "x.train"
    path.write_text("".join(f"{i % 3}\tsome text\n" for i in range(30)))
    task = TaskConfig(name="t", train=str(path))
    task.dev_split.policy = "none"
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        assert load_task(task, None).labels == ["0", "1", "2"]


def test_rare_tag_without_labels_warns(tmp_path):
    path = tmp_path / "x.conll"
    path.write_text("".join(f"w{i} NN\nx DT\n\n" for i in range(10)) + "y B-XX\n\n")
    task = TaskConfig(name="chunk", type="tagging", format="conll", train=str(path))
    task.dev_split.policy = "none"
    with pytest.warns(DataWarning, match=r"'B-XX' \(seen once, in the example at line 31\)"):
        load_task(task, None)


def test_a_label_seen_twice_gives_no_warning(tmp_path):
    # CoNLL-2000's rarest chunk tags (I-PRT, B-UCP) are seen twice in its train file
    path = tmp_path / "x.conll"
    path.write_text("".join(f"w{i} NN\nx DT\n\n" for i in range(10)) + "y B-XX\n\nz B-XX\n\n")
    task = TaskConfig(name="chunk", type="tagging", format="conll", train=str(path))
    task.dev_split.policy = "none"
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        load_task(task, None)
