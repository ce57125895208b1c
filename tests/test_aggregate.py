"""Seed aggregates: mean ± sample standard deviation over hand-made seed runs, and the report of
systems given as directories of seed runs (table, Δm spread, significance, CSV/JSON)."""
from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest

from polytask.evaluation.aggregate import format_aggregate, mean_std, write_aggregate
from polytask.evaluation.predictions import write_predictions


def fake_seed(parent: Path, seed: int, arch: str, test: dict[str, dict[str, float]], dev_avg: float,
              predictions: dict | None = None, finished: bool = True) -> Path:
    """A seed run directory as ``polytask train --seeds`` leaves it (config, log, results,
    per-example predictions); ``test``: {task: {metric: value}}, the first metric primary."""
    run = parent / f"seed-{seed}"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(f"seed: {seed}\n")
    (run / "metrics.jsonl").write_text(json.dumps({"step": 10, "event": "eval", "dev_mean": dev_avg - 1}) + "\n"
                                       + json.dumps({"step": 20, "event": "eval", "dev_mean": dev_avg}) + "\n")
    labels = {t: ["0", "1"] for t in test}
    (run / "tasks.json").write_text(json.dumps({t: {"type": "classification", "labels": labels[t],
                                                    "metrics": list(m)} for t, m in test.items()}))
    if predictions:
        write_predictions(run, "test", predictions)
    if finished:
        primary = {t: next(iter(m.values())) for t, m in test.items()}
        (run / "results.json").write_text(json.dumps({
            "architecture": arch, "seed": seed, "test": primary, "test_metrics": test,
            "dev": {t: dev_avg for t in test}, "dev_metrics": {t: {next(iter(m)): dev_avg} for t, m in test.items()},
            "test_avg": statistics.fmean(primary.values()), "dev_avg": dev_avg, "steps": 20}))
    return run


def test_mean_and_sample_std_over_seeds(tmp_path: Path):
    system = tmp_path / "fs-mtl"
    scores = {1: ({"a": 80.0, "b": 70.0}, {"a": 60.0, "b": 50.0}),
              2: ({"a": 82.0, "b": 70.0}, {"a": 64.0, "b": 50.0}),
              3: ({"a": 84.0, "b": 73.0}, {"a": 62.0, "b": 56.0})}
    for seed, (acc, f1) in scores.items():
        fake_seed(system, seed, "hard_sharing", {t: {"accuracy": acc[t], "macro_f1": f1[t]} for t in acc},
                  dev_avg=70.0 + seed)
    fake_seed(system, 4, "hard_sharing", {"a": {"accuracy": 0.0, "macro_f1": 0.0}}, 0.0, finished=False)

    agg = write_aggregate(system, [1, 2, 3, 4])
    assert agg["seeds"] == [1, 2, 3] and agg["missing"] == [4]
    assert agg["test"]["a"]["accuracy"]["mean"] == pytest.approx(82.0)
    assert agg["test"]["a"]["accuracy"]["std"] == pytest.approx(2.0)            # n - 1 in the denominator
    assert agg["test"]["b"]["accuracy"]["std"] == pytest.approx(3 ** 0.5)
    assert agg["test"]["b"]["macro_f1"]["mean"] == pytest.approx(52.0)
    assert agg["test_avg"]["values"] == [75.0, 76.0, 78.5]
    assert agg["test_avg"]["std"] == pytest.approx(statistics.stdev([75.0, 76.0, 78.5]))
    assert agg["average"]["test"]["macro_f1"]["mean"] == pytest.approx((55 + 57 + 59) / 3)
    assert agg["dev_avg"]["mean"] == pytest.approx(72.0) and agg["dev_avg"]["std"] == pytest.approx(1.0)
    assert json.loads((system / "seeds.json").read_text())["test"]["a"]["accuracy"]["mean"] == pytest.approx(82.0)
    table = (system / "seeds.md").read_text()
    assert "| a       | 72.00 ± 1.00 | 82.00 ± 2.00 | 62.00 ± 2.00  |" in table
    assert "| average | 72.00 ± 1.00 | 76.50 ± 1.80 | 57.00 ± 2.00  |" in table
    assert "Not finished: seeds 4." in table
    assert mean_std([5.0])["std"] is None and "±" not in format_aggregate(write_aggregate(system, [1]))


