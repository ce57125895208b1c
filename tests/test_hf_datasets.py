"""``format: hf``: Hugging Face datasets saved with save_to_disk, or local data files, as task data.

The datasets are built here (from the toy tasks of conftest), saved, read back through a config,
and trained on for a few steps; bad input is one error naming the dataset, the split and the row.
"""
from __future__ import annotations

import copy
import sys

import pytest

datasets = pytest.importorskip("datasets")

from polytask.config import ConfigError, load_config  # noqa: E402
from polytask.data.hf import read_hf  # noqa: E402
from polytask.data.readers import DataError, read_table  # noqa: E402
from polytask.runner import load_run, predict, train  # noqa: E402
from polytask.tasks import load_task  # noqa: E402

from conftest import PAIR_LABELS, make_lines, make_pair_rows, make_raw_config  # noqa: E402

TAGS = ["D", "N", "V"]
TAG_WORDS = {"D": ["the", "a"], "N": ["cat", "dog", "bird"], "V": ["plays", "runs", "sings"]}


def pair_dict(with_test: bool = True):
    """A DatasetDict of (premise, hypothesis, ClassLabel) rows: train 60, validation 20 (and test)."""
    features = datasets.Features({"premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=list(PAIR_LABELS))})

    def split(n, seed):
        rows = make_pair_rows(n, seed)
        return datasets.Dataset.from_dict({"premise": [a.capitalize() for a, _, _ in rows],
                                           "hypothesis": [b for _, b, _ in rows],
                                           "label": [PAIR_LABELS.index(c) for _, _, c in rows]}, features=features)
    out = {"train": split(60, 1), "validation": split(20, 2)}
    if with_test:
        out["test"] = split(10, 3)
    return datasets.DatasetDict(out)


def single_rows(n: int, seed: int) -> dict:
    lines = make_lines("a", n, seed)
    return {"sentence": [text for _, text in lines], "label": [int(label) for label, _ in lines]}


def tag_dict():
    import random
    rng = random.Random(4)
    features = datasets.Features({"words": datasets.Sequence(datasets.Value("string")),
                                  "pos": datasets.Sequence(datasets.ClassLabel(names=TAGS))})

    def split(n):
        words, tags = [], []
        for _ in range(n):
            sentence = ["D", "N", "V", "D", "N"]
            words.append([rng.choice(TAG_WORDS[t]) for t in sentence])
            tags.append([TAGS.index(t) for t in sentence])
        return datasets.Dataset.from_dict({"words": words, "pos": tags}, features=features)
    return datasets.DatasetDict({"train": split(60), "test": split(20)})


@pytest.fixture
def hf_data(tmp_path):
    """``pairs/`` (a saved DatasetDict), ``single/{train,test}.parquet``, ``single.csv`` and ``tags/``."""
    data = tmp_path / "data"
    pair_dict().save_to_disk(str(data / "pairs"))
    (data / "single").mkdir(parents=True)
    datasets.Dataset.from_dict(single_rows(60, 1)).to_parquet(str(data / "single" / "train.parquet"))
    datasets.Dataset.from_dict(single_rows(20, 2)).to_parquet(str(data / "single" / "test.parquet"))
    datasets.Dataset.from_dict(single_rows(20, 2)).save_to_disk(str(data / "single-test"))   # one Dataset
    tag_dict().save_to_disk(str(data / "tags"))
    return data


PAIR = {"name": "p", "type": "pair_classification", "format": "hf", "train": "pairs", "text_column": "premise",
        "text_b_column": "hypothesis", "split": {"train": "train", "dev": "validation", "test": "test"}}
SINGLE = {"name": "a", "type": "classification", "format": "hf", "train": "single/train.parquet",
          "test": "single/test.parquet", "text_column": "sentence", "dev_split": {"policy": "tail", "size": 10}}


def raw_config(tmp_path, data, tasks, **trainer) -> dict:
    raw = make_raw_config(data, tmp_path / "run")
    raw["task_defaults"] = {}
    raw["tasks"] = [copy.deepcopy(t) for t in tasks]
    raw["trainer"].update(trainer)
    return raw


def test_splits_come_from_the_mapping_and_labels_from_the_class_label(tmp_path, hf_data):
    cfg = load_config(raw=raw_config(tmp_path, hf_data, [PAIR, SINGLE]))
    pair = load_task(cfg.tasks[0], hf_data)
    assert (len(pair.train), len(pair.dev), len(pair.test)) == (60, 20, 10)
    assert pair.labels == list(PAIR_LABELS)                   # ClassLabel names, not 0 / 1
    built = pair_dict()
    first = built["validation"][0]
    assert pair.dev[0].label == PAIR_LABELS[first["label"]]
    assert pair.dev[0].text == first["premise"] and pair.dev[0].text[0].isupper()    # raw text, case kept
    assert pair.dev[0].tokens[0] == first["premise"].split()[0].lower()             # word-vector tokens lowercased
    assert pair.dev[0].text_b == first["hypothesis"]
    single = load_task(cfg.tasks[1], hf_data)                 # parquet files, dev carved from the train tail
    assert (len(single.train), len(single.dev), len(single.test)) == (50, 10, 20)
    assert single.labels == ["0", "1"]                         # integer labels as text
    assert single.dev[-1].text == single_rows(60, 1)["sentence"][-1]


def test_a_dev_split_is_carved_from_train_when_the_mapping_names_none(tmp_path, hf_data):
    task = dict(PAIR, split={"train": "train", "test": "validation"}, dev_split={"policy": "random", "size": 15})
    loaded = load_task(load_config(raw=raw_config(tmp_path, hf_data, [task])).tasks[0], hf_data)
    assert (len(loaded.train), len(loaded.dev), len(loaded.test)) == (45, 15, 20)
    assert {ex.text for ex in loaded.dev} <= set(pair_dict()["train"]["premise"])


def test_csv_and_a_single_saved_dataset_read_as_one_split(tmp_path, hf_data):
    rows = single_rows(12, 5)
    datasets.Dataset.from_dict(rows).to_csv(str(hf_data / "single.csv"), index=False)
    examples, _ = read_hf(hf_data / "single.csv", text_column="sentence")
    assert [ex.text for ex in examples] == rows["sentence"] and [ex.label for ex in examples] == list(
        map(str, rows["label"]))
    examples, _ = read_hf(hf_data / "single-test", role="test", text_column="sentence")
    assert len(examples) == 20


def test_hf_tasks_train_and_predict(tmp_path, hf_data):
    """A pair task (saved DatasetDict, ClassLabel) and a single-text task (parquet files) train
    together on a tiny BiLSTM; the run predicts with the ClassLabel names."""
    raw = raw_config(tmp_path, hf_data, [PAIR, SINGLE], max_steps=150, eval_every=50)
    results = train(load_config(raw=raw), quiet=True)
    assert results["dev"]["a"] >= 89.99 and results["dev"]["p"] >= 79.99, results
    run = load_run(raw["output_dir"])
    yes, no = predict(run, "p", [["we saw the film", "indeed we saw it"], ["we saw the film", "we never saw it"]])
    assert (yes["label"], no["label"]) == ("entailment", "contradiction")


def test_hf_tagging_trains_on_class_label_tags(tmp_path, hf_data):
    task = {"name": "t", "type": "tagging", "format": "hf", "train": "tags", "token_column": "words",
            "tag_column": "pos", "split": {"test": "test"}, "dev_split": {"policy": "tail", "size": 10}}
    raw = raw_config(tmp_path, hf_data, [task], max_steps=60, eval_every=30)
    loaded = load_task(load_config(raw=raw).tasks[0], hf_data)
    assert loaded.labels == TAGS and loaded.train[0].tags == [TAGS[i] for i in tag_dict()["train"][0]["pos"]]
    assert loaded.train[0].words == tag_dict()["train"][0]["words"]
    results = train(load_config(raw=raw), quiet=True)
    assert results["test"]["t"] >= 95.0, results
    [record] = predict(load_run(raw["output_dir"]), "t", ["the dog sings a cat"])
    assert record["tags"] == ["D", "N", "V", "D", "N"]


def test_pretrained_encoder_reads_the_raw_text_of_an_hf_pair(tmp_path, hf_data):
    """The ids a pretrained tokenizer gives an hf pair are tokenizer(premise, hypothesis) of the
    dataset's own strings (case kept), as for the other readers."""
    from test_pretrained_encoders import save_tiny_bert
    from polytask.kinds import get_kind
    from polytask.modules.pretrained import load_pretrained_vocab
    built = pair_dict()["train"]
    words = sorted({w.lower() for text in list(built["premise"]) + list(built["hypothesis"]) for w in text.split()})
    bert = save_tiny_bert(tmp_path / "bert", words, lowercase=False)
    raw = raw_config(tmp_path, hf_data, [PAIR])
    task = load_task(load_config(raw=raw).tasks[0], hf_data)
    vocab = load_pretrained_vocab(str(bert), 64)
    [item] = get_kind("pair_classification").encode(task.train[:1], vocab, task.labels, 64)
    from transformers import AutoTokenizer
    expected = AutoTokenizer.from_pretrained(str(bert))(built[0]["premise"], built[0]["hypothesis"])["input_ids"]
    assert item.ids == expected and item.ids_b is None


# ----------------------------------------------------------------------------- bad input

def refused(tmp_path, data, task) -> str:
    raw = raw_config(tmp_path, data, [task])
    with pytest.raises(DataError) as info:
        load_task(load_config(raw=raw).tasks[0], data)
    return str(info.value)


def test_a_missing_column_names_it_the_columns_and_the_dataset(tmp_path, hf_data):
    message = refused(tmp_path, hf_data, dict(PAIR, text_b_column="hypotesis"))
    assert message == (f"{hf_data / 'pairs'} (split 'train'): text_b_column: no column 'hypotesis' "
                       "(columns: premise, hypothesis, label)")
    message = refused(tmp_path, hf_data, dict(SINGLE, text_column="text"))
    assert message.startswith(f"{hf_data / 'single' / 'train.parquet'}: text_column: no column 'text' (columns: ")


def test_a_missing_split_names_it_and_the_splits(tmp_path, hf_data):
    message = refused(tmp_path, hf_data, dict(PAIR, split={"train": "train", "test": "dev"},
                                              dev_split={"policy": "none"}))
    assert message == (f"{hf_data / 'pairs'}: no split 'dev' for the task's test split (splits: train, validation, "
                       "test); say which in the task's split: mapping (split: {test: NAME})")
    message = refused(tmp_path, hf_data, dict(SINGLE, split={"test": "validation"}))
    assert "names a split, but this is one dataset without named splits" in message


def test_an_empty_second_text_names_the_dataset_split_and_row(tmp_path, hf_data):
    broken = pair_dict()
    rows = broken["validation"].to_dict()
    rows["hypothesis"][7] = "  "
    broken["validation"] = datasets.Dataset.from_dict(rows, features=broken["validation"].features)
    broken.save_to_disk(str(hf_data / "broken"))
    message = refused(tmp_path, hf_data, dict(PAIR, train="broken"))
    assert message == (f"{hf_data / 'broken'} (split 'validation'), row 7: the second text of the pair "
                       "(column 'hypothesis') is empty")


def test_a_non_numeric_regression_target_names_the_dataset_split_and_row(tmp_path, hf_data):
    rows = {"a": ["one text", "two texts", "three"], "b": ["x", "y", "z"], "score": ["1.5", "high", "2"]}
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows)}).save_to_disk(str(hf_data / "sts"))
    task = {"name": "s", "type": "regression", "format": "hf", "train": "sts", "text_column": "a",
            "text_b_column": "b", "label_column": "score", "dev_split": {"policy": "none"}}
    assert refused(tmp_path, hf_data, task) == (f"{hf_data / 'sts'} (split 'train'), row 1: target 'high' in column "
                                                "'score' is not a finite number (a regression task)")
    rows["score"][1] = "3"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows)}).save_to_disk(str(hf_data / "sts2"))
    task["train"] = "sts2"
    loaded = load_task(load_config(raw=raw_config(tmp_path, hf_data, [task])).tasks[0], hf_data)
    assert [float(ex.label) for ex in loaded.train] == [1.5, 3.0, 2.0]


