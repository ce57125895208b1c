"""Fuzzing (issue 23, item 7): every reader and the config loader, given any bytes or any YAML
document, either return a result or raise one of polytask's own errors (:class:`PolytaskError`),
never another exception.

The examples are bounded and drawn from a fixed seed so the suite stays fast and repeatable; set
``POLYTASK_FUZZ_EXAMPLES=2000`` to search longer, with fresh random examples each run.
"""
from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402

from polytask import catalog  # noqa: E402
from polytask.config import ExperimentConfig, load_config  # noqa: E402
from polytask.data.conll import read_conll, read_conllu  # noqa: E402
from polytask.data.qa import read_squad  # noqa: E402
from polytask.data.readers import read_fdu, read_table  # noqa: E402
from polytask.errors import PolytaskError  # noqa: E402

from conftest import make_raw_config  # noqa: E402

_LONG = int(os.environ.get("POLYTASK_FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=_LONG or 40, derandomize=not _LONG, deadline=None, database=None)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "file"


# ----------------------------------------------------------------------------- inputs

# characters that mean something to one of the formats, plus a few that break naive decoding
_SPECIAL = "\t,\"'\r\x00\ufeff#-._:{}[]\\ \u00e9\x85\u2028\ud7ff\U0001f600"
_WORDS = st.sampled_from(["1", "0", "text", "label", "_", "NN", "B-NP", "-DOCSTART-", "1-2", "3.1", '"a,b"',
                          '{"text": "x", "label": "1"}', "null", "[1]", "data", "qas", "context"])
_LINE = st.lists(st.one_of(_WORDS, st.text(alphabet=_SPECIAL + "ab1", max_size=6)), max_size=12).map("".join)
_TEXT = st.lists(_LINE, max_size=8).map("\n".join)
_ENCODED = st.tuples(_TEXT, st.sampled_from(["utf-8", "utf-8", "utf-16", "utf-16-le", "cp1252", "utf-8-sig"])).map(
    lambda te: te[0].encode(te[1], errors="replace"))
ANY_FILE = st.one_of(st.binary(max_size=300), _ENCODED)

_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.sampled_from(["data", "title", "paragraphs", "context", "qas", "question",
                                                        "answers", "text", "answer_start", "id"]), inner, max_size=4),
                     max_leaves=12)


def _squad(value) -> bytes:
    import json
    return json.dumps({"data": value} if not isinstance(value, dict) else value, allow_nan=True).encode()


SQUAD_FILE = st.one_of(ANY_FILE, _JSON.map(_squad))


def _outcome(read, scratch: Path, data: bytes):
    scratch.write_bytes(data)
    try:
        return read(scratch)
    except PolytaskError:
        return None


# ----------------------------------------------------------------------------- readers


@FUZZ
@given(data=ANY_FILE, labeled=st.booleans())
def test_fuzz_fdu_reader(scratch, data, labeled):
    _outcome(lambda p: read_fdu(p, labeled=labeled), scratch, data)


@FUZZ
@given(data=ANY_FILE, header=st.booleans(), text=st.sampled_from(["text", 0, -1, 5]),
       label=st.sampled_from(["label", 1, -2, None]))
def test_fuzz_tsv_reader(scratch, data, header, text, label):
    _outcome(lambda p: read_table(p, fmt="tsv", text_column=text, label_column=label, header=header), scratch, data)


@FUZZ
@given(data=ANY_FILE, header=st.booleans(), text=st.sampled_from(["text", 0, -1]), label=st.sampled_from(["label", 1]))
def test_fuzz_csv_reader(scratch, data, header, text, label):
    _outcome(lambda p: read_table(p, fmt="csv", text_column=text, label_column=label, header=header,
                                  text_b_column=None), scratch, data)


@FUZZ
@given(data=st.one_of(ANY_FILE, st.lists(_JSON.map(lambda v: __import__("json").dumps(v)), max_size=4).map(
    lambda lines: "\n".join(lines).encode())), text=st.sampled_from(["text", 0]))
def test_fuzz_jsonl_reader(scratch, data, text):
    _outcome(lambda p: read_table(p, fmt="jsonl", text_column=text, label_column="label"), scratch, data)


