"""Honest resume: a setting changed on --resume either takes effect from the step the run resumes
at (and is logged as changed there) or is refused naming its key; ``config.yaml`` always states
what the run used."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from polytask.cli import main
from polytask.config import ConfigError, load_config
from polytask.runner import train
from polytask.training.callbacks import Callback

from conftest import write_yaml
from run_hooks import train_with


def first_run(fdu_config: dict, **trainer) -> dict:
    """Trains 10 steps (evaluated every 5); returns the raw config to resume with."""
    raw = {**fdu_config, "trainer": {**fdu_config["trainer"], "max_steps": 10, "eval_every": 5, **trainer}}
    train(load_config(raw=raw), quiet=True)
    return raw


def records(raw: dict, event: str) -> list[dict]:
    lines = (Path(raw["output_dir"]) / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == event]


def saved_config(raw: dict) -> dict:
    return yaml.safe_load((Path(raw["output_dir"]) / "config.yaml").read_text())


class OptimizerLR(Callback):
    """The learning rate in the optimizer's parameter groups for the step after each step (and
    for the first step after the resume)."""

    def __init__(self):
        self.lrs: dict[int, list[float]] = {}

    def on_train_start(self, trainer):
        self.on_step_end(trainer)

    def on_step_end(self, trainer):
        self.lrs[trainer.step] = [g["lr"] for g in trainer.optimizer.param_groups]


def test_resume_with_a_new_lr_reaches_the_optimizer(fdu_config):
    raw = first_run(fdu_config, lr=0.01)
    resumed = {**raw, "trainer": {**raw["trainer"], "lr": 0.001, "max_steps": 20}}
    seen = OptimizerLR()
    results = train_with(resumed, seen, resume=True)
    assert results["steps"] == 20
    assert seen.lrs[10] == [0.001] and seen.lrs[20] == [0.001]
    assert [r["lr"] for r in records(raw, "eval")] == [0.01, 0.01, 0.001, 0.001]
    assert records(raw, "resume") == [{"step": 10, "event": "resume",
                                       "changed": ["trainer.max_steps: 10 -> 20", "trainer.lr: 0.01 -> 0.001"]}]
    assert saved_config(raw)["trainer"]["lr"] == 0.001 and saved_config(raw)["trainer"]["max_steps"] == 20


def test_resume_with_a_new_lr_schedule_takes_effect(fdu_config):
    raw = first_run(fdu_config, lr=0.01)
    resumed = {**raw, "trainer": {**raw["trainer"], "lr_schedule": "linear", "max_steps": 20}}
    seen = OptimizerLR()
    train_with(resumed, seen, resume=True)
    # linear decay to zero at step 20: after step s the next step's lr is 0.01 * (1 - s / 20),
    # from the first step after the resume on
    assert seen.lrs[10] == [pytest.approx(0.005)] and seen.lrs[15] == [pytest.approx(0.0025)]
    assert [r["lr"] for r in records(raw, "eval")][2:] == [pytest.approx(0.0025), 0.0]


def test_resume_with_changed_weighting_options_is_listed_and_used(fdu_config):
    raw = first_run(fdu_config, weighting="dwa", weighting_options={"window": 3})
    resumed = {**raw, "trainer": {**raw["trainer"], "weighting_options": {"window": 4, "temperature": 1.0},
                                  "max_steps": 12}}

    class Weighting(Callback):
        def on_train_start(self, trainer):
            self.window, self.temperature = trainer.weighting.window, trainer.weighting.temperature

    seen = Weighting()
    train_with(resumed, seen, resume=True)
    assert (seen.window, seen.temperature) == (4, 1.0)
    [change] = records(raw, "resume")
    assert "trainer.weighting_options: {'window': 3} -> {'window': 4, 'temperature': 1.0}" in change["changed"]
    assert saved_config(raw)["trainer"]["weighting_options"] == {"window": 4, "temperature": 1.0}


def test_resume_with_changed_patience_takes_effect(fdu_config):
    raw = first_run(fdu_config)
    resumed = {**raw, "trainer": {**raw["trainer"], "patience": 1, "max_steps": 200}}
    results = train(load_config(raw=resumed), quiet=True, resume=True)
    # patience 1: the run stops at the first evaluation from step 10 on that is no new best
    evals = records(raw, "eval")
    not_best = [r["step"] for i, r in enumerate(evals)
                if r["step"] >= 10 and r["dev_mean"] <= max(e["dev_mean"] for e in evals[:i])]
    assert results["steps"] == not_best[0] == evals[-1]["step"] < 200


@pytest.mark.parametrize("override,key", [
    ({"model": {"architecture": "single_task"}}, "model.architecture"),
    ({"model": {"embedding_dim": 32}}, "model.embedding_dim"),
    ({"model": {"encoder": {"type": "bilstm", "hidden_dim": 32, "num_layers": 1}}}, "model.encoder.hidden_dim"),
    ({"tasks": [{"name": "a"}]}, "tasks"),
    ({"trainer": {"optimizer": "adagrad"}}, "trainer.optimizer"),
    ({"seed": 7}, "seed"),
])
def test_resume_refuses_a_changed_architecture_model_size_or_tasks_naming_the_key(fdu_config, override, key):
    raw = first_run(fdu_config)
    before = (Path(raw["output_dir"]) / "config.yaml").read_text()
    changed = {**raw}
    for section, value in override.items():
        changed[section] = {**raw[section], **value} if isinstance(value, dict) else value
    with pytest.raises(ConfigError, match=f"{key}: .* cannot change on --resume"):
        train(load_config(raw=changed), quiet=True, resume=True)
    assert (Path(raw["output_dir"]) / "config.yaml").read_text() == before


def test_resume_with_another_architecture_names_the_key_from_the_cli(fdu_config, tmp_path, capsys):
    raw = first_run(fdu_config)
    config = write_yaml(raw, tmp_path / "exp.yaml")
    rc = main(["train", str(config), "--quiet", "--resume", "model.architecture=single_task"])
    err = capsys.readouterr().err
    assert rc != 0 and err.startswith("polytask: error: ") and "model.architecture" in err, err
    assert "Traceback" not in err and len(err.splitlines()) == 1


def test_a_run_started_under_an_earlier_default_resumes_with_it(fdu_config, tmp_path):
    """data.bucket_window was 50 by default before it became 8: a run started under 50 (its
    config.yaml says so) and resumed with the key left to the library goes on with 50, exactly as
    an uninterrupted run under 50 ends; set to another value, the change is still refused."""
    from polytask.training.checkpoint import read_weights
    windowed = {**fdu_config, "data": {**fdu_config.get("data", {}), "bucket_window": 50}}
    whole = {**windowed, "output_dir": str(tmp_path / "whole"),
             "trainer": {**fdu_config["trainer"], "max_steps": 20, "eval_every": 5}}
    train(load_config(raw=whole), quiet=True)
    raw = first_run({**windowed, "output_dir": str(tmp_path / "parts")})
    assert saved_config(raw)["data"]["bucket_window"] == 50
    later = {**raw, "data": {k: v for k, v in raw["data"].items() if k != "bucket_window"},
             "trainer": {**raw["trainer"], "max_steps": 20}}
    assert load_config(raw=later).data.bucket_window == 8                 # today's default
    train(load_config(raw=later), quiet=True, resume=True)
    a, b = read_weights(tmp_path / "whole/last/model.safetensors"), read_weights(tmp_path / "parts/last/model.safetensors")
    assert all(a[k].equal(b[k]) for k in a)
    assert saved_config(raw)["data"]["bucket_window"] == 50
    other = {**later, "data": {**later["data"], "bucket_window": 16}}
    with pytest.raises(ConfigError, match="data.bucket_window: 50 -> 16: this setting cannot change on --resume"):
        train(load_config(raw=other), quiet=True, resume=True)
