"""Tracking and logging (issue 22, item 6): ``trainer.report_to`` (csv, tensorboard, mlflow, or
none), the ``polytask`` logger instead of print, and progress lines instead of a bar off a terminal."""
from __future__ import annotations

import csv
import io
import json
import logging
import re
import sys
from pathlib import Path

import pytest

import polytask.runner as runner
from polytask.cli import main
from polytask.config import ConfigError, load_config
from polytask.training.callbacks import ProgressBar
from polytask.training.tracking import TrackingError

from conftest import write_yaml

SRC = Path(__file__).resolve().parents[1] / "src" / "polytask"


def short(raw: dict, **trainer) -> dict:
    return {**raw, "trainer": {**raw["trainer"], "max_steps": 4, "eval_every": 2, **trainer}}


def evals(run: Path) -> list[dict]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if r["event"] == "eval"]


@pytest.fixture
def file_store(monkeypatch):
    """MLflow's file store, allowed for the client that reads it back, and no tracking URI from
    the environment."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


# ----------------------------------------------------------------------------- report_to


def test_default_writes_metrics_csv_and_no_tensorboard(fdu_config):
    run = Path(fdu_config["output_dir"])
    runner.train(load_config(raw=short(fdu_config)), quiet=True)
    assert not (run / "tensorboard").exists() and not (run / "mlruns").exists()
    with (run / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:5] == ["step", "event", "dev_mean", "lr", "tokens_per_s"]
    assert list(rows[0])[-1] == "details" and "dev/a" in rows[0] and "train_loss/b" in rows[0]
    expected = evals(run)
    assert [int(r["step"]) for r in rows] == [r["step"] for r in expected] == [2, 4]
    for row, record in zip(rows, expected):
        assert float(row["dev_mean"]) == record["dev_mean"]
        assert {t: float(row[f"dev/{t}"]) for t in ("a", "b")} == record["dev"]
        assert json.loads(row["details"])["best_dev_mean"] == record["best_dev_mean"]


def test_empty_report_to_writes_no_tracker_files(fdu_config):
    run = Path(fdu_config["output_dir"])
    runner.train(load_config(raw=short(fdu_config, report_to=[])), quiet=True)
    assert (run / "metrics.jsonl").is_file() and len(evals(run)) == 2       # resume and reports read it
    for name in ("metrics.csv", "tensorboard", "mlruns", "mlflow.json"):
        assert not (run / name).exists(), name


def test_tensorboard_writes_event_files_with_the_logged_numbers(fdu_config):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    run = Path(fdu_config["output_dir"])
    runner.train(load_config(raw=short(fdu_config, report_to=["tensorboard"])), quiet=True)
    assert not (run / "metrics.csv").exists()
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    expected = evals(run)
    assert [(e.step, pytest.approx(e.value)) for e in events.Scalars("dev_mean")] == \
        [(r["step"], r["dev_mean"]) for r in expected]
    assert [e.value for e in events.Scalars("dev/b")] == pytest.approx([r["dev"]["b"] for r in expected])


def test_unknown_tracker_names_the_key_and_the_choices(fdu_config, tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"trainer\.report_to\[1\]: 'wandb' is not one of 'csv', 'tensorboard', "
                                          r"'mlflow'"):
        load_config(raw=short(fdu_config, report_to=["csv", "wandb"]))
    config = write_yaml(short(fdu_config), tmp_path / "exp.yaml")
    rc = main(["train", str(config), "--quiet", "trainer.report_to=[wandb]"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("polytask: error: ") and "trainer.report_to" in err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("tracker, module", [("mlflow", "mlflow"), ("tensorboard", "tensorboard")])
def test_a_missing_tracker_package_fails_at_start_naming_the_extra(fdu_config, monkeypatch, tracker, module):
    monkeypatch.setitem(sys.modules, module, None)                     # import fails
    raw = short(fdu_config, report_to=["csv", tracker])
    raw["data_dir"] = str(Path(fdu_config["data_dir"]) / "nowhere")    # before any data is read
    with pytest.raises(TrackingError, match=rf"lists {tracker}, but .* not installed: pip install 'polytask\[track\]'"):
        runner.train(load_config(raw=raw), quiet=True)
    assert not Path(fdu_config["output_dir"]).exists()


# ----------------------------------------------------------------------------- mlflow


def read_mlflow(run: Path):
    from mlflow.tracking import MlflowClient
    saved = json.loads((run / "mlflow.json").read_text())
    return MlflowClient(tracking_uri=saved["tracking_uri"]), saved


def test_mlflow_logs_params_metrics_and_artifacts_to_a_local_file_store(fdu_config, file_store):
    run = Path(fdu_config["output_dir"])
    results = runner.train(load_config(raw=short(fdu_config, report_to=["mlflow"])), quiet=True)
    client, saved = read_mlflow(run)
    assert saved["tracking_uri"] == (run / "mlruns").resolve().as_uri() and saved["experiment"] == "run"
    mlflow_run = client.get_run(saved["run_id"])
    assert mlflow_run.info.status == "FINISHED"
    assert mlflow_run.data.params["trainer.lr"] == "0.01"
    assert mlflow_run.data.params["model.architecture"] == "hard_sharing"
    assert mlflow_run.data.params["tasks.1.name"] == "b"
    expected = evals(run)
    history = client.get_metric_history(saved["run_id"], "dev_mean")
    assert [(m.step, m.value) for m in history] == [(r["step"], r["dev_mean"]) for r in expected]
    history = client.get_metric_history(saved["run_id"], "dev/a")
    assert [m.value for m in history] == [r["dev"]["a"] for r in expected]
    accuracy = client.get_metric_history(saved["run_id"], "dev_metrics/a/accuracy")
    assert [m.value for m in accuracy] == [r["dev"]["a"] for r in expected]
    assert [m.value for m in client.get_metric_history(saved["run_id"], "lr")] == [0.01, 0.01]
    assert client.get_metric_history(saved["run_id"], "test/b")[0].value == results["test"]["b"]
    artifacts = {a.path for a in client.list_artifacts(saved["run_id"])}
    assert {"config.yaml", "results.json"} <= artifacts
    assert not (run / "tensorboard").exists()


def test_a_resumed_run_continues_the_same_mlflow_run(fdu_config, file_store):
    run = Path(fdu_config["output_dir"])
    runner.train(load_config(raw=short(fdu_config, report_to=["mlflow", "csv"])), quiet=True)
    client, first = read_mlflow(run)
    longer = short(fdu_config, report_to=["mlflow", "csv"], max_steps=6)
    runner.train(load_config(raw=longer), quiet=True, resume=True)
    client, second = read_mlflow(run)
    assert second["run_id"] == first["run_id"]
    [experiment] = [e for e in client.search_experiments() if e.name == "run"]
    assert len(client.search_runs([experiment.experiment_id])) == 1
    history = client.get_metric_history(first["run_id"], "dev_mean")
    assert [m.step for m in history] == [2, 4, 6]
    assert [m.value for m in history] == [r["dev_mean"] for r in evals(run)]
    assert client.get_run(first["run_id"]).data.params["trainer.max_steps"] == "4"    # as first logged
    changed = json.loads(client.get_run(first["run_id"]).data.tags["event.4.resume"])["changed"]
    assert changed == ["trainer.max_steps: 4 -> 6"]
    with (run / "metrics.csv").open(newline="") as f:                                # kept, then continued
        rows = [(int(row["step"]), row["event"], row["details"]) for row in csv.DictReader(f)]
    assert [row[:2] for row in rows] == [(2, "eval"), (4, "eval"), (4, "resume"), (6, "eval")]
    assert json.loads(rows[2][2]) == {"changed": changed}


def test_mlflow_tracking_uri_from_the_environment_and_experiment_from_the_config(fdu_config, file_store,
                                                                                tmp_path, monkeypatch):
    store = (tmp_path / "shared-store").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    raw = short(fdu_config, report_to=["mlflow"], mlflow_experiment="fdu")
    runner.train(load_config(raw=raw), quiet=True)
    client, saved = read_mlflow(Path(fdu_config["output_dir"]))
    assert saved["tracking_uri"] == store and (tmp_path / "shared-store").is_dir()
    assert client.get_experiment_by_name("fdu").experiment_id == client.get_run(saved["run_id"]).info.experiment_id


# ----------------------------------------------------------------------------- logging


def test_messages_go_to_the_polytask_logger(fdu_config, caplog):
    runner.train(load_config(raw=short(fdu_config)), quiet=True)
    with caplog.at_level(logging.INFO, logger="polytask"):
        runner.train(load_config(raw=short(fdu_config, max_steps=6)), quiet=True, resume=True)
    [record] = [r for r in caplog.records if r.getMessage().startswith("resumed ")]
    assert record.name == "polytask.training.resume" and record.levelno == logging.INFO
    assert record.getMessage() == f"resumed {fdu_config['output_dir']} at step 4"


def test_a_library_caller_can_silence_polytask(fdu_config, tmp_path, caplog):
    raw = short(fdu_config, progress=True)
    caplog.set_level(logging.INFO)                     # the root logger and the capturing handler
    runner.train(load_config(raw=raw), quiet=False)
    assert any(m.startswith("step 2/4: dev mean") for m in caplog.messages)
    caplog.clear()
    polytask_logger = logging.getLogger("polytask")
    polytask_logger.setLevel(logging.ERROR)
    try:
        runner.train(load_config(raw={**raw, "output_dir": str(tmp_path / "second")}), quiet=False)
    finally:
        polytask_logger.setLevel(logging.NOTSET)
    assert caplog.records == []


def test_no_print_outside_command_output():
    """Messages go through the ``polytask`` logger; ``print`` is left for what a command outputs
    (tables, reports, aggregates) on stdout."""
    allowed = {
        ("cli.py", "print(format_trials(summary))"),
        ("cli.py", "print(format_metric_table({args.split: scores}, list(scores)))"),
        ("cli.py", "print(format_report(report))"),
        ("runner.py", 'print(f"layer {layer}: " + " | ".join(", ".join(g) for g in groups))'),
        ("runner.py", 'print(format_metric_table({"dev": dev_metrics, "test": test_metrics}, list(tasks)))'),
        ("sweep.py", "print(format_aggregate(agg))"),
        ("sweep.py", 'print((spec.output_dir / "report" / "report.md").read_text(encoding="utf-8"))'),
    }
    found = set()
    for path in SRC.rglob("*.py"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if re.search(r"\bprint\(", line) and not line.lstrip().startswith("#"):
                found.add((path.name, line.strip()))
    assert found - allowed == set()
    assert "file=sys.stderr" not in "".join(line for _, line in found)


def cli_train(raw: dict, tmp_path: Path, capsys, *flags: str) -> str:
    rc = main(["train", str(write_yaml(raw, tmp_path / "exp.yaml")), *flags])
    err = capsys.readouterr().err
    assert rc == 0, err
    return err


def test_progress_off_a_terminal_is_one_line_per_evaluation(fdu_config, tmp_path, capsys):
    err = cli_train(short(fdu_config, progress=True), tmp_path, capsys)
    assert "\r" not in err
    lines = [line for line in err.splitlines() if line.startswith("[polytask] step ")]
    assert [line.split(":")[0] for line in lines] == ["[polytask] step 2/4", "[polytask] step 4/4"]
    assert re.fullmatch(r"\[polytask\] step 2/4: dev mean \d+\.\d\d, best \d+\.\d\d, \d+ tokens/s", lines[0])


def test_quiet_shows_warnings_only_and_verbose_shows_info(fdu_config, tmp_path, capsys):
    raw = short(fdu_config, progress=True)
    assert cli_train(raw, tmp_path, capsys, "--quiet") == ""
    raw["trainer"]["max_steps"] = 6
    err = cli_train(raw, tmp_path, capsys, "--resume", "-v")
    assert f"[polytask] resumed {fdu_config['output_dir']} at step 4" in err
    assert "[polytask] step 6/6: dev mean" in err


def test_progress_on_a_terminal_draws_a_bar(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    class Loop:
        step = 0

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    bar = ProgressBar(3)
    bar.on_train_start(Loop())
    for _ in range(3):
        bar.on_step_end(Loop())
    bar.on_train_end(Loop(), {})
    assert "\r" in terminal.getvalue() and "3/3" in terminal.getvalue()
