"""Strict config loading: unknown keys, wrong types, choices, overrides, task defaults, registry."""
from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path

import pytest
import torch

from polytask.config import (ConfigError, ExperimentConfig, apply_overrides, config_differences, load_config,
                             save_config)
from polytask.data.batching import Encoded
from polytask.kinds import get_kind
from polytask.models import REGISTRY, TaskSpec, build_model

from conftest import classes, make_raw_config, write_yaml

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("**/*.yaml"))


@pytest.fixture
def raw(tmp_path) -> dict:
    # loading never touches the data files, so they need not exist
    return make_raw_config(tmp_path / "data", tmp_path / "run")


def test_tiny_config_loads(raw):
    cfg = load_config(raw=raw)
    assert isinstance(cfg, ExperimentConfig)
    assert [t.name for t in cfg.tasks] == ["a", "b"]
    assert cfg.model.encoder.hidden_dim == 16
    assert cfg.trainer.max_steps == 120
    assert cfg.tasks[0].dev_split.policy == "tail" and cfg.tasks[0].dev_split.size == 10


def test_unknown_nested_key_names_the_key_path(raw):
    raw["model"]["encoder"]["hiden_dim"] = 8
    with pytest.raises(ConfigError) as info:
        load_config(raw=raw)
    msg = str(info.value)
    assert "model.encoder.hiden_dim" in msg
    assert "unknown key" in msg
    assert "hidden_dim" in msg  # the known keys are listed


def test_unknown_key_in_a_file_names_the_file(raw, tmp_path):
    raw["trainer"]["max_stpes"] = 3
    path = write_yaml(raw, tmp_path / "exp.yaml")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert "trainer.max_stpes" in str(info.value)


def test_unknown_key_inside_a_task_names_the_task_index(raw):
    raw["tasks"][1]["dev_split"] = {"policy": "tail", "sise": 3}
    with pytest.raises(ConfigError, match=r"tasks\[1\]\.dev_split\.sise"):
        load_config(raw=raw)


@pytest.mark.parametrize("key_path, value, expected", [
    ("trainer.max_steps", "abc", "expected an integer"),
    ("trainer.max_steps", True, "expected an integer"),
    ("trainer.lr", "fast", "expected a number"),
    ("trainer.progress", "yes please", "expected true/false"),
    ("model.encoder.kernel_sizes", 3, "expected a list"),
    ("model.encoder", "bilstm", "expected a mapping"),
])
def test_wrong_type_names_the_key(raw, key_path, value, expected):
    node = raw
    *parents, last = key_path.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    with pytest.raises(ConfigError) as info:
        load_config(raw=raw)
    assert key_path in str(info.value)
    assert expected in str(info.value)


def test_wrong_type_in_a_list_names_the_element(raw):
    raw["model"]["encoder"]["kernel_sizes"] = [3, "four"]
    with pytest.raises(ConfigError, match=r"model\.encoder\.kernel_sizes\[1\]"):
        load_config(raw=raw)


def test_int_is_accepted_for_a_float_field(raw):
    raw["trainer"]["lr"] = 1
    cfg = load_config(raw=raw)
    assert cfg.trainer.lr == 1.0 and isinstance(cfg.trainer.lr, float)


@pytest.mark.parametrize("key_path, value", [
    ("trainer.optimizer", "sgd"),
    ("trainer.schedule", "random"),
    ("model.encoder.type", "gru"),
    ("model.pooling", "sum"),
])
def test_literal_violation_lists_the_choices(raw, key_path, value):
    node = raw
    *parents, last = key_path.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    with pytest.raises(ConfigError) as info:
        load_config(raw=raw)
    msg = str(info.value)
    assert key_path in msg and repr(value) in msg
    assert "is not one of" in msg


def test_literal_violation_in_a_task(raw):
    raw["tasks"][0]["format"] = "xml"
    with pytest.raises(ConfigError, match=r"tasks\[0\]\.format: 'xml' is not one of"):
        load_config(raw=raw)


@pytest.mark.parametrize("mutate, key", [
    (lambda r: r["trainer"].__setitem__("max_steps", 0), "trainer.max_steps"),
    (lambda r: r["model"].__setitem__("dropout", 1.0), "model.dropout"),
    (lambda r: r.__setitem__("tasks", []), "tasks"),
    (lambda r: r["tasks"].append({"name": "a"}), "duplicate task name"),
])
def test_cross_field_validation(raw, mutate, key):
    mutate(raw)
    with pytest.raises(ConfigError, match=key):
        load_config(raw=raw)


def test_task_without_train_file_is_rejected(raw):
    del raw["task_defaults"]["train"]
    with pytest.raises(ConfigError, match=r"tasks\[0\]\.train"):
        load_config(raw=raw)


# ----------------------------------------------------------------------------- overrides