@FUZZ
@given(data=ANY_FILE, token=st.sampled_from([0, 1, -1]), tag=st.sampled_from([-1, 1, 3]),
       separator=st.sampled_from([None, "\t", " "]))
def test_fuzz_conll_reader(scratch, data, token, tag, separator):
    _outcome(lambda p: read_conll(p, token_column=token, label_column=tag, separator=separator), scratch, data)


@FUZZ
@given(data=st.one_of(ANY_FILE, st.lists(st.lists(_WORDS, min_size=8, max_size=11).map("\t".join),
                                         max_size=5).map(lambda ls: "\n".join(ls).encode())),
       field=st.sampled_from(["upos", "xpos"]))
def test_fuzz_conllu_reader(scratch, data, field):
    _outcome(lambda p: read_conllu(p, label_field=field), scratch, data)


@FUZZ
@given(data=SQUAD_FILE)
def test_fuzz_squad_reader(scratch, data):
    _outcome(read_squad, scratch, data)


# ----------------------------------------------------------------------------- the config loader


def _config_keys() -> list[str]:
    """Every dotted key of every architecture's config (list elements as index 0)."""
    keys: set[str] = set()

    def walk(cls: type, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            key = f"{prefix}.{f.name}" if prefix else f.name
            keys.add(key)
            tp = hints[f.name]
            if dataclasses.is_dataclass(tp):
                walk(tp, key)
            elif f.name == "tasks":
                walk(typing.get_args(tp)[0], "tasks.0")
    walk(ExperimentConfig, "")
    for name in catalog.ARCHITECTURE_MODULES:
        walk(catalog.architecture(name)[0], "model")
    return sorted(keys)


KEYS = _config_keys()
_VALUE = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
                      | st.sampled_from(sorted(catalog.ARCHITECTURE_MODULES) + ["tail", "file", "fdu", "tagging",
                                                                                 "conll", "all_tasks", "upgrad"]),
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                      max_leaves=6)


def _set(raw: dict, key: str, value) -> None:
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        if isinstance(node, list):
            if not node:
                return
            node = node[0]
            continue
        if not isinstance(node.get(part), (dict, list)):
            node[part] = {}
        node = node[part]
    if isinstance(node, dict):
        node[parts[-1]] = value


def _loads(path: Path, text: str | bytes, overrides=()) -> None:
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", errors="surrogatepass"))
    try:
        load_config(path, list(overrides))
    except PolytaskError:
        pass


@FUZZ
@given(data=ANY_FILE)
def test_fuzz_config_loader_on_any_bytes(scratch, data):
    _loads(scratch, data)


@FUZZ
@given(doc=_VALUE)
def test_fuzz_config_loader_on_any_yaml_document(scratch, doc):
    _loads(scratch, yaml.safe_dump(doc))


@FUZZ
@given(changes=st.lists(st.tuples(st.sampled_from(KEYS), _VALUE), min_size=1, max_size=4))
def test_fuzz_config_loader_on_a_config_with_wrong_values(scratch, changes):
    raw = make_raw_config(Path("data"), Path("run"))
    for key, value in changes:
        _set(raw, key, value)
    _loads(scratch, yaml.safe_dump(raw))


@FUZZ
@given(overrides=st.lists(st.one_of(
    st.tuples(st.sampled_from(KEYS), st.text(alphabet="0123456789.e-+[]{}:,'\" abnulinf~&*!|>%@`", max_size=10)).map(
        "=".join),
    st.text(alphabet="abc.=0123[]{}:-", max_size=12)), max_size=3))
def test_fuzz_config_loader_on_any_override(scratch, overrides):
    _loads(scratch, yaml.safe_dump(make_raw_config(Path("data"), Path("run"))), overrides)


@pytest.mark.parametrize("text", [
    "tasks: &t [*t]\n",
    "trainer: {weighting_options: &w {x: *w}}\n",
    "model: " + "[" * 2000 + "]" * 2000 + "\n",
    "task_defaults: {train: '{name.nope}'}\ntasks: [a]\n",
    "task_defaults: {train: '{name[0]}'}\ntasks: [{name: 7}]\n",
    "seed: " + "9" * 500 + "\n",
])
def test_config_loader_edge_documents(scratch, text):
    _loads(scratch, text)
