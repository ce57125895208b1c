"""A run killed with SIGKILL and resumed ends exactly like an uninterrupted run with the same seed."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from polytask.config import load_config
from polytask.runner import train
from polytask.training.checkpoint import read_weights

WORDS = {"a": ("good", "bad"), "b": ("yes", "no")}
FILLER = "the a of movie item it was is this that very quite".split()


def write_task(root: Path, name: str, n_train: int, n_test: int, seed: int) -> None:
    import random
    rng = random.Random(seed)
    pos, neg = WORDS[name]

    def line() -> str:
        label = rng.randint(0, 1)
        words = rng.sample(FILLER, rng.randint(2, 8)) + [pos if label else neg]
        rng.shuffle(words)
        return f"{label}\t{' '.join(words)}\n"

    (root / f"{name}.train").write_text("".join(line() for _ in range(n_train)))
    (root / f"{name}.test").write_text("".join(line() for _ in range(n_test)))


def make_config(tmp: Path, out: str, architecture: str, select: str = "mean",
                trainer: dict | None = None) -> Path:
    data = tmp / "data"
    data.mkdir(exist_ok=True)
    for i, name in enumerate(WORDS):
        write_task(data, name, 80, 20, i)
    raw = {"seed": 3, "output_dir": str(tmp / out), "data_dir": str(data),
           "task_defaults": {"format": "fdu", "train": "{name}.train", "test": "{name}.test",
                             "dev_split": {"policy": "tail", "size": 16}},
           "tasks": [{"name": "a"}, {"name": "b"}],
           "data": {"batch_size": 8, "eval_batch_size": 16},
           "model": {"architecture": architecture, "embedding_dim": 16, "dropout": 0.2,
                     "encoder": {"type": "bilstm", "hidden_dim": 8}},
           "trainer": {"max_steps": 60, "eval_every": 10, "lr": 0.01, "progress": False,
                       "select": select, "patience": 4 if select == "per_task" else None,
                       "schedule": "round_robin", **(trainer or {})}}
    path = tmp / f"{out}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


KILLER = textwrap.dedent("""
    import os, signal, sys
    from polytask.config import load_config
    from polytask.data import batching
    from polytask.runner import train

    kill_at = int(sys.argv[2])
    calls = {"n": 0}
    original = batching.TaskBatchIterator.__next__

    def next_or_die(self):
        calls["n"] += 1
        if calls["n"] == kill_at:          # a crash between two checkpoints
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self)

    batching.TaskBatchIterator.__next__ = next_or_die
    train(load_config(sys.argv[1]), quiet=True)
""")


@pytest.mark.parametrize("architecture,select,trainer,checkpoint", [
    ("adversarial_shared_private", "mean", {}, 30),
    ("single_task", "per_task", {}, 30),
    # a batch of both tasks per step (2 batches a step: the crash falls in step 18), DWA weights
    ("hard_sharing", "mean", {"step_mode": "all_tasks", "weighting": "dwa",
                              "weighting_options": {"window": 3}}, 10),
])
def test_sigkill_then_resume_matches_uninterrupted(tmp_path: Path, architecture: str, select: str,
                                                   trainer: dict, checkpoint: int):
    reference_cfg = make_config(tmp_path, "reference", architecture, select, trainer)
    reference = train(load_config(reference_cfg), quiet=True)

    killed_cfg = make_config(tmp_path, "killed", architecture, select, trainer)
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    proc = subprocess.run([sys.executable, str(script), str(killed_cfg), "35"], capture_output=True,
                          text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    state = json.loads((tmp_path / "killed" / "last" / "state.json").read_text())
    assert state["step"] == checkpoint               # the last checkpoint before the crash
    assert not (tmp_path / "killed" / "results.json").exists()

    resumed = train(load_config(killed_cfg), resume=True, quiet=True)
    for key in ("dev", "test", "steps", "best_dev_mean", "best_step"):
        assert resumed[key] == reference[key], key
    ref_w = read_weights(tmp_path / "reference" / "best" / "model.safetensors")
    res_w = read_weights(tmp_path / "killed" / "best" / "model.safetensors")
    assert ref_w.keys() == res_w.keys()
    for name in ref_w:
        assert ref_w[name].equal(res_w[name]), name
    ref_log = (tmp_path / "reference" / "metrics.jsonl").read_text().splitlines()
    res_log = (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
    drop = lambda rec: {k: v for k, v in json.loads(rec).items() if k != "tokens_per_s"}
    assert [drop(r) for r in ref_log] == [drop(r) for r in res_log]


def test_train_into_existing_run_without_resume_fails(tmp_path: Path):
    cfg = make_config(tmp_path, "run", "hard_sharing")
    train(load_config(cfg, ["trainer.max_steps=10"]), quiet=True)
    with pytest.raises(FileExistsError, match="--resume"):
        train(load_config(cfg, ["trainer.max_steps=10"]), quiet=True)
