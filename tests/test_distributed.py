"""Data-parallel training under torchrun, on this CPU with the gloo backend and 2 processes: two
ranks with batch B end like one process with batch 2B; a 2-rank run killed with SIGKILL and
resumed ends exactly like an uninterrupted one; only rank 0 writes; what cannot run is refused."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from conftest import make_raw_config, write_fdu_dataset, write_yaml
from polytask.cli import main
from polytask.config import ConfigError, load_config
from polytask.data.batching import Encoded, TaskBatchIterator
from polytask.runner import train
from polytask.training.checkpoint import read_weights

SRC = Path(__file__).resolve().parents[1] / "src"

def torchrun(*args: str) -> subprocess.Popen:
    """``python -m torch.distributed.run --standalone --nproc_per_node=2 ARGS`` (a free port is
    picked by the standalone rendezvous), started; ``.communicate()`` waits for it."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=240)
    return proc.returncode, out


def config(root: Path, out: str, batch_size: int, dropout: float = 0.0, **trainer) -> dict:
    raw = make_raw_config(root / "data", root / out, max_steps=20, eval_every=10)
    raw["data"]["batch_size"] = batch_size
    raw["model"]["dropout"] = dropout
    raw["trainer"].update(trainer)
    return raw


def max_difference(a: Path, b: Path) -> float:
    wa, wb = read_weights(a / "last" / "model.safetensors"), read_weights(b / "last" / "model.safetensors")
    assert wa.keys() == wb.keys()
    return max(float((wa[k] - wb[k]).abs().max()) for k in wa)


def records(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "tokens_per_s"} for line in lines]


# ----------------------------------------------------------------------------- sharding


def test_each_rank_draws_its_stride_of_the_global_batch():
    items = [Encoded(ids=[i + 1] * (1 + i % 5), ids_b=None, label=i % 2) for i in range(9)]
    one = TaskBatchIterator("a", items, 4, seed=3, bucket=True, window=2)
    ranks = [TaskBatchIterator("a", items, 2, seed=3, bucket=True, window=2, rank=r, world_size=2) for r in (0, 1)]
    assert [it.batches_per_epoch for it in ranks] == [one.batches_per_epoch] * 2 == [3, 3]
    for _ in range(6):                                      # two epochs: 4 + 4 + 1 examples each
        whole = next(one).index
        parts = [next(it).index for it in ranks]
        assert parts[0] == whole[0::2]
        if len(whole) > 1:
            assert parts[1] == whole[1::2]
            assert [it.share for it in ranks] == [len(p) / len(whole) for p in parts]
        else:                                 # rank 1 has nothing left: an example that weighs 0
            assert parts[1] == whole and [it.share for it in ranks] == [1.0, 0.0]


# ----------------------------------------------------------------------------- 2 ranks = 1 rank, twice the batch

SYSTEMS = {"equal": {}, "upgrad": {"step_mode": "all_tasks", "weighting": "upgrad"}}


@pytest.fixture(scope="module", params=list(SYSTEMS))
def equal_runs(request, tmp_path_factory):
    """A 2-rank run with batch 4 (torchrun) and a 1-process run with batch 8 of the same system:
    (root, name, torchrun exit code, its output)."""
    name = request.param
    root = tmp_path_factory.mktemp(f"ddp-{name}")
    write_fdu_dataset(root)
    proc = torchrun("-m", "polytask.cli", "train",
                    str(write_yaml(config(root, "two", 4, **SYSTEMS[name]), root / "two.yaml")))
    train(load_config(raw=config(root, "one", 8, **SYSTEMS[name])), quiet=True)   # meanwhile, here
    code, out = finish(proc)
    return root, name, code, out