def test_an_unknown_label_names_the_split_and_row(tmp_path, hf_data):
    message = refused(tmp_path, hf_data, dict(PAIR, labels=["entailment", "neutral"]))
    assert message.startswith(f"{hf_data / 'pairs'} (split 'train'), row ")
    assert "unknown label 'contradiction'" in message


def test_a_path_that_is_not_a_dataset_is_refused(tmp_path, hf_data):
    (hf_data / "empty").mkdir()
    assert "not a dataset saved with save_to_disk" in refused(tmp_path, hf_data, dict(PAIR, train="empty"))
    assert refused(tmp_path, hf_data, dict(PAIR, train="nowhere")).startswith(f"{hf_data / 'nowhere'}: not found")


def test_a_missing_datasets_package_names_the_extra(tmp_path, hf_data, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)             # import datasets -> ImportError
    message = refused(tmp_path, hf_data, PAIR)
    assert "needs the datasets package: pip install 'polytask[hf]'" in message


def test_split_keys_are_checked_when_the_config_loads(tmp_path, hf_data):
    def config_error(task) -> str:
        with pytest.raises(ConfigError) as info:
            load_config(raw=raw_config(tmp_path, hf_data, [task]))
        return str(info.value)
    assert "tasks[0].split: names the splits of a Hugging Face dataset (format: hf)" in config_error(
        dict(PAIR, format="tsv"))
    assert "tasks[0].split.validation: not a role of a split (roles: train, dev, test, unlabeled)" in config_error(
        dict(PAIR, split={"validation": "validation"}))
    tag = {"name": "t", "type": "tagging", "format": "hf", "train": "tags", "tag_column": "pos"}
    assert "tasks[0].token_column: a Hugging Face dataset's columns are named" in config_error(tag)


