"""Every numeric setting is checked against its range when a config loads (issue 23, item 5), and
numbers are read as YAML 1.2 writes them (``1e-4``) in files and in command-line overrides."""
from __future__ import annotations

import dataclasses
import math
import typing

import pytest

from polytask import catalog
from polytask.cli import main
from polytask.config import (COMMON_TASK_KEYS, LIMITS, ConfigError, ExperimentConfig, ModelConfig, apply_overrides,
                             load_config, model_limits, within)

from conftest import make_raw_config, write_yaml


@pytest.fixture
def raw(tmp_path) -> dict:
    return make_raw_config(tmp_path / "data", tmp_path / "run")      # loading reads no data file


def refusal(raw: dict, *overrides: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(raw=raw, overrides=list(overrides))
    return str(info.value)


# ----------------------------------------------------------------------------- the issue's cases


def test_lr_zero_is_refused(raw):
    assert refusal(raw, "trainer.lr=0") == "<config>: trainer.lr: must be > 0, got 0.0"


def test_negative_lr_names_the_key(raw):
    # before: torch's "Invalid learning rate: -1.0", raised when the optimizer was built
    assert refusal(raw, "trainer.lr=-1") == "<config>: trainer.lr: must be > 0, got -1.0"


def test_infinite_lr_is_refused(raw):
    assert refusal(raw, "trainer.lr=.inf") == "<config>: trainer.lr: must be a finite number > 0, got inf"
    assert "trainer.lr: must be a finite number > 0, got nan" in refusal(raw, "trainer.lr=.nan")


def test_negative_clip_norm_is_refused(raw):
    assert refusal(raw, "trainer.clip_norm=-1") == \
        "<config>: trainer.clip_norm: must be > 0 or null (no clipping), got -1.0"


def test_clip_norm_zero_is_refused_and_null_turns_clipping_off(raw):
    assert "trainer.clip_norm: must be > 0 or null (no clipping), got 0.0" in refusal(raw, "trainer.clip_norm=0")
    assert load_config(raw=raw, overrides=["trainer.clip_norm=null"]).trainer.clip_norm is None


def test_negative_patience_is_refused(raw):
    assert refusal(raw, "trainer.patience=-1") == \
        "<config>: trainer.patience: must be >= 1 or null (never stop early), got -1"
    assert "trainer.patience: must be >= 1" in refusal(raw, "trainer.patience=0")


def test_negative_dev_split_size_in_task_defaults_is_refused(raw):
    assert refusal(raw, "task_defaults.dev_split.size=-5") == \
        "<config>: tasks[0].dev_split.size: must be >= 1, got -5"


def test_eval_batch_size_zero_is_refused(raw):
    assert refusal(raw, "data.eval_batch_size=0") == "<config>: data.eval_batch_size: must be >= 1, got 0"


def test_huge_embedding_init_std_is_refused(raw):
    assert refusal(raw, "model.embedding_init_std=1.0e+38") == \
        "<config>: model.embedding_init_std: must be in (0, 10], got 1e+38"


def test_negative_warmup_and_zero_temperature_are_refused(raw):
    assert "trainer.warmup_steps: must be >= 0, got -3" in refusal(raw, "trainer.warmup_steps=-3")
    assert "trainer.temperature: must be > 0, got 0.0" in refusal(raw, "trainer.temperature=0")


def test_probability_of_one_is_refused(raw):
    assert "model.word_dropout: must be in [0, 1), got 1.0" in refusal(raw, "model.word_dropout=1")


def test_a_refusal_names_the_file(raw, tmp_path):
    raw["trainer"]["lr"] = 0
    path = write_yaml(raw, tmp_path / "exp.yaml")
    with pytest.raises(ConfigError, match=rf"^{tmp_path / 'exp.yaml'}: trainer\.lr: must be > 0"):
        load_config(path)


@pytest.mark.parametrize("override, key", [
    ("trainer.lr=0", "trainer.lr"), ("trainer.clip_norm=-1", "trainer.clip_norm"),
    ("trainer.patience=-1", "trainer.patience"), ("task_defaults.dev_split.size=-5", "tasks[0].dev_split.size"),
    ("data.eval_batch_size=0", "data.eval_batch_size"), ("trainer.lr=.inf", "trainer.lr"),
    ("model.embedding_init_std=1.0e+38", "model.embedding_init_std"), ("trainer.lr=-1", "trainer.lr"),
])
def test_issue_cases_exit_2_before_training(raw, tmp_path, capsys, override, key):
    """Before: exit 0 after training (lr=0, clip_norm=-1, patience=-1, lr=.inf, init std 1e38) or
    torch's message without the key (lr=-1)."""
    config = write_yaml(raw, tmp_path / "exp.yaml")
    assert main(["train", str(config), "--quiet", override]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"polytask: error: {config}: {key}: must be ") and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- YAML 1.2 numbers


@pytest.mark.parametrize("text, value", [("1e-4", 1e-4), ("1E-4", 1e-4), ("2e3", 2000.0), ("1.5e3", 1500.0),
                                         (".5e-2", 0.005), ("-1e-4", -1e-4), ("+3e0", 3.0), ("0.001", 0.001)])
def test_yaml_1_2_exponent_in_an_override(text, value):
    assert apply_overrides({}, [f"x={text}"])["x"] == value


def test_lr_1e_4_in_an_override_is_a_number(raw):
    # before: "trainer.lr: expected a number, got str '1e-4'" (YAML 1.1 reads 1e-4 as a string)
    assert load_config(raw=raw, overrides=["trainer.lr=1e-4"]).trainer.lr == 1e-4


def test_lr_1e_4_in_a_file_is_a_number(raw, tmp_path):
    path = tmp_path / "exp.yaml"
    write_yaml(raw, path)
    path.write_text(path.read_text().replace("lr: 0.01", "lr: 1e-4"))
    assert "lr: 1e-4" in path.read_text()
    assert load_config(path).trainer.lr == 1e-4


def test_yaml_1_2_numbers_leave_other_strings_alone():
    out = apply_overrides({}, ["a=1e", "b=e5", "c=1e-4x", "d=v1e3", "e=1.0.0"])
    assert out == {"a": "1e", "b": "e5", "c": "1e-4x", "d": "v1e3", "e": "1.0.0"}


def test_an_integer_setting_refuses_an_exponent_float(raw):
    assert "trainer.max_steps: expected an integer, got float 1000.0" in refusal(raw, "trainer.max_steps=1e3")


# ----------------------------------------------------------------------------- the table itself


def _numeric(tp) -> typing.Optional[type]:
    """int or float if the annotation ``tp`` holds a number (in an Optional, a Union or a list)."""
    if tp in (int, float):
        return tp
    for arg in typing.get_args(tp):
        found = _numeric(arg)
        if found is not None:
            return found
    return None


def _numeric_keys(cls: type, prefix: str, pattern: str) -> dict[str, type]:
    """Every numeric setting below dataclass ``cls`` as {LIMITS key: int or float}."""
    out: dict[str, type] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        key = f"{pattern}.{f.name}" if pattern else f.name
        inner = typing.get_args(tp) if typing.get_origin(tp) is typing.Union else (tp,)
        nested = next((a for a in inner if dataclasses.is_dataclass(a)), None)   # a section, or an optional one
        if nested is not None:
            out.update(_numeric_keys(nested, f"{prefix}.{f.name}", key))
        elif typing.get_origin(tp) is dict:
            if _numeric(typing.get_args(tp)[1]) is not None:
                out[f"{key}.*"] = _numeric(typing.get_args(tp)[1])
        elif any(typing.get_origin(a) is list for a in inner) and _numeric(tp) is not None:
            out[f"{key}.*"] = _numeric(tp)
        elif _numeric(tp) is not None:
            out[key] = _numeric(tp)
    return out


def _all_keys() -> dict[str, tuple[type, str]]:
    """Every numeric setting of every architecture: {key: (int/float, an architecture that takes it)}."""
    out: dict[str, tuple[type, str]] = {}
    for name in sorted(catalog.ARCHITECTURE_MODULES):
        cls = catalog.architecture(name)[0]
        hints = typing.get_type_hints(ExperimentConfig)
        for field in dataclasses.fields(ExperimentConfig):
            if field.name == "model":
                keys = _numeric_keys(cls, "model", "model")
            elif field.name == "tasks":
                keys = _numeric_keys(typing.get_args(hints["tasks"])[0], "tasks", "tasks.*")
            elif dataclasses.is_dataclass(hints[field.name]):
                keys = _numeric_keys(hints[field.name], field.name, field.name)
            else:
                keys = {field.name: hints[field.name]} if hints[field.name] in (int, float) else {}
            for key, tp in keys.items():
                out.setdefault(key, (tp, name))
    return out


ALL_KEYS = _all_keys()


def _rules() -> dict[str, str]:
    rules = dict(LIMITS)
    for name in catalog.ARCHITECTURE_MODULES:
        rules.update(model_limits(catalog.architecture(name)[0]))
    return rules


def test_every_numeric_setting_has_a_range():
    rules = _rules()
    missing = sorted(set(ALL_KEYS) - set(rules))
    assert not missing, f"numeric settings without a range in LIMITS (or the architecture's limits): {missing}"
    stale = sorted(set(rules) - set(ALL_KEYS))
    assert not stale, f"ranges for settings that do not exist: {stale}"


def test_the_model_settings_of_every_architecture_are_in_the_one_table():
    shared = set(_numeric_keys(ModelConfig, "model", "model"))
    assert shared and shared <= set(LIMITS), sorted(shared - set(LIMITS))


def test_within_reads_every_rule_form():
    assert within(1, ">= 1") and not within(0, ">= 1")
    assert within(0.5, "> 0") and not within(0, "> 0")
    assert within(0, "[0, 1)") and not within(1, "[0, 1)")
    assert within(10, "(0, 10]") and not within(0, "(0, 10]")
    assert within(-7, "any") and not within(math.inf, "any") and not within(math.nan, "> 0")
    assert within(3, ">= 1 or null (no limit)")
    with pytest.raises(ValueError):
        within(1, "positive")


def _probe(rule: str, tp: type) -> tuple[list, list]:
    """(values the rule refuses, values it accepts) at its bounds, of the setting's type."""
    body = rule.split(" or null")[0]
    if body == "any":
        bad, good = [], [-3, 0, 7]
    elif body.startswith((">", "<")):
        op, bound = body.split()
        bound = float(bound)
        step = 1 if tp is int else 0.5
        bad, good = {">=": ([bound - step], [bound]), ">": ([bound], [bound + step]),
                     "<=": ([bound + step], [bound]), "<": ([bound], [bound - step])}[op]
    else:
        low, high = (float(x) for x in body[1:-1].split(", "))
        bad = [low if body[0] == "(" else low - 0.1, high if body[-1] == ")" else high + 0.1]
        good = [low if body[0] == "[" else (low + high) / 2, high if body[-1] == "]" else (low + high) / 2]
    if tp is int:
        bad, good = [int(v) for v in bad if v == int(v)], [int(v) for v in good]
    else:
        bad += [math.inf, -math.inf, math.nan]
    return bad, good


def _override(key: str, value) -> str:
    text = {math.inf: ".inf", -math.inf: "-.inf"}.get(value, ".nan" if value != value else repr(value))
    key = key.replace("tasks.*", "tasks.0")
    if key.endswith(".*"):                     # a list element or a mapping value
        base = key[:-2]
        return f"{base}={{a: {text}}}" if base.endswith("task_layers") else f"{base}=[{text}]"
    return f"{key}={text}"


@pytest.mark.parametrize("key", sorted(ALL_KEYS))
def test_each_setting_is_checked_at_its_bounds(raw, key):
    tp, architecture = ALL_KEYS[key]
    rule = _rules()[key]
    bad, good = _probe(rule, tp)
    base = [f"model.architecture={architecture}"]
    if key.startswith("tasks.*.") and key.split(".")[2] not in COMMON_TASK_KEYS:
        # a task key only some kinds read: the task becomes such a kind (else the key is refused as unread)
        kind = next(name for name, k in catalog.task_kinds().items() if key.split(".")[2] in k.options)
        base.append(f"tasks.0.type={kind}")
    shown = key.replace("tasks.*", "tasks[0]").replace(".*", "")
    for value in bad:
        message = refusal(raw, *base, _override(key, value))
        assert f"{shown}" in message and "must be" in message, (value, message)
    for value in good:
        try:
            load_config(raw=raw, overrides=[*base, _override(key, value)])
        except ConfigError as exc:                 # another check (the architecture's tasks) may refuse
            assert "must be" not in str(exc) or shown not in str(exc), (value, str(exc))


def test_a_task_defaults_error_names_the_file_once(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("task_defaults: {train: '{name.nope}'}\ntasks: [a]\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: task_defaults.train: ") and str(info.value).count(str(path)) == 1
