"""The benchmark scripts run end to end (a few steps, tiny models, results written elsewhere)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def data_dir() -> Path:
    for c in (os.environ.get("POLYTASK_DATA"), ROOT.parent / "shared" / "data"):
        if c and (Path(c) / "conll2000" / "train.txt").is_file():
            return Path(c)
    pytest.skip("data directory not found (set $POLYTASK_DATA)")


@pytest.mark.data
@pytest.mark.slow
def test_tagging_benchmark_smoke(tmp_path: Path):
    cmd = [sys.executable, "benchmarks/tagging.py", "--data-dir", str(data_dir()), "--work-dir",
           str(tmp_path / "work"), "--results-dir", str(tmp_path / "results"), "--runs",
           "hard-sharing,joint-many-task", "--jobs", "1", "trainer.max_steps=2", "trainer.eval_every=2",
           "model.encoder.hidden_dim=8", "model.embedding_dim=8", "model.char_hidden_dim=4",
           "model.char_embedding_dim=4", "data.max_length=20"]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, timeout=600)
    report = json.loads((tmp_path / "results" / "tagging.json").read_text())
    assert [r["name"] for r in report["runs"]] == ["hard-sharing", "joint-many-task"]
    assert set(report["runs"][0]["test"]) == {"upos", "chunk"}
    assert "trainer.max_steps=2" in report["command"]


TINY = ["trainer.max_steps=2", "trainer.eval_every=2", "model.encoder.hidden_dim=8", "model.embedding_dim=8",
        "data.max_length=20", "model.meta_hidden_dim=4", "model.meta_dim=4", "model.meta_rank=4"]


@pytest.mark.data
@pytest.mark.slow
def test_meta_lstm_benchmark_smoke(tmp_path: Path):
    cmd = [sys.executable, "benchmarks/meta_lstm.py", "--data-dir", str(data_dir()), "--work-dir",
           str(tmp_path / "work"), "--results-dir", str(tmp_path / "results"), "--runs", "meta-lstm",
           "--jobs", "1", *TINY]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, timeout=900)
    report = json.loads((tmp_path / "results" / "meta-lstm.json").read_text())
    assert report["runs"][0]["name"] == "meta-lstm" and len(report["runs"][0]["test"]) == 16
    assert report["speed"][0]["ratio_a_over_b"] > 0
    assert [r["name"].split(":")[0] for r in report["transfer"]] == ["video", "video"]
