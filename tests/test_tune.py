"""``polytask tune``: the search space is checked against the config, a 3-trial Optuna study runs
on a toy task and resumes from its SQLite file, pruned trials stop at a checkpoint, and a trial
stopped by Ctrl-C resumes from its own run directory."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from polytask.cli import main
from polytask.config import ConfigError, apply_overrides, load_config
from polytask.runner import train

from conftest import InterruptAt, make_raw_config, write_yaml

optuna = pytest.importorskip("optuna")

from polytask.tune import load_space, override_text, parse_space, tune  # noqa: E402

SPACE = {"trainer.lr": {"low": "1e-3", "high": 3.0e-2, "log": True}, "model.dropout": {"choices": [0.0, 0.3]}}


def setup(tmp_path: Path, data_dir: Path, space: dict = SPACE) -> tuple[Path, Path]:
    config = write_yaml(make_raw_config(data_dir, tmp_path / "search", max_steps=12, eval_every=4),
                        tmp_path / "experiment.yaml")
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    return config, path


def test_space_distributions_and_errors_that_name_the_key(tmp_path: Path, data_dir: Path):
    config, path = setup(tmp_path, data_dir)
    space = load_space(path, config)
    assert space["trainer.lr"] == optuna.distributions.FloatDistribution(1e-3, 3e-2, log=True)
    assert space["model.dropout"] == optuna.distributions.CategoricalDistribution([0.0, 0.3])
    assert parse_space({"trainer.eval_every": {"low": 2, "high": 8, "step": 2}})["trainer.eval_every"] == \
        optuna.distributions.IntDistribution(2, 8, step=2)
    cases = {
        "trainer.lrr": ({"low": 0.001, "high": 0.01}, r"trainer\.lrr: .*trainer\.lrr"),
        "trainer.lr": ({"low": 0.01, "high": 0.001}, r"trainer\.lr: low \(0\.01\) must be below high"),
        "trainer.weight_decay": ({"low": 0, "high": 1, "log": True}, r"trainer\.weight_decay\.log: a log scale"),
        "trainer.optimizer": ({"choices": ["adam", "sgd"]}, r"trainer\.optimizer: the value 'sgd' does not fit"),
        "model.dropout": ({"lo": 0.1, "high": 0.5}, r"model\.dropout\.lo: unknown field"),
        "trainer.max_steps": ([10, 20], r"trainer\.max_steps: expected \{low, high"),
    }
    for key, (spec, message) in cases.items():
        path.write_text(yaml.safe_dump({key: spec}))
        with pytest.raises(ConfigError, match=message):
            load_space(path, config)


@pytest.mark.parametrize("value", [1e-05, 0.001, 3, True, None, "adam", 2.5e20])
def test_override_values_read_back_as_written(value):
    assert apply_overrides({}, [override_text("trainer.lr", value)])["trainer"]["lr"] == value


def test_three_trial_study_resumes_from_its_sqlite_file(tmp_path: Path, data_dir: Path, capsys):
    config, space = setup(tmp_path, data_dir)
    first = tune(config, space, 2, quiet=True)
    assert [t["state"] for t in first["trials"]] == ["complete", "complete"]
    stamps = {t["number"]: (Path(t["run_dir"]) / "results.json").stat().st_mtime_ns for t in first["trials"]}

    summary = tune(config, space, 3, quiet=True)          # the same study, from tmp/search/study.db
    assert (tmp_path / "search" / "study.db").is_file()
    assert [(t["number"], t["state"]) for t in summary["trials"]] == [(0, "complete"), (1, "complete"), (2, "complete")]
    assert summary["trials"][:2] == first["trials"]
    assert stamps == {n: (Path(first["trials"][n]["run_dir"]) / "results.json").stat().st_mtime_ns for n in stamps}
    for trial in summary["trials"]:
        run = Path(trial["run_dir"])
        assert run == tmp_path / "search" / f"trial-{trial['number']:03d}"
        assert json.loads((run / "results.json").read_text())["dev_avg"] == trial["value"]
        saved = yaml.safe_load((run / "config.yaml").read_text())
        assert saved["trainer"]["lr"] == trial["params"]["trainer.lr"]
        assert saved["model"]["dropout"] == trial["params"]["model.dropout"]
        assert trial["last_step"] == 12
    best = max(summary["trials"], key=lambda t: t["value"])
    assert summary["best"]["value"] == best["value"]
    assert json.loads((tmp_path / "search" / "tune.json").read_text()) == summary
    capsys.readouterr()
    assert main(["tune", str(config), "--space", str(space), "--trials", "3"]) == 0   # already there: nothing runs
    out, err = capsys.readouterr()
    assert "already holds 3 finished trials" in err
    best_line = next(line for line in out.splitlines() if line.startswith("best:"))
    assert best_line.startswith(f"best: trial {best['number']}, mean dev {best['value']:.2f}: ")
    assert f"trainer.lr={best['params']['trainer.lr']}" in best_line
    assert len(json.loads((tmp_path / "search" / "tune.json").read_text())["trials"]) == 3


def test_pruned_trials_stop_at_their_checkpoint(tmp_path: Path, data_dir: Path):
    config, space = setup(tmp_path, data_dir)
    summary = tune(config, space, 2, pruner=optuna.pruners.ThresholdPruner(lower=1000.0), quiet=True)
    assert [(t["state"], t["last_step"]) for t in summary["trials"]] == [("pruned", 4), ("pruned", 4)]
    run = Path(summary["trials"][0]["run_dir"])
    log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r.get("pruned")) for r in log] == [(4, True)]
    assert json.loads((run / "last" / "state.json").read_text())["step"] == 4
    assert not (run / "results.json").exists() and summary["best"] is None


def test_an_interrupted_trial_resumes_from_its_run_directory(tmp_path: Path, data_dir: Path):
    config, space = setup(tmp_path, data_dir)
    with pytest.raises(KeyboardInterrupt):
        tune(config, space, 1, callbacks=[InterruptAt(6)], quiet=True)
    run = tmp_path / "search" / "trial-000"
    assert json.loads((run / "last" / "state.json").read_text())["step"] == 6

    summary = tune(config, space, 1, quiet=True)
    failed, resumed = summary["trials"]
    assert (failed["state"], resumed["state"]) == ("fail", "complete")
    assert resumed["run_dir"] == failed["run_dir"] == str(run) and resumed["params"] == failed["params"]
    assert resumed["last_step"] == 12 and summary["best"]["number"] == 1
    reference = train(load_config(config, [override_text(k, v) for k, v in failed["params"].items()]
                                  + [f"output_dir={tmp_path / 'reference'}"]), quiet=True)
    assert resumed["value"] == reference["dev_avg"]
    assert json.loads((run / "results.json").read_text())["test"] == reference["test"]
