"""Tests of ``polytask data check`` on a tiny synthetic FDU-style dataset and on the real data."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from polytask.cli import main
from polytask.config import load_config
from polytask.data_check import check_tasks, format_report

# Task "a": the last 2 train lines are dev. Duplicates by design (texts are lowercased tokens):
#   train: good film, bad film, good film (repeat), meh
#   dev:   great fun, bad film (also in train)
#   test:  good film (in train), good film (repeat), great fun (in dev), awful,
#          shared text (in b's train), Meh with label 1 (in train with label 0)
A_TRAIN = "1\tgood film\n0\tbad film\n1\tgood film\n0\tmeh\n1\tgreat fun\n0\tbad film\n"
A_TEST = "1\tGood Film\n1\tgood film\n1\tgreat fun\n0\tawful\n0\tshared text\n1\tMeh\n"
A_UNLABEL = "Some raw text .\nmore text\n\nlast one\n"
# Task "b": one over-long text (4 > max_length 3), one empty text, one cp1252 line with an
# undefined byte (0x81), which the reader replaces.
B_TRAIN = (b"0\tshared text\n1\tx y z w\n1\t\n1\tna\xefve \x81\n0\ts\n1\tt\n")
B_TEST = "0\tu\n1\tv\n"

CONFIG = {
    "seed": 1,
    "task_defaults": {"format": "fdu", "train": "toy/{name}.task.train", "test": "toy/{name}.task.test",
                      "dev_split": {"policy": "tail", "size": 2}, "labels": ["0", "1"]},
    "tasks": [{"name": "a", "unlabeled": "toy/a.task.unlabel"}, {"name": "b"}],
    "data": {"max_length": 3},
}


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    root = tmp_path / "data" / "toy"
    root.mkdir(parents=True)
    (root / "a.task.train").write_text(A_TRAIN, encoding="utf-8")
    (root / "a.task.test").write_text(A_TEST, encoding="utf-8")
    (root / "a.task.unlabel").write_text(A_UNLABEL, encoding="utf-8")
    (root / "b.task.train").write_bytes(B_TRAIN)
    (root / "b.task.test").write_text(B_TEST, encoding="utf-8")
    return tmp_path / "data"


def test_counts_balance_lengths_and_unknown_words(toy):
    report = check_tasks(load_config(raw=CONFIG), toy)
    a, b = report["tasks"]["a"], report["tasks"]["b"]
    assert a["counts"] == {"train": 4, "dev": 2, "test": 6, "unlabeled": 3}
    assert b["counts"] == {"train": 4, "dev": 2, "test": 2, "unlabeled": 0}
    assert a["label_balance"]["train"] == {"0": 2, "1": 2}
    assert a["label_balance"]["test"] == {"0": 2, "1": 4}
    assert a["lengths"]["train"] == {"mean": 1.75, "median": 2.0, "p95": 2.0, "max": 2, "over_max_length": 0}
    assert b["lengths"]["train"]["max"] == 4 and b["lengths"]["train"]["over_max_length"] == 1
    # vocabulary: good film bad meh / shared text x y z naïve U+FFFD ("w" is past max_length)
    assert report["vocab_size"] == 2 + 11
    assert a["unk_rate"] == {"dev": 0.5, "test": 0.3}  # great fun / great fun awful of 10
    assert b["unk_rate"] == {"dev": 1.0, "test": 1.0}
    assert report["total"]["unk_rate"] == {"dev": round(4 / 6, 5), "test": round(5 / 12, 5)}
    assert report["total"]["counts"] == {"train": 8, "dev": 4, "test": 8, "unlabeled": 3}


def test_read_stats(toy):
    report = check_tasks(load_config(raw=CONFIG), toy)
    b = report["tasks"]["b"]["read_stats"]["train"]
    assert (b["lines"], b["fallback_lines"], b["replaced_chars"], b["empty_texts"]) == (6, 1, 1, 1)
    a = report["tasks"]["a"]["read_stats"]
    assert set(a) == {"train", "test", "unlabeled"}
    assert a["unlabeled"]["skipped_blank"] == 1 and a["unlabeled"]["fallback_lines"] == 0
    assert "b: 1 train line(s) were not valid UTF-8" in "\n".join(report["notes"])


def test_duplicates_exact(toy):
    report = check_tasks(load_config(raw=CONFIG), toy)
    assert report["tasks"]["a"]["duplicates"] == {
        "within_train": 1, "within_test": 1, "train_dev": 1, "train_test": 2, "dev_test": 1,
        "test_in_train_dev": 3, "test_examples_in_train_dev": 4, "test_in_other_train": 1,
        "test_in_other_train_by_task": {"b": 1}, "label_conflicts": 1}
    b = report["tasks"]["b"]["duplicates"]
    assert b["within_train"] == 0  # the empty text is not a duplicate of anything
    assert b["test_in_other_train"] == 0 and b["test_in_train_dev"] == 0
    total = report["total"]["duplicates"]
    assert total["test_in_train_dev"] == 3 and total["test_in_other_train"] == 1


def test_format_report(toy):
    report = check_tasks(load_config(raw=CONFIG), toy)
    text = format_report(report)
    lines = text.splitlines()
    assert lines[0].split()[:5] == ["task", "train", "dev", "test", "unlab"]
    row_a = next(line for line in lines if line.startswith("a "))
    assert row_a.split()[:6] == ["a", "4", "2", "6", "3", "50/50"]
    assert any(line.startswith("total (2 tasks)") for line in lines)
    assert "a: 3 distinct test texts (4 of 6 test examples) also appear in train+dev" in text
    assert "other tasks' train splits (b 1)" in text
    json.dumps(report)  # serialisable as the CLI writes it


def test_cli_data_check(toy, tmp_path, capsys):
    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    out = tmp_path / "report.json"
    assert main(["data", "check", str(config), "--data-dir", str(toy), "--json", str(out)]) == 0
    assert "total (2 tasks)" in capsys.readouterr().out
    assert json.loads(out.read_text(encoding="utf-8"))["tasks"]["a"]["counts"]["test"] == 6
    assert main(["data", "check", str(config), "--data-dir", str(tmp_path / "missing")]) == 2
    assert "file not found" in capsys.readouterr().err


def _real_data() -> Path:
    for candidate in (os.environ.get("POLYTASK_DATA"), Path(__file__).parents[1].parent / "shared" / "data"):
        if candidate and (Path(candidate) / "fdu-mtl" / "magazines.task.test").is_file():
            return Path(candidate)
    pytest.skip("FDU-MTL data not found (set $POLYTASK_DATA)")


@pytest.mark.data
def test_real_fdu_mtl():
    data_dir = _real_data()
    config = Path(__file__).parents[1] / "configs" / "fdu-mtl" / "hard-sharing.yaml"
    report = check_tasks(load_config(config), data_dir)
    assert report["total"]["tasks"] == 16
    published_train = {"baby": 1300, "camera_photo": 1397, "electronics": 1398, "magazines": 1370,
                       "software": 1315}
    for name, task in report["tasks"].items():
        c = task["counts"]
        assert (c["train"], c["dev"], c["test"]) == (published_train.get(name, 1400), 200, 400), name
        assert c["unlabeled"] == (475 if name == "software" else 2000), name
    dup = report["tasks"]["magazines"]["duplicates"]
    assert dup["test_in_train_dev"] == 163 >= 100  # as PROVENANCE.md states
    assert report["tasks"]["video"]["duplicates"]["test_in_train_dev"] == 66
    assert report["tasks"]["MR"]["read_stats"]["train"]["fallback_lines"] == 31
