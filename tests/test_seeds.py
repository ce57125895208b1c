"""Seeds as an axis: ``polytask train --seeds`` trains one run directory per seed in parallel
processes, skips finished seeds, resumes interrupted ones, and aggregates them; ``polytask sweep``
does it for several systems and reports them."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import polytask
from polytask.cli import main
from polytask.config import ConfigError, load_config
from polytask.runner import train
from polytask.sweep import load_sweep, parse_seeds, train_seeds

from conftest import InterruptAt, make_raw_config, write_yaml


def test_parse_seeds():
    assert parse_seeds("1,2, 3") == [1, 2, 3]
    for bad in ("1,x", "", "2,2"):
        with pytest.raises(ConfigError, match="--seeds"):
            parse_seeds(bad)


def test_parallel_seeds_resume_to_the_uninterrupted_aggregate(tmp_path: Path, data_dir: Path):
    raw = make_raw_config(data_dir, tmp_path / "reference", max_steps=20, eval_every=5)
    raw["model"]["dropout"] = 0.2          # the resumed run must restore the RNG too
    reference, complete = train_seeds(load_config(raw=raw), [1, 2], jobs=2, quiet=True)
    assert complete and reference["seeds"] == [1, 2]

    cfg = load_config(raw={**raw, "output_dir": str(tmp_path / "system")})
    with pytest.raises(KeyboardInterrupt):            # seed 2 stopped by Ctrl-C mid-way, as its job would be
        train(dataclasses.replace(cfg, seed=2, output_dir=str(tmp_path / "system" / "seed-2")), quiet=True,
              callbacks=[InterruptAt(7)])
    seed2 = tmp_path / "system" / "seed-2"
    assert json.loads((seed2 / "last" / "state.json").read_text())["step"] == 7
    assert not (seed2 / "results.json").exists()

    resumed, complete = train_seeds(cfg, [1, 2], jobs=2, quiet=True)
    assert complete
    assert "resumed" in (seed2 / "train.log").read_text() and "at step 7" in (seed2 / "train.log").read_text()
    for key in ("dev", "test", "dev_avg", "test_avg", "average", "steps", "best_step"):
        assert resumed[key] == reference[key], key
    for seed in (1, 2):
        for name in ("results.json", "predictions/test.jsonl"):
            ours = (tmp_path / "system" / f"seed-{seed}" / name).read_text()
            theirs = (tmp_path / "reference" / f"seed-{seed}" / name).read_text()
            if name == "results.json":
                keep = ("dev_metrics", "test_metrics", "best_step", "best_dev_mean", "steps")
                ours, theirs = ({k: json.loads(t)[k] for k in keep} for t in (ours, theirs))
            assert ours == theirs, (seed, name)

    # again: both seeds finished, nothing retrains; other settings for finished seeds are refused
    stamps = {s: (tmp_path / "system" / f"seed-{s}" / "results.json").stat().st_mtime_ns for s in (1, 2)}
    again, complete = train_seeds(cfg, [1, 2], jobs=2, quiet=True)
    assert complete and again["test_avg"] == reference["test_avg"]
    assert stamps == {s: (tmp_path / "system" / f"seed-{s}" / "results.json").stat().st_mtime_ns for s in (1, 2)}
    with pytest.raises(ConfigError, match=r"trainer\.lr: 0\.01 -> 0\.02"):
        train_seeds(dataclasses.replace(cfg, trainer=dataclasses.replace(cfg.trainer, lr=0.02)), [1], quiet=True)
    assert yaml.safe_load((tmp_path / "system" / "config.yaml").read_text())["trainer"]["lr"] == 0.01
    table = (tmp_path / "system" / "seeds.md").read_text()
    assert "2 seeds (1, 2)" in table and f"{reference['test_avg']['mean']:.2f}" in table


def test_ctrl_c_stops_every_seed_at_a_checkpoint(tmp_path: Path, data_dir: Path):
    raw = make_raw_config(data_dir, tmp_path / "system", max_steps=3000, eval_every=5)
    config = write_yaml(raw, tmp_path / "experiment.yaml")
    env = {**os.environ, "PYTHONPATH": str(Path(polytask.__file__).resolve().parents[1])}
    # Ctrl-C as at a terminal: a test runner started in the background (``cmd &``) passes SIGINT on
    # ignored, and Python then keeps it ignored, as it should for a user's ``nohup polytask ... &``
    proc = subprocess.Popen([sys.executable, "-m", "polytask.cli", "train", str(config), "--seeds", "1,2",
                             "--jobs", "2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    states = [tmp_path / "system" / f"seed-{s}" / "last" / "state.json" for s in (1, 2)]
    deadline = time.monotonic() + 120
    while not all(s.is_file() for s in states) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    for seed, state in zip((1, 2), states):
        run = state.parent.parent
        step = json.loads(state.read_text())["step"]
        assert 0 < step < 3000 and not (run / "results.json").exists()
        assert f"interrupted at step {step}; checkpoint saved" in (run / "train.log").read_text()
        assert f"{run}: stopped at a checkpoint" in err


def test_sweep_trains_every_system_and_seed_then_reports(tmp_path: Path, data_dir: Path):
    base = write_yaml(make_raw_config(data_dir, tmp_path / "unused", max_steps=10, eval_every=5),
                      tmp_path / "base.yaml")
    sweep = {"seeds": [1], "output_dir": str(tmp_path / "sweep"),
             "systems": {"hard": {"config": str(base)},
                         "single": {"config": str(base), "overrides": ["model.architecture=single_task"]}}}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    assert main(["sweep", str(path), "--jobs", "2", "--quiet"]) == 0
    for name in ("hard", "single"):
        agg = json.loads((tmp_path / "sweep" / name / "seeds.json").read_text())
        assert agg["seeds"] == [1] and agg["architecture"] == ("hard_sharing" if name == "hard" else "single_task")
    report = (tmp_path / "sweep" / "report" / "report.md").read_text()
    assert "**hard vs single**" in report and "paired approximate randomisation over 40 test examples" in report
    assert "Single-task baseline" in report

    bad = dict(sweep, systems={"x": {"config": str(base), "overides": []}})
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match=r"systems\.x\.overides: unknown key"):
        load_sweep(path)
    path.write_text(yaml.safe_dump(dict(sweep, systems={"x": {"config": str(base), "overrides": ["trainer.lrr=1"]}})))
    with pytest.raises(ConfigError, match=r"systems\.x: .*trainer\.lrr"):
        load_sweep(path)