def test_two_ranks_end_like_one_process_with_twice_the_batch(equal_runs):
    root, name, code, out = equal_runs
    assert code == 0, out
    difference = max_difference(root / "two", root / "one")
    print(f"\n{name}: max |w(2 ranks, batch 4) - w(1 process, batch 8)| = {difference:.2e}")
    assert difference < 1e-5
    two, one = (json.loads((root / r / "results.json").read_text()) for r in ("two", "one"))
    assert two["dev"] == one["dev"] and two["test"] == one["test"]
    for a, b in zip(records(root / "two"), records(root / "one")):
        assert a["step"] == b["step"] and a["dev"] == b["dev"] and a["weights"].keys() == b["weights"].keys()
        for task, loss in b["train_loss"].items():      # the global batch's mean loss, reduced
            assert a["train_loss"][task] == pytest.approx(loss, rel=1e-5)


def test_only_rank_zero_writes(equal_runs):
    root, name, code, out = equal_runs
    assert code == 0, out
    run = root / "two"
    assert out.count("run directory") == 1, out         # one summary, one table: rank 0's
    assert out.count("average") == 1, out
    assert sorted(p.name for p in run.iterdir()) == sorted(
        ["best", "config.yaml", "last", "metrics.csv", "metrics.jsonl", "predictions", "results.json", "run.lock",
         "tasks.json", "vocab.json"])
    assert [r["step"] for r in records(run)] == [10, 20]    # each evaluation logged once
    assert json.loads((run / "last" / "state.json").read_text())["world_size"] == 2
    rng = torch.load(run / "last" / "trainer.pt", weights_only=True)["rank_rng"]
    assert len(rng) == 2 and not rng[0]["torch"].equal(rng[1]["torch"])   # each rank's own


def test_resume_with_another_world_size_is_refused(equal_runs):
    root, name, code, out = equal_runs
    assert code == 0, out
    with pytest.raises(ConfigError, match="trained by 2 processes and is resumed by 1"):
        train(load_config(raw=config(root, "two", 4, **SYSTEMS[name])), quiet=True, resume=True)


# ----------------------------------------------------------------------------- SIGKILL, SIGTERM and resume

# a script that signals itself at its N-th batch draw: ``killer.py CONFIG N SIGNAL [RANK]`` (only
# rank RANK, when given). The ranks draw in lock-step, so a SIGKILL of both kills them in the same
# step, between two checkpoints; a SIGTERM that one rank notes stops both at the end of that step.
SIGNALLER = textwrap.dedent("""\
    import os, signal, sys
    from polytask.data import batching

    calls = {"n": 0}
    original = batching.TaskBatchIterator.__next__
    signum = getattr(signal, sys.argv[3])
    mine = len(sys.argv) < 5 or os.environ["RANK"] == sys.argv[4]

    def next_then_signal(self):
        calls["n"] += 1
        if mine and calls["n"] == int(sys.argv[2]):
            os.kill(os.getpid(), signum)
        return original(self)

    batching.TaskBatchIterator.__next__ = next_then_signal
    from polytask.cli import main
    sys.exit(main(["train", sys.argv[1], "--quiet"]))
""")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """(root, finish): an uninterrupted 2-rank run with dropout and RLW weights (so every rank's
    torch RNG and the weighting's state must come back on resume), started at once; ``finish()``
    waits for it. The interrupted runs train the same config in ``root``."""
    root = tmp_path_factory.mktemp("ddp-resume")
    write_fdu_dataset(root)
    (root / "signaller.py").write_text(SIGNALLER)
    proc = torchrun("-m", "polytask.cli", "train", str(resume_config(root, "reference")), "--quiet")
    done: list = []

    def wait() -> None:
        if not done:
            done.append(finish(proc))
        assert done[0][0] == 0, done[0][1]
    yield root, wait
    if not done:
        proc.kill()


def resume_config(root: Path, run: str) -> Path:
    return write_yaml(config(root, run, 4, dropout=0.3, weighting="rlw"), root / f"{run}.yaml")


