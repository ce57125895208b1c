"""One run per directory: a run holds an advisory lock on ``run.lock`` in its directory for its
whole life; a second run there fails at once naming the holder's PID; a lock left by a killed
process does not block."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from polytask.cli import main
from polytask.config import load_config
from polytask.data.readers import DataError
from polytask.runner import train
from polytask.training.callbacks import Callback
from polytask.training.lock import RunLock, RunLockedError

from conftest import write_yaml
from run_hooks import train_with

HOLDER = ("import sys, time\n"
          "from polytask.training.lock import RunLock\n"
          "RunLock(sys.argv[1]).acquire()\n"
          "print('locked', flush=True)\n"
          "time.sleep(120)\n")


@pytest.fixture
def holder(fdu_config):
    """Another process that holds the lock of the run directory."""
    run = Path(fdu_config["output_dir"])
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    proc.stdout.close()


def test_second_run_on_a_locked_directory_fails_at_once_naming_the_holder_pid(fdu_config, holder, tmp_path, capsys):
    run = Path(fdu_config["output_dir"])
    for resume in (False, True):
        with pytest.raises(RunLockedError, match=f"in use by process {holder.pid}"):
            train(load_config(raw=fdu_config), quiet=True, resume=resume)
    assert sorted(p.name for p in run.iterdir()) == ["run.lock"]       # nothing else was written
    rc = main(["train", str(write_yaml(fdu_config, tmp_path / "exp.yaml")), "--quiet", "--resume"])
    err = capsys.readouterr().err
    assert rc != 0 and err.startswith("polytask: error: ") and f"process {holder.pid}" in err
    assert len(err.splitlines()) == 1


def test_stale_lock_from_a_killed_process_does_not_block(fdu_config, holder):
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    run = Path(fdu_config["output_dir"])
    assert (run / "run.lock").read_text().strip() == str(holder.pid)       # the stale lock file
    results = train(load_config(raw={**fdu_config, "trainer": {**fdu_config["trainer"], "max_steps": 4}}),
                    quiet=True)
    assert results["steps"] == 4


def test_the_lock_is_held_for_the_whole_run_and_released_after(fdu_config):
    run = Path(fdu_config["output_dir"])

    class TryLock(Callback):
        refused: list[str] = []

        def on_step_end(self, trainer):
            with pytest.raises(RunLockedError) as caught:
                RunLock(run).acquire()
            self.refused.append(str(caught.value))

    raw = {**fdu_config, "trainer": {**fdu_config["trainer"], "max_steps": 2, "eval_every": 2}}
    train_with(raw, TryLock())
    assert len(TryLock.refused) == 2
    lock = RunLock(run)
    lock.acquire()                                     # free again once the run has ended
    lock.release()


def test_a_run_that_fails_before_writing_leaves_no_directory(fdu_config, tmp_path):
    raw = {**fdu_config, "tasks": [{"name": "a", "train": "fdu/missing.train"}]}
    with pytest.raises(DataError, match="missing.train"):
        train(load_config(raw=raw), quiet=True)
    assert not Path(fdu_config["output_dir"]).exists()