def test_dotted_overrides_are_parsed_as_yaml(raw):
    cfg = load_config(raw=raw, overrides=["trainer.max_steps=7", "trainer.lr=0.5",
                                          "trainer.progress=true", "model.encoder.type=cnn",
                                          "model.encoder.kernel_sizes=[2, 3]",
                                          "trainer.clip_norm=null", "output_dir=elsewhere"])
    assert cfg.trainer.max_steps == 7
    assert cfg.trainer.lr == 0.5
    assert cfg.trainer.progress is True
    assert cfg.model.encoder.type == "cnn"
    assert cfg.model.encoder.kernel_sizes == [2, 3]
    assert cfg.trainer.clip_norm is None
    assert cfg.output_dir == "elsewhere"


def test_overrides_create_missing_nested_sections(raw):
    del raw["model"]
    cfg = load_config(raw=raw, overrides=["model.encoder.hidden_dim=12", "model.embedding_dim=10"])
    assert cfg.model.encoder.hidden_dim == 12
    assert cfg.model.embedding_dim == 10
    assert cfg.model.encoder.type == "bilstm"  # the rest keeps its defaults


def test_overrides_do_not_mutate_the_input(raw):
    before = copy.deepcopy(raw)
    out = apply_overrides(raw, ["trainer.max_steps=3", "model.encoder.num_layers=2"])
    assert raw == before
    assert out["trainer"]["max_steps"] == 3 and out["model"]["encoder"]["num_layers"] == 2


def test_override_into_a_list_element(raw):
    cfg = load_config(raw=raw, overrides=["tasks.1.dev_split.size=4", "tasks.0.labels=[x, y]"])
    assert cfg.tasks[1].dev_split.size == 4
    assert cfg.tasks[0].labels == ["x", "y"]
    assert cfg.tasks[1].labels == ["0", "1"]


def test_override_with_an_unknown_key_is_rejected(raw):
    with pytest.raises(ConfigError, match=r"trainer\.max_step: unknown key"):
        load_config(raw=raw, overrides=["trainer.max_step=3"])


def test_override_with_a_wrong_type_is_rejected(raw):
    with pytest.raises(ConfigError, match=r"trainer\.max_steps: expected an integer"):
        load_config(raw=raw, overrides=["trainer.max_steps=many"])


def test_override_without_equals_sign(raw):
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config(raw=raw, overrides=["trainer.max_steps"])


def test_override_below_a_scalar_is_rejected(raw):
    with pytest.raises(ConfigError, match="trainer.max_steps is not a section"):
        load_config(raw=raw, overrides=["trainer.max_steps.x=1"])


@pytest.mark.parametrize("override", ["tasks.5.train=x", "tasks.first.train=x", "trainer.lr=[1"])
def test_malformed_override_is_a_config_error(override):
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_config(raw={"tasks": [{"name": "a", "train": "t"}]}, overrides=[override])


def test_override_into_a_task_given_by_name():
    cfg = load_config(raw={"tasks": ["a"]}, overrides=["tasks.0.train=x"])
    assert cfg.tasks[0].name == "a" and cfg.tasks[0].train == "x"


# ----------------------------------------------------------------------------- task defaults


def test_task_defaults_expand_name_placeholders(raw):
    cfg = load_config(raw=raw)
    assert [t.train for t in cfg.tasks] == ["fdu/a.task.train", "fdu/b.task.train"]
    assert [t.test for t in cfg.tasks] == ["fdu/a.task.test", "fdu/b.task.test"]
    assert all(t.labels == ["0", "1"] for t in cfg.tasks)


def test_task_entries_override_defaults_and_bare_names_are_accepted(raw):
    raw["tasks"] = ["a", {"name": "b", "test": "other/{name}.tsv", "labels": ["n", "y"]}]
    cfg = load_config(raw=raw)
    assert cfg.tasks[0].name == "a" and cfg.tasks[0].test == "fdu/a.task.test"
    # a task's own value is taken literally (no placeholder expansion there)
    assert cfg.tasks[1].test == "other/{name}.tsv"
    assert cfg.tasks[1].labels == ["n", "y"]


def test_task_defaults_are_copied_per_task(raw):
    cfg = load_config(raw=raw)
    cfg.tasks[0].labels.append("2")
    cfg.tasks[0].dev_split.size = 99
    assert cfg.tasks[1].labels == ["0", "1"]
    assert cfg.tasks[1].dev_split.size == 10


def test_task_defaults_must_be_a_mapping(raw):
    raw["task_defaults"] = ["format: fdu"]
    with pytest.raises(ConfigError, match="task_defaults"):
        load_config(raw=raw)


def test_unknown_placeholder_in_task_defaults_is_a_config_error(raw):
    raw["task_defaults"]["train"] = "fdu/{name}.{split}"
    with pytest.raises(ConfigError, match=r"task_defaults\.train"):
        load_config(raw=raw)


