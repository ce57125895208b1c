"""The non-finite guard: a NaN or Inf loss or gradient norm stops the run naming the step and the
tasks (or, with ``trainer.on_nonfinite: skip_batch``, skips the batch); ``best/`` and ``last/``
keep the last finite state; non-finite weights are never selected; a vectors file with a NaN is
refused; ``predict`` and ``serve`` never write NaN."""
from __future__ import annotations

import json
import math
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from polytask.cli import main
from polytask.config import load_config
from polytask.data.readers import DataError
from polytask.data.vectors import read_vectors
from polytask.runner import load_run, predict, train
from polytask.serving import create_app
from polytask.training.checkpoint import read_weights, save_weights

from conftest import live_server, write_yaml
from run_hooks import PoisonLoss, PoisonWeights, train_with


def short_run(fdu_config: dict, **trainer) -> dict:
    """30 steps, evaluated every 5, tasks drawn in turn, with ``trainer`` settings."""
    raw = {**fdu_config, "trainer": {**fdu_config["trainer"], "max_steps": 30, "eval_every": 5,
                                     "schedule": "round_robin", **trainer}}
    return raw


def all_finite(path: Path) -> bool:
    return all(torch.isfinite(t).all() for t in read_weights(path).values() if t.is_floating_point())


def strict_json(line: str):
    """json.loads that refuses NaN and Infinity (which are not JSON)."""
    def refuse(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(line, parse_constant=refuse)


def test_nonfinite_loss_stops_naming_the_step_and_task_and_keeps_the_last_finite_checkpoint(fdu_config, capsys):
    raw = short_run(fdu_config)
    poison = PoisonLoss("b", step=13)
    with pytest.raises(ValueError) as caught:
        train_with(raw, poison)
    stop = poison.poisoned[0]                           # the first step that drew a batch of b
    message = str(caught.value)
    assert f"step {stop}" in message and "'b'" in message and "loss" in message, message
    run = Path(raw["output_dir"])
    checkpoint = (stop - 1) // 5 * 5
    assert json.loads((run / "last" / "state.json").read_text())["step"] == checkpoint
    assert f"step {checkpoint}" in message
    assert all_finite(run / "last" / "model.safetensors") and all_finite(run / "best" / "model.safetensors")
    assert not (run / "results.json").exists()
    nonfinite = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()
                 if json.loads(r)["event"] == "nonfinite"]
    assert nonfinite == [{"step": stop, "event": "nonfinite", "what": "loss", "tasks": ["b"],
                          "action": "stop"}]


def test_nonfinite_loss_exits_non_zero_with_one_line_from_the_cli(fdu_config, tmp_path, capsys, monkeypatch):
    import polytask.runner as runner
    from polytask.training.trainer import Trainer

    poison = PoisonLoss("a", step=3)

    class Poisoned(Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.callbacks.callbacks.append(poison)

    monkeypatch.setattr(runner, "Trainer", Poisoned)
    rc = main(["train", str(write_yaml(short_run(fdu_config), tmp_path / "exp.yaml")), "--quiet"])
    err = capsys.readouterr().err
    assert rc != 0 and err.startswith(f"polytask: error: step {poison.poisoned[0]}: ") and "'a'" in err, err
    assert len(err.splitlines()) == 1
    assert "No checkpoint was written" in err and not (tmp_path / "run" / "last").exists()


def test_nonfinite_gradient_norm_stops_naming_the_step_and_task(fdu_config):
    raw = short_run(fdu_config)
    poison = PoisonLoss("a", step=8, what="gradient")
    with pytest.raises(ValueError, match="gradient norm") as caught:
        train_with(raw, poison)
    stop = poison.poisoned[0]
    assert f"step {stop}" in str(caught.value) and "'a'" in str(caught.value)
    run = Path(raw["output_dir"])
    assert json.loads((run / "last" / "state.json").read_text())["step"] == (stop - 1) // 5 * 5
    assert all_finite(run / "last" / "model.safetensors")


def test_on_nonfinite_skip_batch_skips_the_batch_and_trains_on(fdu_config):
    raw = short_run(fdu_config, on_nonfinite="skip_batch")

    class WeightsAtEachStep(PoisonLoss):
        def on_step_end(self, trainer):
            self.snapshots[trainer.step] = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    poison = WeightsAtEachStep("b", step=13, only_once=True)
    poison.snapshots = {}
    results = train_with(raw, poison)
    [skipped] = poison.poisoned
    assert results["steps"] == 30
    run = Path(raw["output_dir"])
    records = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"step": skipped, "event": "nonfinite", "what": "loss", "tasks": ["b"],
            "action": "skip_batch"} in records
    evals = {r["step"]: r for r in records if r["event"] == "eval"}
    after = (skipped + 4) // 5 * 5                     # the evaluation that follows the skipped step
    assert [evals[s]["nonfinite_skipped"] for s in sorted(evals)] == [int(s == after) for s in sorted(evals)]
    before, now = poison.snapshots[skipped - 1], poison.snapshots[skipped]
    assert all(before[k].equal(now[k]) for k in before)       # no optimizer step on the bad batch
    assert not all(now[k].equal(poison.snapshots[skipped + 1][k]) for k in now)   # training went on
    assert all_finite(run / "best" / "model.safetensors") and all_finite(run / "last" / "model.safetensors")


