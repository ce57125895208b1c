"""The newcomer's path (issue 23, item 8): what a new user meets following the README, on tiny
data: inspect, report, serve, and training on a machine without the data (a local mirror stands
in for the network)."""
from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from polytask.cli import main
from polytask.data import download as dl

from conftest import make_lines, make_raw_config, write_yaml

ROOT = Path(__file__).resolve().parents[1]


def run_cli(argv, capsys) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


@pytest.fixture
def tiny_run(fdu_config, tmp_path, capsys) -> Path:
    fdu_config["trainer"].update(max_steps=4, eval_every=4)
    rc, _, err = run_cli(["train", write_yaml(fdu_config, tmp_path / "exp.yaml"), "--quiet"], capsys)
    assert rc == 0, err
    return tmp_path / "run"


# ----------------------------------------------------------------------------- inspect


def test_inspect_with_an_unknown_task_gives_a_full_message(tiny_run, capsys, monkeypatch):
    # before: "polytask: error: T"
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO("good film\n"))
    rc, out, err = run_cli(["inspect", tiny_run, "--task", "T"], capsys)
    assert rc == 2 and out == ""
    assert err == "polytask: error: unknown task 'T': this run has the tasks a, b (--task NAME)\n"


def test_inspect_on_hard_sharing_says_it_exposes_nothing(tiny_run, capsys, tmp_path):
    # before: {"text": "good film", "tokens": [...], "inspect": {}} and exit 0
    texts = tmp_path / "texts.txt"
    texts.write_text("good film\nbad plot\n")
    rc, out, err = run_cli(["inspect", tiny_run, "--task", "a", "--input", texts], capsys)
    assert rc == 2 and out == ""
    rc, _, _ = run_cli(["inspect", tiny_run, "--task", "a", "--input", texts, "--output", tmp_path / "o.jsonl"], capsys)
    assert rc == 2 and not (tmp_path / "o.jsonl").exists()
    assert err.startswith("polytask: error: hard_sharing exposes nothing to inspect per example")
    assert "structure.json" in err and err.count("\n") == 1


# ----------------------------------------------------------------------------- report


def test_report_with_a_missing_run_directory_says_what_to_train(tiny_run, capsys, tmp_path, monkeypatch):
    # before: "runs/fdu-mtl/single-task: not a polytask run directory (no metrics.jsonl)"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs" / "toy").mkdir(parents=True)
    (tmp_path / "configs" / "toy" / "single-task.yaml").write_text("output_dir: runs/toy/single-task\n")
    rc, _, err = run_cli(["report", "runs/toy/single-task", tiny_run, "--output", "rep"], capsys)
    assert rc == 2
    assert err == ("polytask: error: runs/toy/single-task: no such run directory; train it first: polytask train "
                   "configs/toy/single-task.yaml (with the --data-dir of your other runs)\n")
    rc, _, err = run_cli(["report", "runs/elsewhere", tiny_run], capsys)
    assert rc == 2 and "runs/elsewhere: no such run directory; train it first: polytask train CONFIG " \
                       "--output-dir runs/elsewhere" in err


# ----------------------------------------------------------------------------- serve


def test_serve_prints_ready_once_it_listens(tiny_run):
    # before: one "[polytask] serving ... on URL" line, and the README's `serve ... &` followed at once
    # by `curl` was refused while the run loaded; now "loading", then "ready" once the socket listens
    # (the README waits for /health), and the first request after it is answered
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "polytask.cli", "serve", str(tiny_run), "--port", "0"],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("[polytask] ready:"):
                break
        assert lines[0].startswith(f"[polytask] loading {tiny_run}")
        ready = re.match(r"\[polytask\] ready: serving .* on (http://127\.0\.0\.1:\d+) \(page /, API docs /docs, "
                         r"GET /health", lines[-1])
        assert ready, lines
        with urllib.request.urlopen(ready.group(1) + "/health", timeout=10) as response:
            assert json.loads(response.read())["status"] == "ok"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# ----------------------------------------------------------------------------- a machine without the data


@pytest.fixture
def fresh_machine(tmp_path, monkeypatch) -> dict:
    """No data directory anywhere (a fresh user cache), and FDU-MTL's pinned source replaced by a
    local mirror of two tiny domains ``a`` and ``b`` with their own checksums."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for task in ("a", "b"):
        for split, n, seed in (("train", 60, 1), ("test", 20, 2)):
            (mirror / f"{task}.task.{split}").write_text(
                "".join(f"{label}\t{text}\n" for label, text in make_lines(task, n, seed)))
    hashes = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in mirror.iterdir()}
    monkeypatch.setattr(dl.DATASETS["fdu-mtl"], "sha256", hashes)
    monkeypatch.setattr(dl.DATASETS["fdu-mtl"], "base_url", str(mirror))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("POLYTASK_DATA", raising=False)
    raw = make_raw_config(tmp_path / "unused", tmp_path / "run", max_steps=4, eval_every=4)
    del raw["data_dir"]
    raw["task_defaults"].update(train="fdu-mtl/{name}.task.train", test="fdu-mtl/{name}.task.test")
    return raw


def test_train_without_data_dir_fetches_fdu_mtl_into_the_cache(fresh_machine, tmp_path, capsys):
    config = write_yaml(fresh_machine, tmp_path / "exp.yaml")
    rc, _, err = run_cli(["train", config, "--quiet"], capsys)
    assert rc == 0, err
    cache = tmp_path / "cache" / "polytask" / "data"
    first = err.splitlines()[0]
    assert first.startswith(f"polytask: warning: fdu-mtl/ is not in {cache}: downloading fdu-mtl once (4 files, 41 MB)")
    assert "checked against SHA-256" in first and "Offline? Pass --data-dir DIR (or set $POLYTASK_DATA)" in first
    assert sorted(p.name for p in (cache / "fdu-mtl").iterdir()) == ["a.task.test", "a.task.train",
                                                                    "b.task.test", "b.task.train"]
    assert json.loads((tmp_path / "run" / "results.json").read_text())["steps"] == 4
    # the second run finds the data in the cache and downloads nothing
    rc, _, err = run_cli(["train", config, "--quiet", "--output-dir", tmp_path / "run2"], capsys)
    assert rc == 0 and "downloading" not in err


def test_train_offline_without_data_dir_says_how_to_use_a_local_copy(fresh_machine, tmp_path, capsys, monkeypatch):
    with socket.socket() as sock:                 # a port nothing listens on: the network is "down"
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setattr(dl.DATASETS["fdu-mtl"], "base_url", dead)
    monkeypatch.setattr(dl, "TIMEOUT_S", 5.0)
    rc, _, err = run_cli(["train", write_yaml(fresh_machine, tmp_path / "exp.yaml"), "--quiet"], capsys)
    assert rc == 2
    lines = err.splitlines()
    assert "Offline? Pass --data-dir DIR" in lines[0]
    assert lines[-1].startswith("polytask: error: fdu-mtl: download of a.task.test from ")
    assert "point --data-dir (or $POLYTASK_DATA) at <DIR>" in lines[-1] and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_train_with_a_data_dir_never_downloads(fresh_machine, tmp_path, capsys):
    rc, _, err = run_cli(["train", write_yaml(fresh_machine, tmp_path / "exp.yaml"), "--quiet",
                          "--data-dir", tmp_path / "empty"], capsys)
    assert rc == 2 and "downloading" not in err
    assert f"{tmp_path / 'empty' / 'fdu-mtl' / 'a.task.train'}: file not found" in err
