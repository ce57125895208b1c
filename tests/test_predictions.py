"""Per-example test predictions: the file format, and a trained run's file reproduces its scores."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from polytask.config import load_config
from polytask.evaluation.predictions import read_predictions, write_predictions
from polytask.kinds import get_kind
from polytask.runner import train


def test_predictions_file_round_trip(tmp_path: Path):
    pairs = {"a": ([1, 0, 1], [1, 1, 1]), "tags": ([[0, 1], [2]], [[0, 0], [2]]), "qa": ([["x y"]], ["x"])}
    write_predictions(tmp_path, "test", pairs)
    assert read_predictions(tmp_path) == pairs
    first = json.loads((tmp_path / "predictions" / "test.jsonl").read_text().splitlines()[0])
    assert first == {"task": "a", "index": 0, "gold": 1, "prediction": 1}


def test_a_run_saves_predictions_that_reproduce_its_test_scores(fdu_config, tmp_path: Path):
    raw = {**fdu_config, "trainer": {**fdu_config["trainer"], "max_steps": 12, "eval_every": 6}}
    raw["tasks"] = [{"name": "a", "metric": ["accuracy", "macro_f1", "mcc"]}, {"name": "b"}]
    results = train(load_config(raw=raw), quiet=True)
    run = Path(raw["output_dir"])
    predictions = read_predictions(run)
    info = json.loads((run / "tasks.json").read_text())
    assert list(predictions) == ["a", "b"] and all(len(g) == 20 for g, _ in predictions.values())
    assert predictions["a"][0][:4] == [int(line.split("\t")[0]) for line in
                                     (Path(raw["data_dir"]) / "fdu" / "a.task.test").read_text().splitlines()[:4]]
    for task, (gold, pred) in predictions.items():
        rescored = get_kind("classification").score_against(gold, pred, tuple(results["test_metrics"][task]), info[task])
        assert rescored == pytest.approx(results["test_metrics"][task])
