"""``polytask export``: real round trips. Tiny runs are trained, one task is exported as ONNX (run
with onnxruntime) and as TorchScript (run with torch.jit.load), and the files' outputs are compared
with polytask's on batches of other sizes and lengths than the export's example (dynamic axes),
texts of different lengths in one batch. The fast loop covers the BiLSTM under hard sharing; the
full matrix (BiLSTM/CNN/Transformer x hard sharing/single task x classification/CRF/softmax
tagging/pairs) is marked slow."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import PAIR_TASK, write_pair_dataset
from polytask.cli import main
from polytask.config import load_config
from polytask.export import ExportError, export_task, viterbi_numpy
from polytask.export.writer import batch_of, reference_outputs, sample_examples, task_module, tensors_of
from polytask.runner import load_run, predict, train
from test_tagging import write_conll

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-4


def tiny_run(tmp_path: Path, data_dir: Path, fdu_config: dict, encoder: str, architecture: str,
             chars: bool = False) -> Path:
    """A run with a classification task ``a``, a CRF chunker ``chunk``, a softmax tagger ``pos``,
    a pair task ``p`` and a regression task ``r`` (task a's 0/1 labels as targets), trained for a
    few dozen steps."""
    write_conll(data_dir / "chunk.train", 40, 1)
    write_conll(data_dir / "chunk.test", 10, 2)
    write_pair_dataset(data_dir)
    raw = copy.deepcopy(fdu_config)
    raw["tasks"] = [
        {"name": "a"},
        {"name": "chunk", "type": "tagging", "format": "conll", "train": "chunk.train", "labels": None,
         "test": "chunk.test", "tag_column": 2, "tag_scheme": "BIO", "tagging_head": "crf", "lowercase": False},
        {"name": "pos", "type": "tagging", "format": "conll", "train": "chunk.train", "labels": None,
         "test": "chunk.test", "tag_column": 1, "tagging_head": "softmax", "lowercase": False},
        copy.deepcopy(PAIR_TASK),
        {"name": "r", "type": "regression", "train": "fdu/a.task.train", "test": "fdu/a.task.test", "labels": None},
    ]
    raw["output_dir"] = str(tmp_path / f"run-{encoder}-{architecture}")
    raw["model"] = {**raw["model"], "architecture": architecture,
                    "encoder": {"type": encoder, "hidden_dim": 16, "num_layers": 1,
                                **({"num_heads": 2, "ff_dim": 32} if encoder == "transformer" else {})}}
    if chars:                                   # (pair tasks do not read characters)
        raw["model"].update(char_embedding_dim=8, char_hidden_dim=8)
        raw["tasks"] = raw["tasks"][:3]
        raw["tasks"].append({"name": "r", "type": "regression", "train": "fdu/a.task.train", "test": "fdu/a.task.test",
                             "labels": None})
    raw["trainer"] = {**raw["trainer"], "max_steps": 40, "eval_every": 40}
    train(load_config(raw=raw), quiet=True)
    return Path(raw["output_dir"])


def run_file(doc: dict, directory: Path, tensors: tuple[torch.Tensor, ...]) -> dict[str, np.ndarray]:
    """The written file's outputs by name, run as a user would: onnxruntime or torch.jit.load,
    fed by the input names of the JSON."""
    names = [i["name"] for i in doc["inputs"]]
    outputs = [o["name"] for o in doc["outputs"]]
    if doc["format"] == "onnx":
        import onnxruntime
        session = onnxruntime.InferenceSession(str(directory / doc["file"]))
        return dict(zip(outputs, session.run(None, {n: t.numpy() for n, t in zip(names, tensors)})))
    model = torch.jit.load(str(directory / doc["file"]))
    out = model(*tensors)
    return dict(zip(outputs, [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]))


def round_trip(run_dir: Path, task: str, fmt: str, out: Path) -> float:
    """Export ``task``, then check the file on batches the export never saw; the max abs difference."""
    doc = export_task(run_dir, task, fmt, out)
    assert json.loads((out / "model.json").read_text())["verified"] == doc["verified"]
    run = load_run(run_dir)
    module = task_module(run, task)
    worst = 0.0
    for lengths in ([9, 1, 4, 6], [1], [15, 2]):                 # neither the example's size nor its length
        batch = batch_of(run, task, sample_examples(run, task, lengths, seed=sum(lengths)))
        assert batch.tokens.shape != (2, 5)
        got = run_file(doc, out, tensors_of(module, batch))
        want = reference_outputs(run, task, batch)
        for name, value in got.items():
            if name == "tags":
                np.testing.assert_array_equal(value, want["tags"])
            else:
                assert value.shape == want[name].shape, name
                worst = max(worst, float(np.abs(value - want[name]).max()))
        if "tags" in want and "tags" not in got:                 # CRF decoded from the JSON's scores
            crf = doc["crf"]
            decoded = viterbi_numpy(got["emissions"], batch.mask.numpy(), np.array(crf["transitions"]),
                                    np.array(crf["start"]), np.array(crf["end"]))
            np.testing.assert_array_equal(decoded, want["tags"])
    assert worst < TOLERANCE, worst
    return worst


@pytest.fixture
def bilstm_run(tmp_path, data_dir, fdu_config) -> Path:
    return tiny_run(tmp_path, data_dir, fdu_config, "bilstm", "hard_sharing")


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_bilstm_hard_sharing_round_trips(bilstm_run, tmp_path, fmt):
    for task in ("a", "chunk", "p", "r"):
        worst = round_trip(bilstm_run, task, fmt, tmp_path / f"export-{fmt}-{task}")
        print(f"bilstm hard_sharing {task} {fmt}: {worst:.2e}")


def test_exported_vocabulary_and_labels_reproduce_predict(bilstm_run, tmp_path):
    """From the JSON alone (no polytask): tokenise, look up ids, run the ONNX file; the labels and
    probabilities equal ``polytask predict``'s."""
    out = tmp_path / "export"
    export_task(bilstm_run, "a", "onnx", out)
    doc = json.loads((out / "model.json").read_text())
    import onnxruntime
    session = onnxruntime.InferenceSession(str(out / doc["file"]))
    texts = ["the movie was good", "It was BAD and the plot was quite bad really", "zebra"]
    pre = doc["preprocessing"]
    ids = {w: i for i, w in enumerate(doc["vocabulary"])}
    rows = [[ids.get(w, pre["unk_id"]) for w in (t.lower() if pre["lowercase"] else t).split()][: pre["max_length"]]
            for t in texts]
    width = max(map(len, rows))
    tokens = np.array([r + [pre["pad_id"]] * (width - len(r)) for r in rows], dtype=np.int64)
    _, probabilities = session.run(None, {"tokens": tokens, "mask": tokens != pre["pad_id"]})
    expected = predict(load_run(bilstm_run), "a", texts)
    assert [doc["labels"][k] for k in probabilities.argmax(1)] == [e["label"] for e in expected]
    for row, e in zip(probabilities, expected):
        assert abs(float(row.max()) - e["probability"]) < 1e-5


def test_the_command_writes_both_files_and_reports_the_difference(bilstm_run, tmp_path, capsys):
    out = tmp_path / "ts"
    assert main(["export", str(bilstm_run), "--task", "chunk", "--format", "torchscript", "--output", str(out)]) == 0
    err = capsys.readouterr().err
    match = re.search(r"max abs difference (\S+); tags identical", err)
    assert match and float(match.group(1)) < TOLERANCE, err
    doc = json.loads((out / "model.json").read_text())
    assert (out / "model.pt").is_file() and doc["crf"]["decoded_in_graph"] is True
    assert doc["labels"] == load_run(bilstm_run).task_info["chunk"]["labels"]
    assert [o["name"] for o in doc["outputs"]] == ["emissions", "tags"]


def test_bad_requests_name_what_is_supported(bilstm_run, tmp_path, capsys):
    assert main(["export", str(bilstm_run), "--task", "nope", "--format", "onnx", "--output", str(tmp_path / "x")]) == 2
    assert "unknown task 'nope'" in capsys.readouterr().err
    run = load_run(bilstm_run)
    run.cfg.model.architecture = "shared_private"
    with pytest.raises(ExportError, match="supports hard_sharing, single_task with bilstm, lstm, cnn, transformer"):
        export_task(bilstm_run, "a", "onnx", tmp_path / "y", run=run)
    run.cfg.model.architecture = "hard_sharing"
    run.cfg.model.pretrained = "models/all-MiniLM-L6-v2"
    with pytest.raises(ExportError, match="pretrained model .* supports word-vector runs with bilstm, lstm, cnn"):
        export_task(bilstm_run, "a", "torchscript", tmp_path / "v", run=run)
    run.cfg.model.pretrained = None
    run.task_info["a"] = {**run.task_info["a"], "type": "qa"}
    run.cfg.model.architecture = "hard_sharing"
    with pytest.raises(ExportError, match="a qa task; export supports classification, pair_classification"):
        export_task(bilstm_run, "a", "onnx", tmp_path / "z", run=run)
    with pytest.raises(ExportError, match="unknown export format 'tflite' \\(supported: onnx, torchscript\\)"):
        export_task(bilstm_run, "pos", "tflite", tmp_path / "w")


def test_a_missing_onnx_package_names_the_extra(bilstm_run, tmp_path, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_onnxscript(name, *args, **kwargs):
        if name == "onnxscript":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_onnxscript)
    with pytest.raises(ExportError, match=r"pip install 'polytask\[export\]'"):
        export_task(bilstm_run, "a", "onnx", tmp_path / "x")


def test_viterbi_numpy_matches_the_crf():
    from polytask.modules.crf import CRF, allowed_transitions
    torch.manual_seed(0)
    labels = ["B-NP", "I-NP", "O"]
    crf = CRF(3, allowed_transitions(labels, "BIO"))
    emissions = torch.randn(4, 6, 3)
    mask = torch.arange(6)[None] < torch.tensor([6, 1, 3, 5])[:, None]
    transitions, start, end = (t.detach().numpy() for t in crf._scores())
    np.testing.assert_array_equal(viterbi_numpy(emissions.numpy(), mask.numpy(), transitions, start, end),
                                  crf.decode(emissions, mask).numpy())


def test_the_readme_onnxruntime_example_runs(bilstm_run, tmp_path, monkeypatch, capsys):
    """The README's Python example, as written, on an exported tiny run."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Export"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    export_task(bilstm_run, "a", "onnx", tmp_path / "export")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    label = capsys.readouterr().out.split()[0]
    assert label in ("0", "1")


# ----------------------------------------------------------------------------- the whole matrix (slow)

MATRIX = [(e, a) for e in ("bilstm", "cnn", "transformer") for a in ("hard_sharing", "single_task")]


@pytest.mark.slow
@pytest.mark.parametrize("encoder,architecture", MATRIX)
def test_every_encoder_and_architecture_round_trips(tmp_path, data_dir, fdu_config, encoder, architecture):
    run_dir = tiny_run(tmp_path, data_dir, fdu_config, encoder, architecture)
    for task in ("a", "chunk", "pos", "p", "r"):
        for fmt in ("onnx", "torchscript"):
            worst = round_trip(run_dir, task, fmt, tmp_path / f"export-{task}-{fmt}")
            print(f"EXPORT {encoder} {architecture} {task} {fmt} {worst:.2e}")


@pytest.mark.slow
def test_character_features_round_trip(tmp_path, data_dir, fdu_config):
    run_dir = tiny_run(tmp_path, data_dir, fdu_config, "bilstm", "hard_sharing", chars=True)
    for fmt in ("onnx", "torchscript"):
        worst = round_trip(run_dir, "chunk", fmt, tmp_path / f"export-{fmt}")
        print(f"EXPORT bilstm+chars hard_sharing chunk {fmt} {worst:.2e}")
