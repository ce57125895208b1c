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


# ----------------------------------------------------------------------------- signals
# SIGTERM and SIGINT stop the run at the end of the step they land in (its checkpoint is that
# step's exact state); SIGKILL leaves the last evaluation's checkpoint. Either way --resume ends
# with the same metrics and bit-identical weights as an uninterrupted run with the same seed.

from conftest import make_raw_config, write_fdu_dataset  # noqa: E402
from run_hooks import SignalAt, train_with  # noqa: E402

STEP_POINTS = [("after_draw", 7), ("after_backward", 7), ("after_optimizer_step", 7),
               ("mid_evaluation", 10), ("mid_checkpoint", 10)]


def signal_config(root: Path, out: str) -> dict:
    raw = make_raw_config(root / "data", root / out, max_steps=20, eval_every=10)
    raw["model"]["dropout"] = 0.2                    # the torch RNG matters
    raw["trainer"]["weighting"] = "rlw"              # so does the weighting's own state
    return raw


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """One uninterrupted run, the reference of every signal test: (root, results)."""
    root = tmp_path_factory.mktemp("signals")
    write_fdu_dataset(root)
    return root, train(load_config(raw=signal_config(root, "reference")), quiet=True)


def assert_same_run(root: Path, reference: dict, run: str, resumed: dict) -> None:
    for key in ("dev", "test", "steps", "best_dev_mean", "best_step"):
        assert resumed[key] == reference[key], key
    for weights in ("best", "last"):
        ref_w = read_weights(root / "reference" / weights / "model.safetensors")
        res_w = read_weights(root / run / weights / "model.safetensors")
        assert ref_w.keys() == res_w.keys()
        for name in ref_w:
            assert ref_w[name].equal(res_w[name]), (weights, name)
    drop = lambda rec: {k: v for k, v in json.loads(rec).items() if k != "tokens_per_s"}  # noqa: E731
    ref_log = (root / "reference" / "metrics.jsonl").read_text().splitlines()
    res_log = (root / run / "metrics.jsonl").read_text().splitlines()
    assert [drop(r) for r in res_log] == [drop(r) for r in ref_log]


def interrupt_and_resume(uninterrupted, signum: int, point: str, step: int, times: int = 1) -> int:
    root, reference = uninterrupted
    run = f"{signal.Signals(signum).name}-{point}-{times}"
    raw = signal_config(root, run)
    with pytest.raises(KeyboardInterrupt):
        train_with(raw, SignalAt(signum, step, point, times))
    saved = json.loads((root / run / "last" / "state.json").read_text())["step"]
    assert not list((root / run).glob("*.tmp"))
    resumed = train(load_config(raw=raw), resume=True, quiet=True)
    assert_same_run(root, reference, run, resumed)
    return saved


@pytest.mark.parametrize("point,step", STEP_POINTS)
def test_sigterm_then_resume_is_exact_wherever_the_signal_lands(uninterrupted, point, step):
    assert interrupt_and_resume(uninterrupted, signal.SIGTERM, point, step) == step


@pytest.mark.parametrize("point,step", STEP_POINTS)
def test_sigint_then_resume_is_exact_wherever_the_signal_lands(uninterrupted, point, step):
    assert interrupt_and_resume(uninterrupted, signal.SIGINT, point, step) == step


def test_a_second_sigint_stops_at_once_and_resume_is_still_exact(uninterrupted):
    """Ctrl-C twice: no wait for the step to end and no checkpoint; last/ keeps step 10's."""
    assert interrupt_and_resume(uninterrupted, signal.SIGINT, "after_draw", 13, times=2) == 10


@pytest.mark.parametrize("point,step", [("after_backward", 13), ("mid_checkpoint", 20)])
def test_sigkill_then_resume_is_exact_wherever_the_signal_lands(uninterrupted, point, step):
    root, reference = uninterrupted
    run = f"SIGKILL-{point}"
    raw = signal_config(root, run)
    config = root / f"{run}.json"
    config.write_text(json.dumps(raw))
    hooks = Path(__file__).with_name("run_hooks.py")
    proc = subprocess.run([sys.executable, str(hooks), str(config), "SIGKILL", str(step), point],
                          capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert json.loads((root / run / "last" / "state.json").read_text())["step"] == 10
    resumed = train(load_config(raw=raw), resume=True, quiet=True)
    assert_same_run(root, reference, run, resumed)


@pytest.mark.parametrize("signame,status", [("SIGTERM", 143), ("SIGINT", 130)])
def test_the_cli_exits_with_128_plus_the_signal_after_saving(uninterrupted, monkeypatch, capsys, signame, status):
    import polytask.runner as runner
    from polytask.cli import main
    from polytask.training.trainer import Trainer
    root, _ = uninterrupted
    raw = signal_config(root, f"cli-{signame}")

    class Signalled(Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.callbacks.callbacks.append(SignalAt(getattr(signal, signame), 3, "after_backward"))

    monkeypatch.setattr(runner, "Trainer", Signalled)
    config = root / f"cli-{signame}.yaml"
    config.write_text(yaml.safe_dump(raw))
    assert main(["train", str(config), "--quiet"]) == status
    assert "interrupted at step 3; checkpoint saved" in capsys.readouterr().err
