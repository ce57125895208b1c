"""decaNLP in polytask: tasks cast as QA from YAML, MQAN trained end to end, answers predicted."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from polytask.config import ConfigError, load_config
from polytask.runner import load_run, predict, train


def qa_config(fdu_config: dict, architecture: str = "mqan") -> dict:
    raw = dict(fdu_config)
    raw["task_defaults"] = {**raw["task_defaults"], "type": "qa", "labels": None}
    raw["tasks"] = [{"name": "a", "question": "is it good or bad ?", "answer_words": {"0": "bad", "1": "good"}},
                    {"name": "b", "question": "yes or no ?", "answer_words": {"0": "no", "1": "yes"}}]
    raw["model"] = {"architecture": architecture, "embedding_dim": 16, "dropout": 0.0, "max_answer_length": 4,
                    "encoder": {"type": "bilstm", "hidden_dim": 32, "num_layers": 1, "num_heads": 2}}
    raw["trainer"] = {**raw["trainer"], "max_steps": 150, "eval_every": 50, "lr": 0.003}
    return raw


def test_mqan_answers_classification_tasks_cast_as_questions(fdu_config, tmp_path):
    raw = qa_config(fdu_config)
    results = train(load_config(raw=raw), quiet=True)
    assert min(results["dev"].values()) >= 89.99, results        # exact match of the answer word
    run = load_run(raw["output_dir"])
    answers = predict(run, "a", [("the movie was good", "is it good or bad ?"),
                                 ("the movie was bad", "is it good or bad ?")])
    assert [a["answer"] for a in answers] == ["good", "bad"]
    info = json.loads((Path(raw["output_dir"]) / "tasks.json").read_text())
    assert info["a"]["type"] == "qa" and info["a"]["metrics"] == ["em"]


@pytest.mark.parametrize("architecture", ["mqan", "seq2seq"])
def test_answers_come_from_the_context_when_the_answer_words_are_not_in_it(fdu_config, architecture):
    """The toy texts hold "good"/"bad" and "yes"/"no"; asked with other answer words, a model must
    read the keyword in the context and answer with a word it can only take from the question or
    its vocabulary, not copy the one it sees."""
    raw = qa_config(fdu_config, architecture)
    raw["tasks"] = [{"name": "a", "question": "is it positive or negative ?",
                     "answer_words": {"0": "negative", "1": "positive"}},
                    {"name": "b", "question": "true or false ?", "answer_words": {"0": "false", "1": "true"}}]
    results = train(load_config(raw=raw), quiet=True)
    assert min(results["dev"].values()) >= 89.99, results


def test_seq2seq_baseline_trains(fdu_config):
    raw = qa_config(fdu_config, "seq2seq")
    raw["trainer"]["max_steps"] = 40
    results = train(load_config(raw=raw), quiet=True)
    assert set(results["dev"]) == {"a", "b"}


def test_squad_file_split_by_article_trains(fdu_config, tmp_path):
    articles = []
    for a in range(4):
        qas = [{"id": f"{a}-{i}", "question": f"what is item {i} ?",
                "answers": [{"text": f"w{a}{i}", "answer_start": 0}]} for i in range(6)]
        context = " ".join(f"item {i} is w{a}{i} ." for i in range(6))
        articles.append({"title": f"T{a}", "paragraphs": [{"context": context, "qas": qas}]})
    path = Path(fdu_config["data_dir"]) / "squad.json"
    path.write_text(json.dumps({"version": "1.1", "data": articles}))
    raw = qa_config(fdu_config)
    raw["tasks"] = [{"name": "squad", "format": "squad", "train": "squad.json", "test": None,
                     "article_split": 0.5, "dev_split": {"policy": "random", "size": 2}, "tokenizer": "regex"}]
    raw["trainer"]["max_steps"] = 30
    results = train(load_config(raw=raw), quiet=True)
    from polytask.evaluation.predictions import read_predictions
    from polytask.kinds import get_kind
    gold, predicted = read_predictions(Path(raw["output_dir"]))["squad"]
    # the test split is the two held-out articles' 12 questions, scored with SQuAD F1 on what was predicted
    from collections import Counter
    assert sorted(Counter(g[0][1] for g in gold).values()) == [6, 6]      # answers w<article><i>
    again = get_kind("qa").score_against(gold, predicted, ("squad_f1",), {})["squad_f1"]
    assert abs(again - results["test"]["squad"]) < 1e-9


def test_qa_config_errors(fdu_config):
    raw = qa_config(fdu_config)
    raw["tasks"] = [{"name": "a"}]
    with pytest.raises(ConfigError, match="question template and answer_words"):
        load_config(raw=raw)
    raw = qa_config(fdu_config)
    raw["model"] = {k: v for k, v in raw["model"].items() if k not in ("max_answer_length", "beam_size")}
    raw["model"]["architecture"] = "hard_sharing"
    with pytest.raises(ValueError, match="mqan or seq2seq"):
        train(load_config(raw=raw), quiet=True)


@pytest.mark.parametrize("architecture", ["mqan", "seq2seq"])
def test_answering_architectures_refuse_other_task_types_when_the_yaml_loads(fdu_config, architecture):
    raw = qa_config(fdu_config, architecture)
    raw["tasks"][1] = {"name": "b", "type": "classification", "labels": ["0", "1"]}
    with pytest.raises(ConfigError, match=rf"tasks\[1\]\.type: the architecture '{architecture}' cannot serve "
                                          r"classification tasks \(b\)"):
        load_config(raw=raw)


def test_mqan_with_character_ngrams_trains_and_answers(fdu_config):
    """decaNLP's inputs: word vectors + the mean of character n-gram vectors. Trains, saves, loads
    and answers; a context word outside the vocabulary still gets a non-zero input vector."""
    import torch
    from polytask.kinds import get_kind
    from polytask.data.readers import Example
    raw = qa_config(fdu_config)
    raw["model"] = {**raw["model"], "char_embedding_dim": 8, "char_encoder": "ngram"}
    results = train(load_config(raw=raw), quiet=True)
    assert min(results["dev"].values()) >= 89.99, results
    run = load_run(raw["output_dir"])
    answers = predict(run, "a", [("the movie was good", "is it good or bad ?")])
    assert answers[0]["answer"] == "good"
    ex = Example(tokens=["zzyzxq"], tokens_b=["good", "?"], answers_text=[], line=1)   # an unseen word
    qa = get_kind("qa")
    batch = qa.collate("a", qa.encode([ex], run.vocab, [], 10, run.chars)).to(run.device)
    assert batch.tokens[0, 0] >= len(run.vocab)                    # OOV: its word vector is zeros ...
    x = run.model.net.eval()._embed(batch.tokens, batch.chars)
    assert x[0, 0, :16].abs().sum() == 0 and x[0, 0, 16:].abs().sum() > 0   # ... its n-grams are not
