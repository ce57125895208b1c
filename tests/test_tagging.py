"""Tagging tasks end to end: CoNLL data, softmax and CRF heads, character features, a tagging
task and a classification task sharing one encoder, save -> load -> predict."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from polytask.cli import main
from polytask.config import ConfigError, load_config
from polytask.runner import load_run, predict, predict_tagging, train

NOUNS = ["dog", "cat", "car", "tree", "house", "bird"]
VERBS = ["runs", "eats", "sees", "likes", "walks"]
DETS = ["the", "a", "this"]


def sentence(rng: random.Random) -> list[tuple[str, str, str]]:
    """(token, POS, chunk) triples: DT NN VBZ DT NN, chunks B-NP I-NP B-VP B-NP I-NP."""
    out = []
    for i in range(rng.randint(1, 2)):
        if i:
            out.append(("and", "CC", "O"))
        out += [(rng.choice(DETS), "DT", "B-NP"), (rng.choice(NOUNS), "NN", "I-NP"),
                (rng.choice(VERBS), "VBZ", "B-VP")]
    return out


def write_conll(path: Path, n: int, seed: int) -> None:
    rng = random.Random(seed)
    lines = ["-DOCSTART- -X- O", ""]
    for _ in range(n):
        lines += [" ".join(t) for t in sentence(rng)] + [""]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def tagging_config(tmp_path: Path, data_dir: Path, fdu_config: dict) -> dict:
    write_conll(data_dir / "chunk.train", 80, 1)
    write_conll(data_dir / "chunk.test", 20, 2)
    raw = dict(fdu_config)
    raw["tasks"] = [
        {"name": "a"},
        {"name": "pos", "type": "tagging", "format": "conll", "train": "chunk.train", "labels": None,
         "test": "chunk.test", "tag_column": 1, "tagging_head": "softmax", "lowercase": False},
        {"name": "chunk", "type": "tagging", "format": "conll", "train": "chunk.train", "labels": None,
         "test": "chunk.test", "tag_column": 2, "tag_scheme": "BIO", "tagging_head": "crf",
         "lowercase": False},
    ]
    raw["model"] = {**raw["model"], "char_embedding_dim": 8, "char_hidden_dim": 8}
    raw["trainer"] = {**raw["trainer"], "max_steps": 150, "eval_every": 50}
    return raw


def test_tagging_and_classification_share_one_encoder(tagging_config: dict, tmp_path: Path):
    cfg = load_config(raw=tagging_config)
    results = train(cfg, quiet=True)
    assert results["dev"]["pos"] >= 95.0, results      # token accuracy
    assert results["dev"]["chunk"] >= 90.0, results    # span F1
    info = json.loads((Path(cfg.output_dir) / "tasks.json").read_text())
    assert info["chunk"]["metrics"] == ["span_f1"] and info["pos"]["metrics"] == ["accuracy"]
    assert (Path(cfg.output_dir) / "chars.json").is_file()

    run = load_run(cfg.output_dir)
    (pred,) = predict_tagging(run, "chunk", ["the zebra eats"])   # "zebra": unknown word
    assert pred["tokens"] == ["the", "zebra", "eats"]
    assert pred["tags"] == ["B-NP", "I-NP", "B-VP"]
    assert predict(run, "pos", ["a bird sees"])[0]["tags"] == ["DT", "NN", "VBZ"]

    sents = tmp_path / "sents.txt"
    sents.write_text("the dog runs\na cat eats and this car sees\n")
    out = tmp_path / "tags.conll"
    assert main(["predict", cfg.output_dir, "--task", "chunk", "--input", str(sents),
                 "--output", str(out), "--output-format", "conll"]) == 0
    blocks = out.read_text().strip().split("\n\n")
    assert len(blocks) == 2 and blocks[0].splitlines() == ["the\tB-NP", "dog\tI-NP", "runs\tB-VP"]
    out_json = tmp_path / "tags.jsonl"
    assert main(["predict", cfg.output_dir, "--task", "pos", "--input",
                 str(Path(tagging_config["data_dir"]) / "chunk.test"), "--input-format", "conll",
                 "--output", str(out_json)]) == 0
    rows = [json.loads(line) for line in out_json.read_text().splitlines()]
    assert len(rows) == 20 and all(len(r["tokens"]) == len(r["tags"]) for r in rows)


def test_single_task_taggers(tagging_config: dict):
    tagging_config["tasks"] = tagging_config["tasks"][1:]
    tagging_config["model"] = {**tagging_config["model"], "architecture": "single_task",
                               "char_embedding_dim": 0}
    results = train(load_config(raw=tagging_config), quiet=True)
    assert results["dev"]["pos"] >= 95.0 and results["dev"]["chunk"] >= 90.0, results


def test_tagging_config_errors(tagging_config: dict):
    bad = dict(tagging_config)
    bad["tasks"] = [{**tagging_config["tasks"][1], "format": "fdu"}]
    with pytest.raises(ConfigError, match="tagging tasks read conll"):
        load_config(raw=bad)
    sp = {**tagging_config, "model": {**tagging_config["model"], "architecture": "shared_private"}}
    with pytest.raises(ValueError, match="cannot serve tagging tasks"):   # now when the YAML loads
        train(load_config(raw=sp), quiet=True)


def test_bio_tag_set_is_completed_so_unseen_prefixes_are_not_errors():
    from polytask.kinds.tagging import complete_tag_set
    assert complete_tag_set(["B-LST", "B-NP", "I-NP", "O"], "BIO") == ["B-LST", "B-NP", "I-LST", "I-NP", "O"]
    assert "S-X" in complete_tag_set(["B-X", "O"], "BIOES")


def test_ner_file_with_its_own_tag_set_from_yaml_alone(tmp_path: Path, data_dir: Path, fdu_config: dict):
    """A CoNLL-2003-style file (4 columns, NER tags last, BIO) needs nothing but YAML: its tag set
    comes from the data, and the metric is span F1."""
    people, places = ["Ann", "Bob Smith", "Carla"], ["Paris", "New York", "Oslo"]
    for split, n, seed in (("train", 120, 3), ("test", 30, 4)):
        rng = random.Random(seed)
        lines = ["-DOCSTART- -X- -X- O", ""]
        for _ in range(n):
            who, where = rng.choice(people).split(), rng.choice(places).split()
            tags = [("B-PER" if i == 0 else "I-PER") for i in range(len(who))] + ["O", "O"] + \
                   [("B-LOC" if i == 0 else "I-LOC") for i in range(len(where))] + ["O"]
            for tok, tag in zip(who + ["flew", "to"] + where + ["."], tags):
                lines.append(f"{tok} NNP B-NP {tag}")
            lines.append("")
        (data_dir / f"ner.{split}").write_text("\n".join(lines) + "\n")
    raw = {**fdu_config, "tasks": [{"name": "ner", "type": "tagging", "format": "conll", "train": "ner.train",
                                    "test": "ner.test", "labels": None, "tag_column": -1, "tag_scheme": "BIO", "lowercase": False,
                                    "dev_split": {"policy": "tail", "size": 20}}]}
    raw["model"] = {**raw["model"], "char_embedding_dim": 8, "char_hidden_dim": 8}
    raw["trainer"] = {**raw["trainer"], "max_steps": 120, "eval_every": 40}
    cfg = load_config(raw=raw)
    results = train(cfg, quiet=True)
    info = json.loads((Path(cfg.output_dir) / "tasks.json").read_text())
    assert info["ner"]["metrics"] == ["span_f1"]
    assert {"B-PER", "I-PER", "B-LOC", "I-LOC", "O"} <= set(info["ner"]["labels"])
    assert results["dev"]["ner"] >= 90.0, results


def test_shared_memory_tags_every_step(tagging_config: dict):
    """ARC-II (local + global memory) as a tagger: per-step outputs through the tagging heads, CRF
    included, trained jointly with a classification task on the same shared memory."""
    raw = {**tagging_config, "model": {**tagging_config["model"], "architecture": "shared_memory_arc2",
                                        "memory_slots": 4, "memory_width": 8}}
    raw["trainer"] = {**raw["trainer"], "max_steps": 200}
    cfg = load_config(raw=raw)
    results = train(cfg, quiet=True)
    assert results["dev"]["pos"] >= 90.0, results
    assert results["dev"]["chunk"] >= 80.0, results
    run = load_run(cfg.output_dir)
    (pred,) = predict_tagging(run, "chunk", ["the dog runs"])
    assert pred["tags"] == ["B-NP", "I-NP", "B-VP"]


def test_sentences_longer_than_max_length_are_scored_on_every_word(tagging_config: dict):
    """data.max_length 4 words against test sentences of 3 and 7: the 7-word ones are tagged in two
    pieces, and the test accuracy counts all their words (as the CLI's predict tags them)."""
    from polytask.evaluation.predictions import read_predictions
    tagging_config["data"] = {**tagging_config.get("data", {}), "max_length": 4}
    cfg = load_config(raw=tagging_config)
    results = train(cfg, quiet=True)
    gold, pred = read_predictions(Path(cfg.output_dir))["pos"]
    lengths = [len(block.splitlines()) for block in
               (Path(tagging_config["data_dir"]) / "chunk.test").read_text().split("\n\n")[1:] if block.strip()]
    assert [len(g) for g in gold] == [len(p) for p in pred] == lengths and 7 in lengths
    right = sum(g == p for gs, ps in zip(gold, pred) for g, p in zip(gs, ps))
    assert results["test"]["pos"] == pytest.approx(100.0 * right / sum(lengths))
    assert results["test"]["pos"] >= 95.0, results
    run = load_run(cfg.output_dir)
    long = next(i for i, n in enumerate(lengths) if n == 7)
    labels = json.loads((Path(cfg.output_dir) / "tasks.json").read_text())["pos"]["labels"]
    words = (Path(tagging_config["data_dir"]) / "chunk.test").read_text().split("\n\n")[1:][long].split("\n")
    [record] = predict(run, "pos", [[w.split()[0] for w in words if w.strip()]])
    assert record["tags"] == [labels[t] for t in pred[long]]
