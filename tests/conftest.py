"""Shared fixtures: a tiny two-task FDU-style dataset, a pair-classification TSV task, and a tiny
raw config (see :class:`polytask.config.ExperimentConfig`) that trains in a second or two on CPU.

Task ``a``: label ``1`` when the sentence holds "good", ``0`` when it holds "bad".
Task ``b``: label ``1`` when the sentence holds "yes",  ``0`` when it holds "no".
Each ``*.train`` file has 60 lines; the last 10 are the dev set (``dev_split: tail, size 10``).
Each ``*.test`` file has 20 lines.
"""
from __future__ import annotations

import copy
import random
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import yaml

from polytask.training.callbacks import Callback

torch.set_num_threads(1)

FILLER = ["the", "movie", "was", "a", "plot", "and", "actors", "very", "quite", "story", "film",
          "really", "it", "of", "this", "then", "we", "they", "saw", "said", "answer", "question"]
KEYWORDS = {"a": ("bad", "good"), "b": ("no", "yes")}   # (label 0, label 1)
N_TRAIN, N_DEV, N_TEST = 60, 10, 20


def make_lines(task: str, n: int, seed: int) -> list[tuple[str, str]]:
    """``n`` (label, text) pairs, shuffled. Every filler sentence appears twice, once with each
    label's keyword at the same random position, so only the keyword predicts the label."""
    rng = random.Random(f"{task}/{seed}")
    out = []
    for _ in range(n // 2):
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 8))]
        at = rng.randint(0, len(words))
        for label in ("0", "1"):
            out.append((label, " ".join(words[:at] + [KEYWORDS[task][int(label)]] + words[at:])))
    rng.shuffle(out)
    return out


def write_fdu_dataset(root: Path) -> Path:
    """Write ``fdu/{a,b}.task.{train,test}`` under ``root``; returns the data directory."""
    data_dir = root / "data"
    (data_dir / "fdu").mkdir(parents=True, exist_ok=True)
    for task in KEYWORDS:
        for split, n, seed in (("train", N_TRAIN, 1), ("test", N_TEST, 2)):
            lines = make_lines(task, n, seed)
            text = "".join(f"{label}\t{sentence}\n" for label, sentence in lines)
            (data_dir / "fdu" / f"{task}.task.{split}").write_text(text, encoding="utf-8")
    return data_dir


def make_raw_config(data_dir: Path, output_dir: Path, architecture: str = "hard_sharing",
                    max_steps: int = 120, eval_every: int = 40) -> dict:
    """A tiny experiment over tasks ``a`` and ``b`` (raw mapping, as YAML would give it)."""
    return {
        "seed": 1,
        "output_dir": str(output_dir),
        "data_dir": str(data_dir),
        "task_defaults": {
            "type": "classification",
            "format": "fdu",
            "train": "fdu/{name}.task.train",
            "test": "fdu/{name}.task.test",
            "dev_split": {"policy": "tail", "size": N_DEV},
            "labels": ["0", "1"],
        },
        "tasks": [{"name": "a"}, {"name": "b"}],
        "data": {"batch_size": 8, "eval_batch_size": 32, "max_length": 50},
        "model": {"architecture": architecture, "embedding_dim": 16,
                  "encoder": {"type": "bilstm", "hidden_dim": 16, "num_layers": 1},
                  "pooling": "max", "dropout": 0.0},
        "trainer": {"max_steps": max_steps, "eval_every": eval_every, "lr": 0.01,
                    "optimizer": "adam", "schedule": "uniform", "progress": False},
    }


