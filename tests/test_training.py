"""Training end to end on the toy two-task problem, schedules and iterators that resume exactly,
and the save -> load -> predict round trip (library calls and the CLI in-process)."""
from __future__ import annotations

import copy
import json
import logging
import random
import time
from collections import Counter
from types import SimpleNamespace

import pytest
import torch

import polytask.runner as runner
from polytask.cli import main
from polytask.config import ConfigError, load_config
from polytask.data.batching import Encoded, TaskBatchIterator
from polytask.evaluation.evaluate import predict_items
from polytask.runner import LoadedRun, load_run, predict
from polytask.training.checkpoint import read_weights
from polytask.training.schedules import RoundRobinSchedule, build_schedule
from polytask.training.trainer import Trainer

from conftest import KEYWORDS, classes, make_lines, make_raw_config, write_fdu_dataset, write_yaml

# accuracies are float32 percentages: 9 of 10 right is 89.99999761..., which is 90 %
AT_LEAST_90 = 89.99


def read_metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """One hard-sharing run through ``polytask.runner.train`` (120 steps), shared by the tests
    below; the Trainer is captured so the in-memory model can be compared with the saved one."""
    root = tmp_path_factory.mktemp("trained")
    data_dir = write_fdu_dataset(root)
    raw = make_raw_config(data_dir, root / "run", "hard_sharing", max_steps=120, eval_every=40)
    cfg = load_config(raw=raw)
    captured = []

    class CapturingTrainer(Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            captured.append(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner, "Trainer", CapturingTrainer)
        results = runner.train(cfg, quiet=True)
    return SimpleNamespace(raw=raw, cfg=cfg, results=results, run_dir=root / "run",
                           data_dir=data_dir, trainer=captured[0])


# ----------------------------------------------------------------------------- learning


def test_hard_sharing_learns_the_toy_tasks(trained):
    results = trained.results
    assert set(results["dev"]) == {"a", "b"} and set(results["test"]) == {"a", "b"}
    for task in ("a", "b"):
        assert results["dev"][task] >= AT_LEAST_90, results
        assert results["test"][task] >= 80.0, results
    assert results["steps"] == 120
    assert results["architecture"] == "hard_sharing"


def test_run_directory_layout_and_metrics(trained):
    run_dir = trained.run_dir
    for name in ("config.yaml", "vocab.json", "tasks.json", "metrics.jsonl", "results.json",
                 "best/model.safetensors", "best/state.json", "last/model.safetensors",
                 "last/trainer.pt", "last/state.json"):
        assert (run_dir / name).is_file(), name
    assert json.loads((run_dir / "tasks.json").read_text()) == {
        t: {"type": "classification", "labels": ["0", "1"], "metrics": ["accuracy"], "scheme": None,
            "head": "softmax", "pair": False} for t in ("a", "b")}
    vocab = json.loads((run_dir / "vocab.json").read_text())
    assert vocab[:2] == ["<pad>", "<unk>"] and "good" in vocab and "yes" in vocab
    records = read_metrics(run_dir)
    assert [r["step"] for r in records] == [40, 80, 120]
    assert all(set(r["dev"]) == {"a", "b"} for r in records)
    best = json.loads((run_dir / "best/state.json").read_text())
    assert best["step"] == trained.results["best_step"]
    assert json.loads((run_dir / "last/state.json").read_text())["step"] == 120
    saved = json.loads((run_dir / "results.json").read_text())
    assert saved["dev"] == trained.results["dev"] and saved["test"] == trained.results["test"]


@pytest.fixture
def single_task_run(tmp_path, data_dir):
    raw = make_raw_config(data_dir, tmp_path / "single", "single_task", max_steps=240, eval_every=40)
    raw["trainer"]["select"] = "per_task"
    results = runner.train(load_config(raw=raw), quiet=True)
    return SimpleNamespace(results=results, run_dir=tmp_path / "single")


def test_single_task_per_task_selection_learns(single_task_run):
    results = single_task_run.results
    for task in ("a", "b"):
        assert results["dev"][task] >= AT_LEAST_90, results
    # the composed best weights reproduce every task's own best dev score
    best = json.loads((single_task_run.run_dir / "best/state.json").read_text())
    for task in ("a", "b"):
        assert results["dev"][task] == pytest.approx(best["per_task"][task]["dev"])
        assert best["per_task"][task]["step"] in (40, 80, 120, 160, 200, 240)


def test_single_task_reports_a_real_best_step(single_task_run):
    assert single_task_run.results["best_step"] > 0


def test_per_task_patience_stops_each_task(tmp_path, data_dir):
    raw = make_raw_config(data_dir, tmp_path / "patience", "single_task", max_steps=1000, eval_every=20)
    raw["trainer"].update(select="per_task", patience=1)
    results = runner.train(load_config(raw=raw), quiet=True)
    assert results["steps"] < 1000
    records = read_metrics(tmp_path / "patience")
    assert sorted(records[-1]["finished"]) == ["a", "b"]
    for before, after in zip(records, records[1:]):
        for task in before["finished"]:   # a finished task draws no more batches
            assert task not in after["train_loss"]


def test_per_task_selection_needs_an_independent_architecture(tmp_path, data_dir):
    raw = make_raw_config(data_dir, tmp_path / "bad", "hard_sharing", max_steps=10, eval_every=10)
    raw["trainer"]["select"] = "per_task"
    with pytest.raises(ValueError, match="per_task"):
        runner.train(load_config(raw=raw), quiet=True)


def test_resume_continues_exactly(tmp_path, data_dir):
    """40 steps, then --resume to 60, ends with the weights of an uninterrupted 60-step run."""
    raw = make_raw_config(data_dir, tmp_path / "full", max_steps=60, eval_every=20)
    raw["model"]["dropout"] = 0.2            # so the torch RNG state matters too
    runner.train(load_config(raw=raw), quiet=True)
    part = copy.deepcopy(raw)
    part["output_dir"] = str(tmp_path / "resumed")
    part["trainer"]["max_steps"] = 40
    runner.train(load_config(raw=part), quiet=True)
    first = json.loads((tmp_path / "resumed/last/state.json").read_text())
    earlier, earlier_eval = first["wall_seconds"], first["eval_seconds"]
    assert earlier_eval > 0
    part["trainer"]["max_steps"] = 60
    t0 = time.perf_counter()
    resumed_results = runner.train(load_config(raw=part), resume=True, quiet=True)
    took = time.perf_counter() - t0
    # the run's wall time counts the first process too (20 steps take less than the first 40 did)
    assert earlier + 0.5 * took < resumed_results["wall_seconds"] <= earlier + took
    # evaluation time too: the first process's two dev scorings, then this one's and the final scoring
    assert earlier_eval < resumed_results["eval_seconds"] < resumed_results["wall_seconds"] - resumed_results["train_seconds"]

    full = read_weights(tmp_path / "full/last/model.safetensors")
    resumed = read_weights(tmp_path / "resumed/last/model.safetensors")
    assert full.keys() == resumed.keys()
    for name in full:
        assert torch.equal(full[name], resumed[name]), name
    state_full = json.loads((tmp_path / "full/last/state.json").read_text())
    state_resumed = json.loads((tmp_path / "resumed/last/state.json").read_text())
    for key in ("step", "schedule", "iterators", "best"):
        assert state_full[key] == state_resumed[key], key
    evals = lambda run: [r["dev"] for r in read_metrics(tmp_path / run) if r["event"] == "eval"]  # noqa: E731
    assert evals("full") == evals("resumed")            # the resumed log also says what changed


def test_resume_with_changed_settings_says_which(tmp_path, data_dir, caplog):
    caplog.set_level(logging.INFO, logger="polytask")
    raw = make_raw_config(data_dir, tmp_path / "run", max_steps=4, eval_every=4)
    runner.train(load_config(raw=raw), quiet=True)
    caplog.clear()
    raw["trainer"]["max_steps"], raw["trainer"]["lr"] = 6, 0.5
    runner.train(load_config(raw=raw), resume=True, quiet=True)
    err = caplog.text
    assert "differ from its config.yaml" in err and "trainer.max_steps: 4 -> 6" in err and "trainer.lr" in err
    assert "max_steps: 6" in (tmp_path / "run" / "config.yaml").read_text()   # it goes on under them
    caplog.clear()
    runner.train(load_config(raw=raw), resume=True, quiet=True)      # same settings again: nothing to say
    assert "differ" not in caplog.text


def test_resume_under_a_spent_patience_stops_at_once(tmp_path, data_dir):
    """A run trained without early stopping, resumed with a patience its dev curve has already used
    up, trains no further and keeps its best checkpoint; with patience to spare it goes on."""
    raw = make_raw_config(data_dir, tmp_path / "run", max_steps=20, eval_every=5)
    runner.train(load_config(raw=raw), quiet=True)
    state_path = tmp_path / "run/last/state.json"
    state = json.loads(state_path.read_text())
    state["bad_evals"]["mean"] = 3                      # three evaluations since the best one
    state_path.write_text(json.dumps(state))
    best = read_weights(tmp_path / "run/best/model.safetensors")
    raw["trainer"]["max_steps"], raw["trainer"]["patience"] = 40, 3
    runner.train(load_config(raw=raw), resume=True, quiet=True)
    assert json.loads(state_path.read_text())["step"] == 20
    assert all(torch.equal(v, read_weights(tmp_path / "run/best/model.safetensors")[k]) for k, v in best.items())
    raw["trainer"]["patience"] = 10
    runner.train(load_config(raw=raw), resume=True, quiet=True)
    assert json.loads(state_path.read_text())["step"] > 20


def test_peak_memory_covers_every_process_of_a_resumed_run(tmp_path, data_dir):
    """results.json's peak RSS is the largest over all processes that trained the run, and says so;
    a run resumed from a checkpoint that did not record it says the figure is not the whole run's."""
    raw = make_raw_config(data_dir, tmp_path / "run", max_steps=4, eval_every=2)
    runner.train(load_config(raw=raw), quiet=True)
    state_path = tmp_path / "run/last/state.json"
    state = json.loads(state_path.read_text())
    state["peak_rss_mb"] = 10.0 ** 7                     # as if an earlier process had peaked here
    state_path.write_text(json.dumps(state))
    raw["trainer"]["max_steps"] = 6
    results = runner.train(load_config(raw=raw), resume=True, quiet=True)
    assert results["peak_rss_mb"] == 10.0 ** 7 and results["peak_rss_covers_run"]
    state = json.loads(state_path.read_text())
    del state["peak_rss_mb"]                             # a checkpoint written by older code
    state_path.write_text(json.dumps(state))
    raw["trainer"]["max_steps"] = 8
    results = runner.train(load_config(raw=raw), resume=True, quiet=True)
    assert not results["peak_rss_covers_run"] and 0 < results["peak_rss_mb"] < 10.0 ** 7


# ----------------------------------------------------------------------------- schedules

SIZES = {"a": 50, "b": 20, "c": 5}
BATCHES = {"a": 4, "b": 2, "c": 1}


def draws(schedule, n: int, active=("a", "b", "c")) -> list[str]:
    return [schedule.next(list(active)) for _ in range(n)]


@pytest.mark.parametrize("name", ["uniform", "proportional", "temperature", "round_robin", "cyclic"])
def test_schedule_state_round_trip_gives_the_same_future(name):
    first = build_schedule(name, SIZES, BATCHES, seed=3, temperature=2.0)
    draws(first, 11)
    state = json.loads(json.dumps(first.state_dict()))   # what a checkpoint stores
    future = draws(first, 40) + draws(first, 10, active=("a", "c"))
    second = build_schedule(name, SIZES, BATCHES, seed=3, temperature=2.0)
    draws(second, 5)                                     # somewhere else before loading
    second.load_state_dict(state)
    assert draws(second, 40) + draws(second, 10, active=("a", "c")) == future


@pytest.mark.parametrize("name", [
    "uniform", "proportional", "temperature",
    "round_robin", "cyclic",
])
def test_schedule_state_dict_is_a_snapshot(name):
    schedule = build_schedule(name, SIZES, BATCHES, seed=3)
    draws(schedule, 2)
    state = schedule.state_dict()
    frozen = copy.deepcopy(state)
    draws(schedule, 5)
    assert state == frozen


def test_same_seed_same_draws_other_seed_other_draws():
    a = draws(build_schedule("uniform", SIZES, BATCHES, seed=1), 50)
    b = draws(build_schedule("uniform", SIZES, BATCHES, seed=1), 50)
    c = draws(build_schedule("uniform", SIZES, BATCHES, seed=2), 50)
    assert a == b and a != c


@pytest.mark.parametrize("name, share_of_a", [
    ("uniform", 1 / 2), ("proportional", 900 / 1000), ("temperature", 30 / 40)])
def test_weighted_schedules_draw_at_their_rates(name, share_of_a):
    schedule = build_schedule(name, {"a": 900, "b": 100}, {"a": 1, "b": 1}, seed=5, temperature=2.0)
    counts = Counter(draws(schedule, 4000, active=("a", "b")))
    assert counts["a"] / 4000 == pytest.approx(share_of_a, abs=0.03)


def test_weighted_schedule_only_draws_active_tasks():
    schedule = build_schedule("proportional", SIZES, BATCHES, seed=1)
    assert set(draws(schedule, 100, active=("b", "c"))) == {"b", "c"}


def test_round_robin_exhausts_tasks_then_starts_a_new_pass():
    schedule = RoundRobinSchedule(BATCHES, seed=4)       # a: 4 batches, b: 2, c: 1 per pass
    for _ in range(3):                                    # three passes of 7 draws
        one_pass = draws(schedule, 7)
        assert Counter(one_pass) == Counter(BATCHES)
        assert set(one_pass[:3]) == {"a", "b", "c"}       # round 1: every task once
        assert set(one_pass[3:5]) == {"a", "b"}           # round 2: c is exhausted
        assert one_pass[5:] == ["a", "a"]                 # rounds 3-4: only a is left


def test_round_robin_rounds_are_shuffled():
    schedule = RoundRobinSchedule({"a": 1, "b": 1, "c": 1}, seed=1)
    orders = {tuple(draws(schedule, 3)) for _ in range(30)}
    assert len(orders) > 1
    assert all(sorted(o) == ["a", "b", "c"] for o in orders)


def test_round_robin_skips_inactive_tasks():
    schedule = RoundRobinSchedule(BATCHES, seed=4)
    out = draws(schedule, 9, active=("b", "c"))
    assert Counter(out) == {"b": 6, "c": 3}              # three passes of b, b, c; a never drawn
    for start in (0, 3, 6):
        assert Counter(out[start:start + 3]) == {"b": 2, "c": 1}


def test_cyclic_gives_every_task_one_batch_in_turn_whatever_its_size():
    schedule = build_schedule("cyclic", SIZES, BATCHES, seed=4)      # a has 4 batches a pass, c 1
    assert draws(schedule, 9) == ["a", "b", "c"] * 3
    assert draws(schedule, 4, active=("a", "c")) == ["a", "c", "a", "c"]


def test_temperature_must_be_positive():
    with pytest.raises(ValueError, match="temperature"):
        build_schedule("temperature", SIZES, BATCHES, seed=1, temperature=0.0)


# ----------------------------------------------------------------------------- batch iterators


def items(n: int, seed: int = 0) -> list[Encoded]:
    rng = random.Random(seed)
    return [Encoded([rng.randint(2, 20) for _ in range(rng.randint(1, 9))], None, i % 2)
            for i in range(n)]


def batch_key(batch) -> tuple:
    return batch.task, tuple(batch.index), batch.tokens.tolist(), batch.labels.tolist()


@pytest.mark.parametrize("bucket", [True, False])
def test_task_batch_iterator_state_round_trip(bucket):
    data = items(23)
    it = TaskBatchIterator("a", data, batch_size=4, seed=7, bucket=bucket, window=2)
    assert it.batches_per_epoch == 6
    for _ in range(9):                                   # into the second epoch
        next(it)
    state = json.loads(json.dumps(it.state_dict()))
    assert state == {"epoch": 1, "position": 3}
    future = [batch_key(next(it)) for _ in range(10)]
    again = TaskBatchIterator("a", data, batch_size=4, seed=7, bucket=bucket, window=2)
    next(again)
    again.load_state_dict(state)
    assert [batch_key(next(again)) for _ in range(10)] == future


@pytest.mark.parametrize("bucket", [True, False])
def test_every_epoch_covers_each_example_once(bucket):
    data = items(23, seed=1)
    it = TaskBatchIterator("a", data, batch_size=4, seed=7, bucket=bucket, window=2)
    epochs = []
    for _ in range(3):
        seen = []
        for _ in range(it.batches_per_epoch):
            batch = next(it)
            assert batch.size <= 4
            for row, i in enumerate(batch.index):   # ids and labels travel with their example
                n = len(data[i].ids)
                assert batch.tokens[row, :n].tolist() == data[i].ids
                assert batch.mask[row].sum() == n and batch.labels[row] == data[i].label
            seen += batch.index
        assert sorted(seen) == list(range(23))
        epochs.append(seen)
    assert epochs[0] != epochs[1]                   # a fresh order per epoch


def test_default_bucket_window_reshuffles_batches_every_epoch():
    """With the default window, which texts share a batch changes from one epoch to the next (a
    window as large as the task's data sorts it alike every epoch), at little padding cost."""
    from itertools import combinations
    from polytask.config import DataConfig
    rng = random.Random(3)
    # review-like lengths (log-normal, as FDU-MTL's books domain), cut at data.max_length
    lengths = [min(400, max(1, int(rng.lognormvariate(4.7, 0.85)))) for _ in range(1400)]
    data = [Encoded([2] * n, None, i % 2) for i, n in enumerate(lengths)]

    def pairs_and_padding(window: int) -> tuple[float, float]:
        it = TaskBatchIterator("a", data, 32, seed=1, bucket=True, window=window)
        epochs = [[next(it).index for _ in range(it.batches_per_epoch)] for _ in range(2)]
        shared = [{p for batch in epoch for p in combinations(sorted(batch), 2)} for epoch in epochs]
        padded = sum(len(b) * max(lengths[i] for i in b) for b in epochs[0])
        return len(shared[0] & shared[1]) / len(shared[0]), padded / sum(lengths)

    again, padding = pairs_and_padding(DataConfig().bucket_window)
    assert again < 0.2 and padding < 1.25
    whole_again, whole_padding = pairs_and_padding(1400 // 32 + 1)
    assert whole_again > 0.4 and whole_padding < padding


def test_iterator_order_depends_on_seed_and_task():
    data = items(40)

    def first_epoch(task: str, seed: int) -> list[tuple]:
        it = TaskBatchIterator(task, data, 4, seed)
        return [tuple(next(it).index) for _ in range(it.batches_per_epoch)]

    assert first_epoch("a", 1) == first_epoch("a", 1)
    assert first_epoch("a", 1) != first_epoch("a", 2)
    assert first_epoch("a", 1) != first_epoch("b", 1)


def test_iterator_needs_examples():
    with pytest.raises(ValueError, match="no training examples"):
        TaskBatchIterator("a", [], 4, 1)


# ----------------------------------------------------------------------------- save / load / predict


def test_load_run_rebuilds_the_trained_weights(trained):
    run = load_run(trained.run_dir)
    memory = trained.trainer.model.state_dict()
    loaded = run.model.state_dict()
    assert memory.keys() == loaded.keys()
    for name in memory:
        assert torch.equal(memory[name], loaded[name]), name
    assert not run.model.training
    assert run.vocab.itos == trained.trainer.vocab.itos
    assert run.task_info == trained.trainer.task_info


def test_predict_after_loading_matches_the_in_memory_model(trained):
    t = trained.trainer
    in_memory = LoadedRun(trained.cfg, t.vocab, t.task_info, t.model, torch.device("cpu"))
    loaded = load_run(trained.run_dir)
    for task in ("a", "b"):
        lines = make_lines(task, 20, seed=2)
        texts = [text for _, text in lines] + ["", "completely unseen words only"]
        got, expected = predict(loaded, task, texts), predict(in_memory, task, texts)
        assert got == expected
        assert len(got) == len(texts)
        for pred in got:
            probs = pred["probabilities"]
            assert set(probs) == {"0", "1"}
            assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
            assert pred["probability"] == max(probs.values()) and probs[pred["label"]] == pred["probability"]
        correct = sum(pred["label"] == label for pred, (label, _) in zip(got, lines))
        assert correct >= 16, (task, correct)
    # the raw probabilities agree to the last bit, not only after rounding
    items_ = t.dev_items["a"]
    torch.testing.assert_close(predict_items(loaded.model, "a", items_, 4, loaded.device),
                               predict_items(t.model, "a", items_, 4, torch.device("cpu")),
                               rtol=0, atol=0)


def test_predict_unknown_task(trained):
    with pytest.raises(KeyError, match="unknown task"):
        predict(load_run(trained.run_dir), "zzz", ["good"])


def test_cli_predict_writes_json_lines(trained, tmp_path, capsys):
    inputs = ["this movie was good", "", "bad bad plot", "the answer was yes"]
    path = tmp_path / "in.txt"
    path.write_text("\n".join(inputs) + "\n", encoding="utf-8")
    assert main(["predict", str(trained.run_dir), "--task", "a", "--input", str(path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["text"] for r in records] == [t for t in inputs if t]
    assert [r["label"] for r in records[:2]] == ["1", "0"]
    for r in records:
        assert r["label"] in ("0", "1") and 0.5 <= r["probability"] <= 1.0
    # --output writes the same lines to a file
    out = tmp_path / "out.jsonl"
    assert main(["predict", str(trained.run_dir), "--task", "a", "--input", str(path),
                 "--output", str(out)]) == 0
    assert [json.loads(line) for line in out.read_text().splitlines()] == records


def test_cli_evaluate_prints_a_table(trained, tmp_path, capsys):
    scores = tmp_path / "scores.json"
    rc = main(["evaluate", str(trained.run_dir), "--data-dir", str(trained.data_dir),
               "--json", str(scores)])
    assert rc == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in out.strip().splitlines()
            if line.strip() and not line.startswith("-")}
    assert rows["task"] == ["test"]
    for task in ("a", "b"):
        assert rows[task] == [f"{trained.results['test'][task]:.2f}"]
    assert "average" in rows
    saved = json.loads(scores.read_text())                  # every metric of every task
    assert {t: v["accuracy"] for t, v in saved.items()} == pytest.approx(trained.results["test"])


def test_cli_evaluate_dev_split(trained, capsys):
    assert main(["evaluate", str(trained.run_dir), "--split", "dev",
                 "--data-dir", str(trained.data_dir)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["task", "dev"]
    assert f"{trained.results['dev']['a']:.2f}" in out


def test_cli_evaluate_a_directory_that_is_not_a_run(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) != 0
    assert "not a polytask run directory" in capsys.readouterr().err


def test_second_train_into_the_same_directory_needs_resume(trained, tmp_path, capsys):
    run_dir = trained.run_dir
    before = {name: (run_dir / name).read_bytes()
              for name in ("results.json", "metrics.jsonl", "last/model.safetensors", "config.yaml")}
    config = write_yaml(trained.raw, tmp_path / "again.yaml")
    rc = main(["train", str(config), "--quiet"])
    assert rc != 0
    err = capsys.readouterr().err
    assert err.startswith("polytask: error:")
    assert str(run_dir) in err and "--resume" in err
    for name, data in before.items():
        assert (run_dir / name).read_bytes() == data, f"{name} was changed"


def test_cli_train_with_overrides_and_output_dir(tmp_path, data_dir, capsys):
    raw = make_raw_config(data_dir, tmp_path / "unused", max_steps=5, eval_every=5)
    config = write_yaml(raw, tmp_path / "exp.yaml")
    out_dir = tmp_path / "cli-run"
    rc = main(["train", str(config), "--output-dir", str(out_dir), "--quiet",
               "trainer.max_steps=10", "model.encoder.type=cnn"])
    assert rc == 0, capsys.readouterr().err
    saved = load_config(out_dir / "config.yaml")
    assert saved.trainer.max_steps == 10 and saved.model.encoder.type == "cnn"
    assert [r["step"] for r in read_metrics(out_dir)] == [5, 10]
    assert not (tmp_path / "unused").exists()


# ----------------------------------------------------------------------------- pair classification


def test_pair_task_trains_end_to_end_with_hard_sharing(pair_config, tmp_path, capsys):
    cfg = load_config(raw=pair_config)
    results = runner.train(cfg, quiet=True)
    assert set(results["dev"]) == {"a", "p"}
    assert results["dev"]["p"] >= AT_LEAST_90, results
    assert results["dev"]["a"] >= AT_LEAST_90, results
    run_dir = tmp_path / "pair-run"
    info = json.loads((run_dir / "tasks.json").read_text())
    assert info["p"]["type"] == "pair_classification"
    assert info["p"]["labels"] == ["contradiction", "entailment"]

    run = load_run(run_dir)
    preds = predict(run, "p", [("the movie was fine", "it was indeed fine"),
                               ("the movie was fine", "it was never fine")])
    assert [p["label"] for p in preds] == ["entailment", "contradiction"]
    with pytest.raises(ValueError, match="pairs"):
        predict(run, "p", ["only one text"])

    path = tmp_path / "pairs.txt"
    path.write_text("a plot\tindeed a plot\nthe story\tnever the story\n", encoding="utf-8")
    assert main(["predict", str(run_dir), "--task", "p", "--input", str(path)]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in records] == [["a plot", "indeed a plot"], ["the story", "never the story"]]
    assert [r["label"] for r in records] == ["entailment", "contradiction"]


def test_keywords_fixture_is_what_the_tests_assume():
    # guards the toy data: both labels, each keyword in exactly its label's lines
    for task, (neg, pos) in KEYWORDS.items():
        lines = make_lines(task, 60, 1)
        assert Counter(label for label, _ in lines) == {"0": 30, "1": 30}
        for label, text in lines:
            words = text.split()
            assert (pos in words) == (label == "1") and (neg in words) == (label == "0")


def test_annealed_schedule_moves_from_proportional_to_flat():
    from polytask.training.schedules import AnnealedSchedule
    sched = AnnealedSchedule({"big": 900, "small": 100}, seed=1, temperature=1e9, max_steps=1000)
    early = sum(sched.next(["big", "small"], step=0) == "small" for _ in range(2000)) / 2000
    late = sum(sched.next(["big", "small"], step=1000) == "small" for _ in range(2000)) / 2000
    assert abs(early - 0.1) < 0.03 and abs(late - 0.5) < 0.04


def test_anti_curriculum_pretrains_on_the_chosen_tasks(fdu_config):
    from polytask.training.schedules import build_schedule
    sched = build_schedule("uniform", {"a": 10, "b": 10}, {"a": 1, "b": 1}, seed=1, pretrain_tasks=["b"],
                           pretrain_steps=50)
    assert {sched.next(["a", "b"], step) for step in range(50)} == {"b"}
    assert {sched.next(["a", "b"], step) for step in range(50, 150)} == {"a", "b"}
    raw = {**fdu_config, "trainer": {**fdu_config["trainer"], "pretrain_tasks": ["zzz"], "pretrain_steps": 5}}
    with pytest.raises(ConfigError, match="pretrain_tasks"):
        load_config(raw=raw)


@pytest.mark.parametrize("trainer", [{"grad_accumulation": 2}, {"precision": "bf16"}])
def test_accumulation_and_mixed_precision_train(fdu_config, trainer):
    raw = {**fdu_config, "trainer": {**fdu_config["trainer"], **trainer}}
    results = runner.train(load_config(raw=raw), quiet=True)
    assert results["steps"] == raw["trainer"]["max_steps"]
    assert results["dev_avg"] >= 89.99, results


def test_word_vectors_can_have_their_own_learning_rate(fdu_config):
    from polytask.training.trainer import Trainer
    from polytask.data.vocab import Vocab
    from polytask.models import TaskSpec, build_model
    raw = {**fdu_config, "trainer": {**fdu_config["trainer"], "embedding_lr": 1e-4}}
    cfg = load_config(raw=raw)
    model = build_model(cfg, [classes("a", 2)], vocab_size=10)
    from polytask.data.batching import Encoded
    trainer = Trainer(cfg, model, {"a": [Encoded([2, 3], None, 1)]}, {"a": []}, Vocab(["x"]),
                      {"a": {"type": "classification", "labels": ["0", "1"]}}, fdu_config["output_dir"])
    groups = trainer.optimizer.param_groups
    assert [g["lr"] for g in groups] == [cfg.trainer.lr, 1e-4]
    assert groups[1]["params"] == [model.encoder.embedding.embedding.weight]