def test_evaluation_never_selects_nonfinite_weights(fdu_config):
    """The issue's case: a NaN model's constant predictions may score a higher dev mean; best/
    must keep the last finite weights all the same."""
    raw = short_run(fdu_config)
    with pytest.raises(ValueError, match="step 10: the weights are not finite") as caught:
        train_with(raw, PoisonWeights(step=10))
    assert "best/" in str(caught.value)
    run = Path(raw["output_dir"])
    assert json.loads((run / "best" / "state.json").read_text())["step"] == 5
    assert json.loads((run / "last" / "state.json").read_text())["step"] == 5
    assert all_finite(run / "best" / "model.safetensors")


def test_save_best_refuses_nonfinite_weights(tmp_path):
    from polytask.training.selection import MeanSelection
    selection = MeanSelection(tmp_path / "best", patience=None)
    with pytest.raises(ValueError, match="not finite"):
        selection.save_best({"w": torch.tensor([1.0, math.nan])}, {"step": 3})
    assert not (tmp_path / "best").exists() and not (tmp_path / "best.tmp").exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity"])
def test_vectors_file_with_nonfinite_values_is_refused_with_file_and_line(tmp_path, value):
    path = tmp_path / "vectors.txt"
    path.write_text(f"2 3\ngood 0.1 0.2 0.3\nbad 0.1 {value} 0.3\n")
    with pytest.raises(DataError, match=f"{path}:3: .*not finite"):
        read_vectors(path)


def test_binary_vectors_file_with_nonfinite_values_is_refused_with_file_and_vector(tmp_path):
    path = tmp_path / "vectors.bin"
    rows = [("good", [0.1, 0.2]), ("bad", [math.nan, 0.2])]
    path.write_bytes(b"2 2\n" + b"".join(w.encode() + b" " + np.asarray(v, dtype="<f4").tobytes() + b"\n"
                                          for w, v in rows))
    with pytest.raises(DataError, match=f"{path}: vector 2 \\('bad'\\).*not finite"):
        read_vectors(path)


@pytest.fixture
def nan_run(fdu_config) -> Path:
    """A trained run whose best/ weights were made NaN after training (as an older polytask could
    leave them)."""
    train(load_config(raw={**fdu_config, "trainer": {**fdu_config["trainer"], "max_steps": 2,
                                                     "eval_every": 2}}), quiet=True)
    run = Path(fdu_config["output_dir"])
    weights = read_weights(run / "best" / "model.safetensors")
    save_weights({k: v.fill_(math.nan) if v.is_floating_point() else v for k, v in weights.items()},
                 run / "best" / "model.safetensors")
    return run


def test_predict_never_emits_nan(nan_run, tmp_path, capsys):
    records = predict(load_run(nan_run), "a", ["a good movie"])
    assert records == [{"error": records[0]["error"]}] and "not finite" in records[0]["error"]
    texts = tmp_path / "texts.txt"
    texts.write_text("a good movie\nit was bad\n")
    rc = main(["predict", str(nan_run), "--task", "a", "--input", str(texts)])
    out, err = capsys.readouterr()
    lines = [strict_json(line) for line in out.splitlines()]
    assert [r["text"] for r in lines] == ["a good movie", "it was bad"]
    assert all("not finite" in r["error"] and "probability" not in r for r in lines)
    assert rc != 0 and err.startswith("polytask: error: 2 of 2 inputs") and "Traceback" not in err


def test_serve_never_emits_nan(nan_run):
    with live_server(create_app(load_run(nan_run))) as url:
        body = json.dumps({"task": "a", "texts": ["a good movie"]}).encode()
        with urllib.request.urlopen(urllib.request.Request(url + "/predict", data=body, method="POST"),
                                    timeout=10) as resp:
            answer = strict_json(resp.read().decode())
    [prediction] = answer["predictions"]
    assert set(prediction) == {"error"} and "not finite" in prediction["error"]