def _predictions(gold: list[int], right: int) -> dict:
    """Task ``a``: right on the first ``right`` examples, wrong after."""
    return {"a": (gold, [g if i < right else 1 - g for i, g in enumerate(gold)])}


def test_report_of_seed_systems(tmp_path: Path):
    from polytask.cli import main
    gold = [i % 2 for i in range(100)]
    for seed, (good, base) in {1: (95, 70), 2: (93, 72), 3: (96, 71)}.items():
        fake_seed(tmp_path / "good", seed, "hard_sharing", {"a": {"accuracy": float(good)}}, 80.0, _predictions(gold, good))
        fake_seed(tmp_path / "twin", seed, "hard_sharing", {"a": {"accuracy": float(good)}}, 80.0, _predictions(gold, good))
        fake_seed(tmp_path / "single", seed, "single_task", {"a": {"accuracy": float(base)}}, 70.0, _predictions(gold, base))
    out = tmp_path / "report"
    assert main(["report", str(tmp_path / "good"), str(tmp_path / "twin"), str(tmp_path / "single"),
                 "--output", str(out), "--resamples", "999"]) == 0
    summary = json.loads((out / "report.json").read_text())
    assert summary["good"]["test_avg"] == pytest.approx(94.666666, abs=1e-4)
    assert summary["good"]["test_avg_std"] == pytest.approx(statistics.stdev([95, 93, 96]))
    dm = [100 * (g - 71) / 71 for g in (95, 93, 96)]                   # per seed, against the baseline mean
    assert summary["good"]["delta_m"] == pytest.approx(statistics.fmean(dm))
    assert summary["good"]["delta_m_std"] == pytest.approx(statistics.stdev(dm))
    md = (out / "report.md").read_text()
    assert "| good | 94.67 ± 1.53 |" in md
    pairs = {(c["a"], c["b"]): c for c in json.loads((out / "significance.json").read_text())}
    assert pairs[("good", "twin")]["examples"]["p_value"] == 1.0
    assert pairs[("good", "twin")]["verdict"] == "not distinguishable at this sample size"
    assert pairs[("good", "single")]["examples"]["p_value"] == pytest.approx(2 / 1000)
    assert pairs[("good", "single")]["verdict"] == "significant at α = 0.05"
    assert "**good vs single**: Δ test avg +23.67" in md and "→ significant at α = 0.05" in md
    assert "**good vs twin**: Δ test avg +0.00" in md
    rows = list(csv.DictReader((out / "runs.csv").open()))
    assert len(rows) == 3 * 3 * 2                                    # systems × seeds × splits (one task, one metric)
    row = next(r for r in rows if (r["system"], r["seed"], r["split"]) == ("single", "2", "test"))
    assert (row["task"], row["metric"], float(row["value"])) == ("a", "accuracy", 72.0)
    assert row["run_dir"] == str(tmp_path / "single" / "seed-2")
    assert json.loads((out / "runs.json").read_text())[0]["system"] == "good"


def test_report_says_when_the_seeds_alone_do_not_separate_two_systems(tmp_path: Path):
    """Seeds that err on nested sets of examples: over the 1000 pooled test examples A is clearly
    better, but three seeds a side (90 ± 2 vs 87 ± 2) do not separate them."""
    from scipy.stats import ttest_ind

    from polytask.evaluation.report import build_report
    gold = [i % 2 for i in range(1000)]
    for seed, (a, b) in {1: (900, 870), 2: (880, 890), 3: (920, 850)}.items():
        fake_seed(tmp_path / "a", seed, "hard_sharing", {"a": {"accuracy": a / 10}}, 80.0, _predictions(gold, a))
        fake_seed(tmp_path / "b", seed, "hard_sharing", {"a": {"accuracy": b / 10}}, 80.0, _predictions(gold, b))
    build_report([tmp_path / "a", tmp_path / "b"], tmp_path / "report", n_resamples=999)
    (pair,) = json.loads((tmp_path / "report" / "significance.json").read_text())
    assert pair["examples"]["p_value"] == pytest.approx(2 / 1000) and pair["examples"]["swappable"] == 70
    assert pair["seeds"]["p_value"] == pytest.approx(ttest_ind([90, 88, 92], [87, 89, 85], equal_var=False).pvalue)
    assert pair["seeds"]["p_value"] > 0.05 and pair["within_seed_spread"]
    assert ("→ significant at α = 0.05, but the seeds alone do not separate them"
            in (tmp_path / "report" / "report.md").read_text())