def test_saved_config_loads_back_identically(raw, tmp_path):
    cfg = load_config(raw=raw)
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    # the defaults are already merged into the tasks, so the saved file leaves them empty
    assert again.task_defaults == {}
    assert dataclasses.replace(again, task_defaults=cfg.task_defaults) == cfg


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_invalid_yaml_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("trainer: {max_steps: [1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


# ----------------------------------------------------------------------------- architectures


def test_unknown_architecture_lists_the_known_ones(raw):
    raw["model"]["architecture"] = "mixture_of_wizards"
    with pytest.raises(ConfigError) as at_load:          # caught before any data is read
        load_config(raw=raw)
    cfg = load_config(raw={**raw, "model": {**raw["model"], "architecture": "hard_sharing"}})
    cfg.model.architecture = "mixture_of_wizards"
    with pytest.raises(ConfigError) as at_build:
        build_model(cfg, [classes("a", 2), classes("b", 2)], vocab_size=20)
    for info in (at_load, at_build):
        msg = str(info.value)
        assert "model.architecture" in msg and "mixture_of_wizards" in msg
        for name in REGISTRY:
            assert name in msg


def test_the_example_configs_exist():
    assert len(CONFIGS) >= 4, CONFIGS


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_config_loads_and_builds(path):
    cfg = load_config(path, overrides=["model.embedding_dim=8", "model.encoder.hidden_dim=8",
                                       "model.encoder.ff_dim=16", "model.encoder.num_heads=2"])
    assert cfg.model.architecture in REGISTRY
    for task in cfg.tasks:
        assert task.train and "{" not in task.train, task.train
    tags = ("B-X", "I-X", "O")
    specs = [TaskSpec(t.name, t.type, () if t.type == "regression" else tuple(t.labels or tags),
                      scheme=t.tag_scheme, head=t.tagging_head, pair=get_kind(t.type).pair(t)) for t in cfg.tasks]
    chars = 10 if cfg.model.char_embedding_dim else 0
    model = build_model(cfg, specs, vocab_size=30, num_chars=chars)
    model.eval()
    first = cfg.tasks[0].name
    if specs[0].kind == "qa":
        items = [Encoded([4, 5, 30, 6], [7, 8], -1, answer=[2, 30, 3], oov=["zz"], answers_text=["zz"]),
                 Encoded([6, 7], [9], -1, answer=[2, 5, 3], oov=[], answers_text=["x"])]
        if chars:                                                   # character ids per context / question token
            for it in items:
                it.chars, it.chars_b = [[3, 4]] * len(it.ids), [[5]] * len(it.ids_b)
        with torch.no_grad():
            out = model(get_kind("qa").collate(cfg.tasks[0].name, items, [0, 1]))
        assert out.logits.shape == (2, 2, 31) and torch.isfinite(out.loss)
        return
    if specs[0].kind == "tagging":
        items = [Encoded([2, 3, 4, 5], None, -1, [0, 1, 2, 0], [[3, 4]] * 4),
                 Encoded([6, 7], None, -1, [2, 0], [[5], [6, 7]])]
    else:
        cross_encoded = getattr(cfg.model, "pretrained", None)     # a pretrained tokenizer joins a pair's texts
        second = ([8, 9], [3]) if specs[0].pair and not cross_encoded else (None, None)
        items = [Encoded([2, 3, 4, 5], second[0], 0), Encoded([6, 7], second[1], 1)]
    batch = get_kind(specs[0].kind).collate(first, items, [0, 1])
    with torch.no_grad():
        out = model(batch)
    shape = {"tagging": (2, 4, specs[0].num_labels), "regression": (2,)}.get(specs[0].kind, (2, specs[0].num_labels))
    assert out.logits.shape == shape
    assert torch.isfinite(out.loss)


def test_config_differences_name_changed_keys_only():
    saved = {"output_dir": "a", "model": {"encoder": {"hidden_dim": 64}, "dropout": 0.3},
             "tasks": [{"name": "x", "train": "x.txt"}]}
    now = {"output_dir": "b", "model": {"encoder": {"hidden_dim": 128}, "dropout": 0.3, "new_option": 1},
           "tasks": [{"name": "x", "train": "y.txt", "added": None}]}
    assert config_differences(saved, now) == ["model.encoder.hidden_dim: 64 -> 128", "tasks.0.train: 'x.txt' -> 'y.txt'"]
    assert config_differences(saved, saved) == []
    # only the keys a raw config sets: a changed default elsewhere is not a difference
    assert config_differences(saved, now, only={"model": {"dropout": 0.3}, "tasks": ["x"]}) == []
    assert config_differences(saved, now, only={"model": {"encoder": {"hidden_dim": 128}}}) == \
        ["model.encoder.hidden_dim: 64 -> 128"]


def test_config_differences_compare_free_form_mappings_whole():
    """weighting_options keys are the user's: one added or removed is a difference."""
    saved = {"trainer": {"weighting_options": {}, "lr": 0.1}}
    now = {"trainer": {"weighting_options": {"window": 3}, "lr": 0.1}}
    assert config_differences(saved, now) == ["trainer.weighting_options: {} -> {'window': 3}"]
    assert config_differences(now, saved) == ["trainer.weighting_options: {'window': 3} -> {}"]