def test_hf_data_never_reaches_the_network(tmp_path, hf_data, monkeypatch):
    import socket
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("no network in this test")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    cfg = load_config(raw=raw_config(tmp_path, hf_data, [PAIR, SINGLE]))
    assert len(load_task(cfg.tasks[1], hf_data).test) == 20 and len(load_task(cfg.tasks[0], hf_data).test) == 10
    assert attempts == []


# ----------------------------------------------------------------------------- the same rules for tables

def test_a_pair_with_an_empty_second_column_names_the_file_and_line(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("s1\ts2\tlabel\na b\tc d\tyes\ne f\t \tno\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        read_table(path, fmt="tsv", text_column="s1", text_b_column="s2", label_column="label")
    assert str(info.value) == f"{path}:3: the second text of the pair (column 's2') is empty"
    path.write_text("s1,s2,label\n,c d,yes\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"pairs.tsv:2: the first text of the pair \(column 's1'\) is empty"):
        read_table(path, fmt="csv", text_column="s1", text_b_column="s2", label_column="label")


def test_a_regression_target_that_is_not_a_number_names_the_csv_file_and_line(tmp_path):
    (tmp_path / "sts.csv").write_text("a,b,score\none text,another,1.5\ntwo,texts,n/a\n", encoding="utf-8")
    task = {"name": "s", "type": "regression", "format": "csv", "train": "sts.csv", "text_column": "a",
            "text_b_column": "b", "label_column": "score", "dev_split": {"policy": "none"}}
    with pytest.raises(DataError) as info:
        load_task(load_config(raw=raw_config(tmp_path, tmp_path, [task])).tasks[0], tmp_path)
    assert str(info.value) == (f"{tmp_path / 'sts.csv'}:3: target 'n/a' in column 'score' is not a finite number "
                               "(a regression task)")
