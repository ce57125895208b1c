"""polytask report: tables, Δm against single-task, negative-transfer flags, learning curves."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from polytask.cli import main
from polytask.evaluation.report import delta_m


def test_delta_m_is_the_mean_relative_change():
    assert delta_m({"a": 90.0, "b": 72.0}, {"a": 80.0, "b": 80.0}) == pytest.approx(100 * (0.125 - 0.1) / 2)
    assert delta_m({"a": 1.0}, {"z": 2.0}) is None


def fake_run(root: Path, name: str, arch: str, test: dict) -> Path:
    d = root / name
    d.mkdir()
    (d / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "dev_mean": 50 + s / 10, "dev": {}}) + "\n"
                                             for s in (10, 20, 30)))
    (d / "results.json").write_text(json.dumps({"architecture": arch, "test": test, "dev_avg": 70.0,
                                                "test_avg": sum(test.values()) / len(test), "steps": 30}))
    return d


def test_report_of_two_runs(tmp_path: Path):
    single = fake_run(tmp_path, "single", "single_task", {"a": 80.0, "b": 80.0})
    shared = fake_run(tmp_path, "shared", "hard_sharing", {"a": 90.0, "b": 72.0})
    out = tmp_path / "report"
    assert main(["report", str(single), str(shared), "--output", str(out)]) == 0
    summary = json.loads((out / "report.json").read_text())
    assert summary["shared"]["negative_transfer"] == ["b"]
    assert summary["shared"]["delta_m"] == pytest.approx(1.25)
    md = (out / "report.md").read_text()
    assert "| shared | 81.00 |" in md and "Δm" in md
    assert (out / "report.html").is_file()
    if pytest.importorskip("matplotlib"):
        assert (out / "learning-curves.png").stat().st_size > 1000
    assert main(["report", str(tmp_path / "missing")]) == 2


def test_gradient_similarity_is_logged_and_plotted(fdu_config, tmp_path):
    from polytask.config import load_config
    from polytask.runner import train
    raw = {**fdu_config, "trainer": {**fdu_config["trainer"], "gradient_similarity": True, "max_steps": 40}}
    train(load_config(raw=raw), quiet=True)
    run = Path(raw["output_dir"])
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    matrix = record["grad_cosine"]["matrix"]
    assert record["grad_cosine"]["tasks"] == ["a", "b"]
    assert matrix[0][0] == pytest.approx(1.0, abs=1e-5) and -1.0 <= matrix[0][1] <= 1.0
    assert main(["report", str(run), "--output", str(tmp_path / "rep")]) == 0
    pytest.importorskip("matplotlib")
    assert (tmp_path / "rep" / f"grad-cosine-{run.name}.png").is_file()
