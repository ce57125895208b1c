"""``polytask export``: one task of a trained run as an ONNX or TorchScript file plus a JSON with
everything needed to use it without polytask (vocabulary, labels, pre-processing, inputs and
outputs), checked against polytask's own outputs before the command returns.

Which exporter: the TorchScript file is ``torch.jit.trace`` of the task's
:mod:`~polytask.export.graph` module, frozen (only the task's own weights stay in it). The ONNX
file comes from the TorchScript-based ``torch.onnx.export(dynamo=False)`` for the BiLSTM, LSTM and
CNN encoders, so the CRF's Viterbi (a scripted loop) stays a loop in the graph; and from the
dynamo exporter for the Transformer encoder, because the TorchScript-based one fixes the attention's
reshapes to the example's length. The dynamo graph cannot hold a loop over a dynamic length, so a
Transformer CRF tagger's ONNX file gives the emissions and the JSON the CRF scores to decode them
(``crf`` in the JSON; :func:`viterbi_numpy` is the reference decoder). The (Bi)LSTM encoder
needs no export-only path: it never packs sequences (each direction runs within its own length on
the padded batch), so one graph serves batches of mixed lengths, as the check shows.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import random
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..data.readers import _PTB_TOKEN, _REGEX_TOKEN, Example
from ..errors import PolytaskError
from ..kinds import get_kind
from ..runner import LoadedRun, load_run
from .graph import ExportedClassifier, ExportedCRFTagger, ExportedRegressor, ExportedSoftmaxTagger

FORMATS = ("onnx", "torchscript")
ARCHITECTURES = ("hard_sharing", "single_task")
ENCODERS = ("bilstm", "lstm", "cnn", "transformer")
KINDS = ("classification", "pair_classification", "regression", "tagging")
MAX_WORD_LENGTH = 20          # characters kept per word (polytask.data.batching.char_ids)
TOLERANCE = 1e-4              # the largest difference from polytask's outputs an export may show


class ExportError(PolytaskError, ValueError):
    """A run, task or format that cannot be exported, or an export that does not match polytask."""


def require_onnx() -> None:
    """Import the ONNX exporter's packages, or say which extra installs them."""
    missing = []
    for name in ("onnx", "onnxruntime", "onnxscript"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ExportError(f"--format onnx needs {', '.join(missing)}: pip install 'polytask[export]' "
                          "(--format torchscript needs no extra)")


def check_exportable(run: LoadedRun, task: str, fmt: str) -> None:
    """Refuse, naming what is supported, a format, task, kind, architecture or encoder that the
    export does not handle."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r} (supported: {', '.join(FORMATS)})")
    if task not in run.task_info:
        raise ExportError(f"unknown task {task!r}: this run has the tasks {', '.join(run.task_info)} (--task NAME)")
    kind = run.task_info[task]["type"]
    if kind not in KINDS:
        raise ExportError(f"task {task!r} is a {kind} task; export supports {', '.join(KINDS)} tasks")
    m = run.cfg.model
    if m.architecture not in ARCHITECTURES:
        raise ExportError(f"the run's architecture {m.architecture!r} cannot be exported yet; export supports "
                          f"{', '.join(ARCHITECTURES)} with {', '.join(ENCODERS)} encoders")
    if getattr(m, "pretrained", None):
        raise ExportError(f"the run's encoder is the pretrained model {m.pretrained!r} (model.pretrained), which "
                          f"export does not handle yet; export supports word-vector runs with {', '.join(ENCODERS)} "
                          "encoders")
    if m.encoder.type not in ENCODERS:
        raise ExportError(f"the run's encoder {m.encoder.type!r} cannot be exported; export supports "
                          f"{', '.join(ENCODERS)}")
    if m.char_embedding_dim > 0 and m.char_encoder == "ngram":
        raise ExportError("the hashed character n-gram encoder (model.char_encoder: ngram) cannot be exported; "
                          "export supports the cnn and bilstm character encoders")


def task_module(run: LoadedRun, task: str, decode: bool = True) -> torch.nn.Module:
    """The plain-tensor module of ``task`` (eval mode); ``decode``: a CRF tagger also gives tags."""
    info = run.task_info[task]
    reads_chars, pair = run.chars is not None, bool(info.get("pair", info["type"] == "pair_classification"))
    if info["type"] == "tagging":
        module = ExportedCRFTagger(run.model, task, reads_chars, False, decode) if info["head"] == "crf" \
            else ExportedSoftmaxTagger(run.model, task, reads_chars, False)
    elif info["type"] == "regression":
        module = ExportedRegressor(run.model, task, reads_chars, pair)
    else:
        module = ExportedClassifier(run.model, task, reads_chars, pair)
    return module.eval()


# ----------------------------------------------------------------------------- example inputs


def sample_examples(run: LoadedRun, task: str, lengths: list[int], seed: int = 0) -> list[Example]:
    """Examples of the given lengths, words drawn from the run's vocabulary plus an unknown word
    (deterministic): inputs for the export and its check that need no data files."""
    rng = random.Random(f"{seed}/{task}")
    words = [w for w in run.vocab.itos[2:] if not w.startswith("<")] or ["<unk>"]
    pair = bool(run.task_info[task].get("pair"))

    def sentence(n: int) -> list[str]:
        out = [rng.choice(words) for _ in range(n)]
        if n > 2:
            out[rng.randrange(n)] = "zzunseenzz"                  # an unknown word (id 1)
        return out
    return [Example(sentence(n), None, sentence(max(1, n - 1)) if pair else None, line=i + 1)
            for i, n in enumerate(lengths)]


def batch_of(run: LoadedRun, task: str, examples: list[Example]):
    """polytask's own batch of ``examples`` (ids, mask, characters, second texts)."""
    info = run.task_info[task]
    kind = get_kind(info["type"])
    return kind.collate(task, kind.encode(examples, run.vocab, info["labels"], run.cfg.data.max_length, run.chars))


def tensors_of(module, batch) -> tuple[torch.Tensor, ...]:
    """The exported module's inputs, in order, from a polytask batch."""
    out = [batch.tokens, batch.mask] + ([batch.chars] if module.reads_chars else [])
    return tuple(out + ([batch.tokens_b, batch.mask_b] if module.pair else []))


def reference_outputs(run: LoadedRun, task: str, batch) -> dict[str, np.ndarray]:
    """What polytask itself computes for ``batch`` (its kind's forward pass), by output name."""
    info = run.task_info[task]
    with torch.inference_mode():
        out = get_kind(info["type"]).forward(run.model, batch)
    if info["type"] == "tagging":
        key = "emissions" if info["head"] == "crf" else "logits"
        return {key: out.logits.float().numpy(), "tags": out.predictions.numpy()}
    if info["type"] == "regression":
        return {"scores": out.logits.float().numpy()}
    return {"logits": out.logits.float().numpy(), "probabilities": torch.softmax(out.logits.float(), -1).numpy()}


# ----------------------------------------------------------------------------- writing


@contextlib.contextmanager
def quiet_export():
    """No tracer or exporter chatter (warnings, progress lines on stdout, log lines), and no fused
    attention kernel (its op has no ONNX form)."""
    was, logger = torch.backends.mha.get_fastpath_enabled(), logging.getLogger("torch.onnx")
    level = logger.level
    torch.backends.mha.set_fastpath_enabled(False)
    logger.setLevel(logging.ERROR)                   # "torchvision is not installed. Skipping ..."
    try:
        with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(was)
        logger.setLevel(level)


def write_torchscript(module, example: tuple, path: Path) -> None:
    with quiet_export():
        traced = torch.jit.freeze(torch.jit.trace(module, example, check_trace=False))
        traced.save(str(path))


def write_onnx(module, example: tuple, path: Path, dynamo: bool, max_time: int) -> None:
    names = module.input_names()
    axes = {n: ({0: "batch", 1: "time"} if not n.endswith("_b") else {0: "batch", 1: "time_b"}) for n in names}
    if module.reads_chars:
        axes["chars"] = {0: "batch", 1: "time", 2: "characters"}
    with quiet_export():
        if dynamo:
            dims = {"batch": torch.export.Dim("batch"), "time": torch.export.Dim("time", max=max_time),
                    "time_b": torch.export.Dim("time_b", max=max_time), "characters": torch.export.Dim("characters")}
            shapes = tuple({i: dims[a] for i, a in axes[n].items()} for n in names)
            torch.onnx.export(module, example, str(path), input_names=names, output_names=list(module.output_names),
                              dynamic_shapes={"inputs": shapes}, dynamo=True, external_data=False)
        else:
            torch.onnx.export(torch.jit.trace(module, example, check_trace=False), example, str(path),
                              input_names=names, output_names=list(module.output_names), dynamic_axes=axes,
                              dynamo=False, opset_version=17)


def runner_for(fmt: str, path: Path, output_names: list[str]):
    """A function from the input tensors to the exported file's outputs (numpy, by name), run by
    onnxruntime or torch.jit.load as a user would."""
    if fmt == "onnx":
        import onnxruntime
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        return lambda tensors: dict(zip(output_names, session.run(None, {n: t.numpy() for n, t in zip(names, tensors)})))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                               # torch.jit.load is deprecated
        loaded = torch.jit.load(str(path))

    def run_torchscript(tensors) -> dict[str, np.ndarray]:
        with torch.no_grad():
            out = loaded(*tensors)
        return dict(zip(output_names, [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]))
    return run_torchscript


def verify(run: LoadedRun, task: str, module, fmt: str, path: Path) -> dict:
    """Run the written file on batches of other sizes and lengths than the export's example and
    compare with polytask's outputs: the largest absolute difference of the scores, and whether
    the tags agree. An export beyond :data:`TOLERANCE` is an error."""
    execute = runner_for(fmt, path, list(module.output_names))
    worst, examples, tags_equal = 0.0, 0, True
    for lengths in ([7, 3, 1], [2], [12, 9, 9, 4, 1, 6]):
        batch = batch_of(run, task, sample_examples(run, task, lengths, seed=len(lengths)))
        got = execute(tensors_of(module, batch))
        want = reference_outputs(run, task, batch)
        for name, value in got.items():
            if name == "tags":
                tags_equal &= bool(np.array_equal(value, want["tags"]))
            else:
                worst = max(worst, float(np.abs(value.astype(np.float64) - want[name]).max()))
        if "tags" in want and "tags" not in got:                       # decoded outside the graph
            crf = crf_scores(run, task)
            decoded = viterbi_numpy(got["emissions"], batch.mask.numpy(), *crf)
            tags_equal &= bool(np.array_equal(decoded, want["tags"]))
        examples += len(lengths)
    if worst > TOLERANCE or not tags_equal:
        raise ExportError(f"{path}: the exported model does not match polytask (max abs difference {worst:.3g}, "
                          f"tags {'equal' if tags_equal else 'differ'})")
    return {"max_abs_difference": worst, "examples": examples, "tags_equal": tags_equal}


# ----------------------------------------------------------------------------- CRF decoding outside a graph


def crf_scores(run: LoadedRun, task: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The CRF's transition (C, C) [from, to], start (C,) and end (C,) scores, with the tag
    scheme's forbidden transitions already at -10000."""
    with torch.no_grad():
        transitions, start, end = run.model.head(task).crf._scores()
    return transitions.numpy(), start.numpy(), end.numpy()


def viterbi_numpy(emissions: np.ndarray, mask: np.ndarray, transitions: np.ndarray, start: np.ndarray,
                  end: np.ndarray) -> np.ndarray:
    """The best tag path (B, T) of emissions (B, T, C) under the CRF scores, 0 at padding; the same
    recursion as polytask's CRF (what a user of an ONNX emissions-only tagger runs)."""
    B, T, C = emissions.shape
    delta = start[None] + emissions[:, 0]                                     # (B, C)
    back = np.zeros((B, T, C), dtype=np.int64)
    for t in range(1, T):
        scores = delta[:, :, None] + transitions[None]                        # (B, C_from, C_to)
        arg, best = scores.argmax(1), scores.max(1)
        keep = mask[:, t, None]
        delta = np.where(keep, best + emissions[:, t], delta)
        back[:, t] = np.where(keep, arg, np.arange(C)[None])
    tag = (delta + end[None]).argmax(1)
    path = np.zeros((B, T), dtype=np.int64)
    path[:, T - 1] = tag
    for t in range(T - 1, 0, -1):
        tag = back[np.arange(B), t, tag]
        path[:, t - 1] = tag
    return path * mask


# ----------------------------------------------------------------------------- the JSON beside the model


def _dims(name: str) -> list[str]:
    return {"tokens": ["batch", "time"], "mask": ["batch", "time"], "chars": ["batch", "time", "characters"],
            "tokens_b": ["batch", "time_b"], "mask_b": ["batch", "time_b"], "logits": None, "probabilities":
            ["batch", "classes"], "scores": ["batch"], "emissions": ["batch", "time", "tags"],
            "tags": ["batch", "time"]}[name]


def describe(run: LoadedRun, task: str, module, fmt: str, filename: str, dynamo: bool) -> dict:
    """Everything a user needs to run the file without polytask."""
    info = run.task_info[task]
    tcfg = next(t for t in run.cfg.tasks if t.name == task)
    tagging = info["type"] == "tagging"
    tokenizer = "whitespace" if tagging else tcfg.tokenizer
    dtypes = {"tokens": "int64", "mask": "bool", "chars": "int64", "tokens_b": "int64", "mask_b": "bool"}
    outputs = []
    for name in module.output_names:
        shape = _dims(name) or (["batch", "time", "tags"] if tagging else ["batch", "classes"])
        outputs.append({"name": name, "dtype": "int64" if name == "tags" else "float32", "shape": shape})
    doc = {
        "format": fmt, "file": filename, "task": task, "kind": info["type"], "labels": info["labels"],
        "architecture": run.cfg.model.architecture, "encoder": run.cfg.model.encoder.type,
        "exporter": ("torch.onnx dynamo" if dynamo else "torch.onnx torchscript") if fmt == "onnx"
        else "torch.jit.trace + freeze",
        "inputs": [{"name": n, "dtype": dtypes[n], "shape": _dims(n)} for n in module.input_names()],
        "outputs": outputs,
        "preprocessing": {
            "lowercase": bool(tcfg.lowercase), "tokenizer": tokenizer,
            "token_pattern": {"regex": _REGEX_TOKEN.pattern, "ptb": _PTB_TOKEN.pattern}.get(tokenizer),
            "max_length": run.cfg.data.max_length,
            "long_inputs": "split into pieces of max_length words, tagged one after the other" if tagging
            else "truncated to the first max_length words",
            "pad_id": 0, "unk_id": 1, "empty_text": "a text with no token is the one word <unk>",
            "mask": "True at real words; the ids are 0 (padding) after each text's last word",
        },
        "vocabulary": list(run.vocab.itos),
    }
    if run.chars is not None:
        doc["characters"] = {"vocabulary": list(run.chars.itos), "max_word_length": MAX_WORD_LENGTH,
                             "note": "ids of each word's first max_word_length characters (unknown 1), "
                                     "0 at padding; a word of no known character is [1]"}
    if tagging and info["head"] == "crf":
        transitions, start, end = crf_scores(run, task)
        doc["crf"] = {"decoded_in_graph": "tags" in module.output_names,
                      "transitions": transitions.tolist(), "start": start.tolist(), "end": end.tolist(),
                      "decode": "Viterbi: delta = start + E[0]; delta' = max_from(delta[from] + "
                                "transitions[from, to]) + E[t] at real steps; best end: argmax(delta + end)"}
    return doc


def export_task(run_dir: str | Path, task: str, fmt: str, output: str | Path,
                run: Optional[LoadedRun] = None) -> dict:
    """Write ``task`` of the run in ``run_dir`` as ``OUTPUT/model.onnx`` or ``OUTPUT/model.pt``
    plus ``OUTPUT/model.json``, check the file against polytask's outputs, and return the JSON
    (with ``verified``: the max abs difference and the number of examples checked)."""
    run = run or load_run(run_dir)
    check_exportable(run, task, fmt)
    if fmt == "onnx":
        require_onnx()
    dynamo = fmt == "onnx" and run.cfg.model.encoder.type == "transformer"
    module = task_module(run, task, decode=not dynamo)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    path = out / ("model.onnx" if fmt == "onnx" else "model.pt")
    example = tensors_of(module, batch_of(run, task, sample_examples(run, task, [5, 3])))
    try:
        if fmt == "onnx":
            write_onnx(module, example, path, dynamo, getattr(run.cfg.model.encoder, "max_positions", 1 << 16))
        else:
            write_torchscript(module, example, path)
    except Exception as exc:      # an exporter's own failure, named with what was being exported
        raise ExportError(f"exporting task {task!r} ({run.cfg.model.architecture}, {run.cfg.model.encoder.type}) "
                          f"as {fmt} failed: {type(exc).__name__}: {str(exc)[:500]}") from exc
    doc = describe(run, task, module, fmt, path.name, dynamo)
    doc["verified"] = verify(run, task, module, fmt, path)
    (out / "model.json").write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
    return doc
