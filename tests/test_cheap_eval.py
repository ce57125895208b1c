"""The end of a run reuses the dev metrics the trainer computed for the best weights (mean
selection) instead of scoring dev again, and reuses collated evaluation batches; every number in
results.json is the one that scoring the reloaded best weights from scratch gives."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from polytask import runner
from polytask.config import load_config
from polytask.data import batching
from polytask.runner import train

from test_resume import make_config


def counted(monkeypatch) -> list:
    calls: list = []
    original = runner.evaluate_metrics

    def evaluate_metrics(*args, **kwargs):
        calls.append(sorted(args[1]))
        return original(*args, **kwargs)
    monkeypatch.setattr(runner, "evaluate_metrics", evaluate_metrics)
    return calls


def from_scratch(run_dir: Path) -> dict:
    batching.clear_eval_cache()
    return {split: runner.evaluate(run_dir, split) for split in ("dev", "test")}


@pytest.mark.parametrize("architecture,select,dev_passes", [
    ("hard_sharing", "mean", 0),            # the trainer's scores of the best step are kept
    ("single_task", "per_task", 1),         # best/ composes several steps: dev is scored again
])
def test_results_equal_scoring_the_best_weights_from_scratch(tmp_path, monkeypatch, architecture, select,
                                                              dev_passes):
    calls = counted(monkeypatch)
    results = train(load_config(make_config(tmp_path, "run", architecture, select)), quiet=True)
    assert len(calls) == dev_passes
    run_dir = tmp_path / "run"
    state = json.loads((run_dir / "best" / "state.json").read_text())
    assert ("dev_metrics" in state) == (select == "mean")
    again = from_scratch(run_dir)
    assert results["dev_metrics"] == again["dev"]
    assert results["test_metrics"] == again["test"]
    saved = json.loads((run_dir / "results.json").read_text())
    assert saved["dev_metrics"] == again["dev"] and saved["test_metrics"] == again["test"]


def test_a_best_state_without_dev_metrics_scores_dev_again(tmp_path, monkeypatch):
    """An older run directory (best/state.json without dev_metrics) falls back to scoring dev."""
    train(load_config(make_config(tmp_path, "run", "hard_sharing")), quiet=True)
    run_dir = tmp_path / "run"
    state_path = run_dir / "best" / "state.json"
    state = json.loads(state_path.read_text())
    kept = state.pop("dev_metrics")
    state_path.write_text(json.dumps(state))
    assert runner._kept_dev_metrics(run_dir, {"a": [1], "b": [1]}) is None
    state_path.write_text(json.dumps({**state, "dev_metrics": kept}))
    assert runner._kept_dev_metrics(run_dir, {"a": [1], "b": [1]}) == kept
    assert runner._kept_dev_metrics(run_dir, {"a": [1]}) is None     # other tasks: score again


def test_evaluation_batches_are_collated_once_per_items(tmp_path, monkeypatch):
    """Later evaluations of the same dev items reuse the collated batches."""
    batching.clear_eval_cache()
    collated: list = []
    original = batching.eval_batches

    def eval_batches(task, items, *args, **kwargs):
        collated.append(task)
        return original(task, items, *args, **kwargs)
    monkeypatch.setattr(batching, "eval_batches", eval_batches)
    train(load_config(make_config(tmp_path, "run", "hard_sharing")), quiet=True)
    # 6 evaluations of dev and one pass over test: each (task, split) collated once
    assert sorted(collated) == ["a", "a", "b", "b"]