def write_yaml(raw: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """The two-task FDU-style dataset, written into ``tmp_path/data``."""
    return write_fdu_dataset(tmp_path)


@pytest.fixture
def fdu_config(tmp_path, data_dir) -> dict:
    """A raw config dict for the two-task dataset; ``output_dir`` is ``tmp_path/run``."""
    return make_raw_config(data_dir, tmp_path / "run")


# ----------------------------------------------------------------------------- pair classification

PAIR_LABELS = ("contradiction", "entailment")


def make_pair_rows(n: int, seed: int) -> list[tuple[str, str, str]]:
    """(sentence1, sentence2, label): ``entailment`` when sentence2 holds "indeed", ``contradiction``
    when it holds "never" (sentence1 is filler that shares a few words with sentence2)."""
    rng = random.Random(f"pair/{seed}")
    labels = [PAIR_LABELS[i % 2] for i in range(n)]
    rng.shuffle(labels)
    rows = []
    for label in labels:
        first = [rng.choice(FILLER) for _ in range(rng.randint(3, 7))]
        second = rng.sample(first, k=min(2, len(first))) + [rng.choice(FILLER)]
        second.insert(rng.randint(0, len(second)), "indeed" if label == "entailment" else "never")
        rows.append((" ".join(first), " ".join(second), label))
    return rows


def write_pair_dataset(data_dir: Path) -> Path:
    """``pair/train.tsv`` (60 rows) and ``pair/test.tsv`` (20 rows), with a header line."""
    (data_dir / "pair").mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", N_TRAIN, 1), ("test", N_TEST, 2)):
        rows = make_pair_rows(n, seed)
        text = "sentence1\tsentence2\tlabel\n" + "".join(f"{a}\t{b}\t{c}\n" for a, b, c in rows)
        (data_dir / "pair" / f"{split}.tsv").write_text(text, encoding="utf-8")
    return data_dir


PAIR_TASK = {
    "name": "p",
    "type": "pair_classification",
    "format": "tsv",
    "train": "pair/train.tsv",
    "test": "pair/test.tsv",
    "dev_split": {"policy": "tail", "size": N_DEV},
    "text_column": "sentence1",
    "text_b_column": "sentence2",
    "label_column": "label",
    "header": True,
    "labels": list(PAIR_LABELS),
}


@pytest.fixture
def pair_config(tmp_path, data_dir) -> dict:
    """Task ``a`` (FDU) plus the pair task ``p`` (TSV, two text columns), hard sharing."""
    write_pair_dataset(data_dir)
    raw = make_raw_config(data_dir, tmp_path / "pair-run")
    raw["tasks"] = [{"name": "a"}, copy.deepcopy(PAIR_TASK)]
    return raw


def classes(name: str, n: int, pair: bool = False):
    """The spec of a classification task ``name`` with ``n`` labels "0", "1", ... (a sentence-pair
    task with ``pair``)."""
    from polytask.kinds import TaskSpec
    return TaskSpec(name, "pair_classification" if pair else "classification", tuple(str(i) for i in range(n)),
                    pair=pair)


class InterruptAt(Callback):
    """A trainer callback that acts as Ctrl-C after optimizer step ``step`` (the trainer saves
    ``last/`` and re-raises the KeyboardInterrupt)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, trainer) -> None:
        if trainer.step == self.step:
            raise KeyboardInterrupt


# ----------------------------------------------------------------------------- a run of every kind, served

@pytest.fixture(scope="session")
def served_run(tmp_path_factory) -> Path:
    """A tiny hard-sharing run trained once per session with a task of each kind the server answers
    for but qa: ``a`` (classification, "good"/"bad"), ``p`` (pair classification, "indeed"/"never"
    in the second text), ``sim`` (pair regression: how often "same" is in the second text) and
    ``chunk`` (BIO chunks of "the dog runs", CRF head). Returns its run directory."""
    from polytask.config import load_config
    from polytask.runner import train
    from test_kinds import write_similarity
    from test_tagging import write_conll
    root = tmp_path_factory.mktemp("served")
    data_dir = write_pair_dataset(write_fdu_dataset(root))
    write_similarity(data_dir, 120, 1, "train.tsv")
    write_similarity(data_dir, 40, 2, "test.tsv")
    write_conll(data_dir / "chunk.train", 80, 1)
    write_conll(data_dir / "chunk.test", 20, 2)
    raw = make_raw_config(data_dir, root / "run", max_steps=240, eval_every=80)
    raw["tasks"] = [
        {"name": "a"}, copy.deepcopy(PAIR_TASK),
        {"name": "sim", "type": "regression", "format": "tsv", "train": "sim/train.tsv", "test": "sim/test.tsv",
         "text_column": "sentence1", "text_b_column": "sentence2", "label_column": "score", "header": True,
         "labels": None},
        {"name": "chunk", "type": "tagging", "format": "conll", "train": "chunk.train", "test": "chunk.test",
         "labels": None, "tag_column": 2, "tag_scheme": "BIO", "tagging_head": "crf", "lowercase": False},
    ]
    train(load_config(raw=raw), quiet=True)
    return root / "run"


@contextmanager
def live_server(app):
    """``app`` on uvicorn in a thread on a free loopback port, as ``polytask serve`` runs it; yields
    its base URL and stops it afterwards."""
    from polytask.serving.server import ReadyServer, uvicorn_config
    server = ReadyServer(uvicorn_config(app, "127.0.0.1", 0), "test")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
