"""The trainer's callbacks: the order of the hooks, an interrupt that saves ``last/`` and resumes
exactly, the TensorBoard mirror (with a stand-in for TensorBoard's writer; off unless
``trainer.report_to`` lists it) and the log line for a change of structure."""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import types
from pathlib import Path

import pytest
import torch

import polytask.runner as runner
from polytask.config import load_config
from polytask.training.callbacks import Callback, ProgressBar
from polytask.training.checkpoint import read_weights
from polytask.training.trainer import Trainer


def read_metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def train_with(raw: dict, extra: Callback) -> dict:
    """``runner.train`` with ``extra`` called after the default callbacks."""
    class ExtendedTrainer(Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.callbacks.callbacks.append(extra)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner, "Trainer", ExtendedTrainer)
        return runner.train(load_config(raw=raw), quiet=True)


class HookRecorder(Callback):
    def __init__(self):
        self.calls: list[tuple] = []

    def on_setup(self, trainer, resume):
        self.calls.append(("setup", trainer.step, resume))

    def on_train_start(self, trainer):
        self.calls.append(("train_start", trainer.step))

    def on_step_end(self, trainer):
        self.calls.append(("step_end", trainer.step))

    def on_evaluate(self, trainer, record):
        self.calls.append(("evaluate", record["step"], "best_dev_mean" in record))

    def on_log(self, trainer, record):
        self.calls.append(("log", record["step"], record["event"], "tokens_per_s" in record))

    def on_checkpoint(self, trainer):
        saved = json.loads((trainer.run_dir / "last/state.json").read_text())["step"] \
            if (trainer.run_dir / "last/state.json").is_file() else None
        self.calls.append(("checkpoint", trainer.step, saved))

    def on_train_end(self, trainer, summary):
        self.calls.append(("train_end", summary["steps"], summary["best_step"]))


def test_hooks_come_in_the_order_of_the_run(fdu_config):
    """Each evaluation is judged (the selection has added its field), then logged complete, then
    checkpointed; the summary carries the selection's best step when the last hook sees it."""
    recorder = HookRecorder()
    raw = {**fdu_config, "trainer": {**fdu_config["trainer"], "max_steps": 4, "eval_every": 2}}
    results = train_with(raw, recorder)
    best = results["best_step"]
    assert recorder.calls == [
        ("setup", 0, False), ("train_start", 0),
        ("step_end", 1), ("step_end", 2), ("evaluate", 2, True), ("log", 2, "eval", True), ("checkpoint", 2, 2),
        ("step_end", 3), ("step_end", 4), ("evaluate", 4, True), ("log", 4, "eval", True), ("checkpoint", 4, 4),
        ("train_end", 4, best)]


class SigtermAt(Callback):
    """Sends this process SIGTERM after step ``step``."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, trainer):
        if trainer.step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_saves_last_and_the_resumed_run_ends_as_an_uninterrupted_one(fdu_config, tmp_path, caplog):
    raw = {**fdu_config, "model": {**fdu_config["model"], "dropout": 0.2},
           "trainer": {**fdu_config["trainer"], "max_steps": 20, "eval_every": 10}}
    reference = runner.train(load_config(raw=raw), quiet=True)
    stopped = {**raw, "output_dir": str(tmp_path / "stopped")}
    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        train_with(stopped, SigtermAt(7))
    assert signal.getsignal(signal.SIGTERM) is handler                 # the handler is put back
    assert "interrupted at step 7; checkpoint saved" in caplog.text
    assert json.loads((tmp_path / "stopped/last/state.json").read_text())["step"] == 7
    resumed = runner.train(load_config(raw=stopped), quiet=True, resume=True)
    assert resumed["dev"] == reference["dev"] and resumed["best_step"] == reference["best_step"]
    ref_w = read_weights(tmp_path / "run/last/model.safetensors")
    res_w = read_weights(tmp_path / "stopped/last/model.safetensors")
    for name in ref_w:
        assert torch.equal(ref_w[name], res_w[name]), name
    dev_records = lambda run: [r["dev"] for r in read_metrics(tmp_path / run)]  # noqa: E731
    assert dev_records("run") == dev_records("stopped")


class FakeSummaryWriter:
    """Records what TensorBoard's SummaryWriter would write."""
    writers: list["FakeSummaryWriter"] = []

    def __init__(self, log_dir: str):
        self.log_dir, self.scalars, self.flushes = log_dir, [], 0
        FakeSummaryWriter.writers.append(self)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.append((tag, value, step))

    def flush(self) -> None:
        self.flushes += 1

    def close(self) -> None:
        self.closed = True


def test_tensorboard_mirrors_each_record_when_installed(fdu_config, monkeypatch):
    module = types.ModuleType("torch.utils.tensorboard")
    module.SummaryWriter = FakeSummaryWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", module)
    FakeSummaryWriter.writers.clear()
    raw = {**fdu_config, "trainer": {**fdu_config["trainer"], "max_steps": 4, "eval_every": 2,
                                     "report_to": ["tensorboard"]}}
    runner.train(load_config(raw=raw), quiet=True)
    run = Path(fdu_config["output_dir"])
    [writer] = FakeSummaryWriter.writers
    assert writer.log_dir == str(run / "tensorboard")
    expected = []
    for r in read_metrics(run):
        expected += [(f"dev/{t}", v, r["step"]) for t, v in r["dev"].items()]
        expected += [(f"train_loss/{t}", v, r["step"]) for t, v in r["train_loss"].items()]
        expected += [(key, r[key], r["step"]) for key in ("dev_mean", "lr", "tokens_per_s")]
    assert writer.scalars == expected and writer.flushes == 2 and writer.closed


def test_tensorboard_is_off_unless_listed(fdu_config):
    # before: on whenever TensorBoard was installed (it is, here), with no way to turn it off
    raw = {**fdu_config, "trainer": {**fdu_config["trainer"], "max_steps": 2, "eval_every": 2}}
    runner.train(load_config(raw=raw), quiet=True)
    assert not (Path(fdu_config["output_dir"]) / "tensorboard").exists()


def test_progress_logs_a_change_of_structure(caplog):
    with caplog.at_level(logging.INFO, logger="polytask"):
        ProgressBar(10).on_log(None, {"step": 40, "event": "structure", "layer": 2, "groups": [["a", "c"], ["b"]]})
    assert caplog.messages == ["step 40: layer 2 now branches as [['a', 'c'], ['b']]"]
