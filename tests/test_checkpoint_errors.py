"""Errors while writing or reading a run directory: one ``polytask: error:`` line naming the path
and what was being written, no partial ``*.tmp`` directory left behind, and a refused pickle
named as such."""
from __future__ import annotations

import errno
import os
import resource
from pathlib import Path

import pytest
import torch

import polytask.runner as runner
from polytask.cli import main
from polytask.training import checkpoint as ckpt
from polytask.training.callbacks import Callback
from polytask.training.trainer import Trainer

from conftest import write_yaml


class FileSizeLimit:
    """``limit(n)``: files this process writes may grow to ``n`` bytes (EFBIG beyond, as a full
    disk gives ENOSPC); ``lift()`` restores the limit. The limit covers the whole process, pytest's
    own output included when it goes to a file, so a test lifts it as soon as the failing write is
    done, before pytest reports the test."""

    def __init__(self):
        self.soft, self.hard = resource.getrlimit(resource.RLIMIT_FSIZE)

    def __call__(self, n: int) -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (n, self.hard))

    def lift(self) -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.soft, self.hard))


@pytest.fixture
def file_size_limit():
    limit = FileSizeLimit()
    yield limit
    limit.lift()


def cli_train_with(callback, fdu_config, tmp_path, capsys, monkeypatch, *extra) -> tuple[int, str]:
    class WithCallback(Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.callbacks.callbacks.insert(0, callback)

    monkeypatch.setattr(runner, "Trainer", WithCallback)
    raw = {**fdu_config, "trainer": {**fdu_config["trainer"], "max_steps": 20, "eval_every": 10}}
    rc = main(["train", str(write_yaml(raw, tmp_path / "exp.yaml")), "--quiet", *extra])
    return rc, capsys.readouterr().err


def assert_one_line(rc: int, err: str, *needles: str) -> None:
    assert rc != 0 and err.startswith("polytask: error: ") and len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, (needle, err)


def no_tmp_left(run: Path) -> bool:
    return not [p for p in run.rglob("*") if p.name.endswith(".tmp")]


def test_disk_full_while_writing_a_checkpoint_names_the_path_and_leaves_no_tmp(
        fdu_config, tmp_path, capsys, monkeypatch, file_size_limit):
    class FillDisk(Callback):
        def on_step_end(self, trainer):
            if trainer.step == 10:                  # the evaluation after step 10 writes best/ first
                file_size_limit(1024)

    rc, err = cli_train_with(FillDisk(), fdu_config, tmp_path, capsys, monkeypatch)
    file_size_limit.lift()
    run = tmp_path / "run"
    assert_one_line(rc, err, f"{run / 'best' / 'model.safetensors'}", "the model weights of best/",
                    "File too large")
    assert no_tmp_left(run) and not (run / "best").exists()


def test_disk_full_while_writing_trainer_state_names_the_file(tmp_path, file_size_limit):
    target = tmp_path / "last"

    def write(tmp: Path) -> None:
        ckpt.write_json(tmp / "state.json", {"step": 1})
        file_size_limit(256)
        ckpt.save_trainer_state(tmp / "trainer.pt", {"optimizer": torch.zeros(1000)})

    try:
        with pytest.raises(ckpt.CheckpointError, match=f"{target / 'trainer.pt'}: could not write the trainer "
                                                        "state of last/: .*File too large"):
            ckpt.atomic_dir_write(target, write, "last/")
    finally:
        file_size_limit.lift()
    assert not target.exists() and no_tmp_left(tmp_path)


def test_read_only_run_directory_names_the_path(fdu_config, tmp_path, capsys, monkeypatch):
    """A directory that refuses writes (chmod 555; as root, who may write anyway, the refusal of
    the operating system is stood in for)."""
    run = tmp_path / "run"
    real_mkdir = Path.mkdir

    def read_only_mkdir(self, *args, **kwargs):
        if self.parent == run and os.geteuid() == 0:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    class ReadOnly(Callback):
        def on_step_end(self, trainer):
            if trainer.step == 10:
                run.chmod(0o555)
                monkeypatch.setattr(Path, "mkdir", read_only_mkdir)

    try:
        rc, err = cli_train_with(ReadOnly(), fdu_config, tmp_path, capsys, monkeypatch)
    finally:
        run.chmod(0o755)
    assert_one_line(rc, err, f"{run / 'best'}", "Permission denied")
    assert no_tmp_left(run)


def test_unwritable_output_directory_names_the_path(fdu_config, tmp_path, capsys):
    parent = tmp_path / "ro"
    parent.mkdir()
    (parent / "run").write_text("a file where the run directory would go")
    raw = {**fdu_config, "output_dir": str(parent / "run" / "sub")}
    rc = main(["train", str(write_yaml(raw, tmp_path / "exp.yaml")), "--quiet"])
    assert_one_line(rc, capsys.readouterr().err, str(parent / "run" / "sub"), "run directory")


class Unsafe:
    """Anything but plain tensors and containers: torch.load(weights_only=True) refuses it."""


def test_refused_pickle_in_trainer_state(fdu_config, tmp_path, capsys):
    raw = {**fdu_config, "trainer": {**fdu_config["trainer"], "max_steps": 4, "eval_every": 2}}
    config = write_yaml(raw, tmp_path / "exp.yaml")
    assert main(["train", str(config), "--quiet"]) == 0
    state = tmp_path / "run" / "last" / "trainer.pt"
    torch.save({"optimizer": Unsafe()}, state)            # unpickling it would run this module's code
    capsys.readouterr()
    rc = main(["train", str(config), "--quiet", "--resume"])
    assert_one_line(rc, capsys.readouterr().err, f"checkpoint state refused: not plain tensors ({state})")