def assert_same_as_uninterrupted(root: Path, run: str) -> None:
    for weights in ("last", "best"):
        ref = read_weights(root / "reference" / weights / "model.safetensors")
        res = read_weights(root / run / weights / "model.safetensors")
        assert ref.keys() == res.keys()
        for name in ref:
            assert ref[name].equal(res[name]), (weights, name)
    assert [r for r in records(root / run) if r["event"] != "resume"] == records(root / "reference")
    ref, res = (json.loads((root / r / "results.json").read_text()) for r in ("reference", run))
    assert (res["dev"], res["test"], res["steps"]) == (ref["dev"], ref["test"], ref["steps"])


def test_two_ranks_killed_with_sigkill_resume_exactly(uninterrupted):
    root, reference = uninterrupted
    cfg = resume_config(root, "killed")
    code, out = finish(torchrun(str(root / "signaller.py"), str(cfg), "15", "SIGKILL"))    # in step 15 of 20
    assert code != 0 and "SIGKILL" in out, out
    assert json.loads((root / "killed" / "last" / "state.json").read_text())["step"] == 10
    assert not (root / "killed" / "results.json").exists()
    resumed = torchrun("-m", "polytask.cli", "train", str(cfg), "--quiet", "--resume")
    reference()
    code, out = finish(resumed)
    assert code == 0, out
    assert_same_as_uninterrupted(root, "killed")


def test_sigterm_on_one_rank_stops_both_at_the_same_step(uninterrupted):
    root, reference = uninterrupted
    cfg = resume_config(root, "stopped")
    code, out = finish(torchrun(str(root / "signaller.py"), str(cfg), "7", "SIGTERM", "1"))  # rank 1, step 7
    assert code != 0, out
    assert out.count("interrupted at step 7; checkpoint saved") == 1, out     # rank 0 saved, once
    assert json.loads((root / "stopped" / "last" / "state.json").read_text())["step"] == 7
    code, out = finish(torchrun("-m", "polytask.cli", "train", str(cfg), "--quiet", "--resume"))
    assert code == 0, out
    reference()
    assert_same_as_uninterrupted(root, "stopped")


# ----------------------------------------------------------------------------- refused


@pytest.mark.parametrize("argv,message", [
    (["trainer.weighting=gradnorm"], "trainer.weighting: 'gradnorm' cannot train under torchrun (2 processes)"),
    (["trainer.weighting=dwa"], "trainer.weighting: 'dwa' cannot train under torchrun (2 processes)"),
    (["--seeds", "1,2"], "polytask train --seeds runs several trainings of its own and cannot run under torchrun"),
])
def test_what_cannot_run_under_torchrun_is_refused(tmp_path, monkeypatch, capsys, argv, message):
    write_fdu_dataset(tmp_path)
    cfg = write_yaml(config(tmp_path, "run", 4), tmp_path / "run.yaml")
    monkeypatch.setenv("WORLD_SIZE", "2")           # as torchrun sets it; refused before joining
    monkeypatch.setenv("RANK", "0")
    assert main(["train", str(cfg), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_per_token_softmax_tagger_is_refused_under_torchrun_and_a_crf_is_not():
    """Each rank's loss is weighed by its share of the global batch's sentences: right for a CRF (a
    mean over sentences), wrong for a per-token softmax (a mean over tokens)."""
    from types import SimpleNamespace

    from polytask.config import ConfigError
    from polytask.training.distributed import refuse_unsupported

    def cfg(head):
        return SimpleNamespace(trainer=SimpleNamespace(weighting="equal"), tasks=[
            SimpleNamespace(name="reviews", type="classification", tagging_head="crf"),
            SimpleNamespace(name="upos", type="tagging", tagging_head=head)])
    with pytest.raises(ConfigError, match=r"tasks\[1\]\.tagging_head: 'softmax' \(upos\) cannot train under torchrun"):
        refuse_unsupported(cfg("softmax"), 2)
    refuse_unsupported(cfg("crf"), 2)
    refuse_unsupported(cfg("softmax"), 1)           # one process: nothing to refuse
