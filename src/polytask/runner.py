"""The library's front door: train a config, evaluate or predict with a run directory.

The CLI is a thin layer over these functions; tests and notebooks call them directly.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

import torch
import yaml

from .config import ConfigError, ExperimentConfig, load_config, load_yaml
from .data.readers import Example, tokenize
from .errors import PolytaskError
from .data.vocab import Vocab, load_vocab
from .evaluation.evaluate import evaluate_metrics, evaluate_with_predictions, primary
from .evaluation.predictions import write_predictions
from .evaluation.tables import format_metric_table
from .experiment import (build_char_vocab, build_vocab, default_data_dir, encode_split, fetch_missing_data,
                         load_tasks, make_model, on_run_copy, resolve_data_dir, specs_from_info, task_info,
                         task_specs)
from .kinds import get_kind
from .models import build_model
from .models.pretrained_encoder import adapter_only
from .training import checkpoint as ckpt
from .training.callbacks import Callback
from .training.distributed import SingleProcess, process_group, refuse_unsupported, launched_world_size
from .training.lock import RunLock
from .training.tracking import require_trackers
from .training.trainer import Trainer, default_callbacks, resolve_device

logger = logging.getLogger(__name__)


def train(cfg: ExperimentConfig, data_dir: Optional[Path] = None, resume: bool = False,
          quiet: bool = False, transfer_from: Optional[Path] = None,
          callbacks: Optional[list[Callback]] = None) -> dict:
    """Train ``cfg``; returns (and writes to ``results.json``) dev/test accuracy per task, and
    writes each test example's gold value and prediction to ``predictions/test.jsonl``.

    With ``transfer_from`` (a trained run directory) the vocabulary and every shared parameter
    (``model.shared_parameters()``: embeddings, shared encoder, Meta-LSTM, ...) are taken from that
    run and frozen; only the new tasks' own parameters train. ``callbacks`` are called after the
    run's own (:func:`~polytask.training.trainer.default_callbacks`), e.g. a search's pruning.

    The run holds the lock of its directory (:class:`~polytask.training.lock.RunLock`) from the
    start to the end: a second run there fails at once, naming this one's process.

    Launched by ``torchrun`` with several processes, each process trains its share of every batch
    (:mod:`polytask.training.distributed`); rank 0 holds the lock, writes the run directory and
    returns the results, the other ranks return their training summary only.
    """
    wall0 = time.perf_counter()
    if transfer_from is not None and not cfg.model.transferable:
        raise ValueError(f"{transfer_from}: a {cfg.model.architecture} run cannot be transferred: its layers are a "
                         "tree of branches grown for its own tasks, and a new task has no branch in it")
    refuse_unsupported(cfg, launched_world_size())
    group = process_group(resolve_device(cfg.trainer.device))
    try:
        if not group.is_main:
            return _train(cfg, data_dir, resume, quiet, transfer_from, callbacks, wall0, group)
        with RunLock(cfg.output_dir):
            return _train(cfg, data_dir, resume, quiet, transfer_from, callbacks, wall0, group)
    finally:
        group.close()


def _train(cfg: ExperimentConfig, data_dir: Optional[Path], resume: bool, quiet: bool,
           transfer_from: Optional[Path], callbacks: Optional[list[Callback]], wall0: float,
           group: SingleProcess) -> dict:
    require_trackers(cfg.trainer.report_to)         # before any data is read
    if cfg.trainer.num_threads:
        torch.set_num_threads(cfg.trainer.num_threads)
    data_dir = resolve_data_dir(str(data_dir) if data_dir else None, cfg)
    if data_dir == default_data_dir():               # no data directory given: fetch FDU-MTL on first use
        if group.is_main:
            fetch_missing_data(cfg, data_dir)
        group.barrier()
    run_dir = Path(cfg.output_dir)
    if resume and (run_dir / "config.yaml").is_file() and (run_dir / "last" / "state.json").is_file():
        from .training.resume import keep_earlier_defaults
        saved = load_yaml((run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
        for kept in keep_earlier_defaults(saved, cfg):
            logger.info("resuming with %s, the default this run started with (the library's default "
                        "has changed since)", kept)
    tasks = load_tasks(cfg, data_dir)
    source = transfer_from if transfer_from is not None else run_dir
    if (resume or transfer_from is not None) and (Path(source) / "vocab.json").is_file():
        vocab = load_vocab(Path(source) / "vocab.json")
        chars = Vocab.load(Path(source) / "chars.json") if (Path(source) / "chars.json").is_file() else None
    else:
        vocab, chars = build_vocab(cfg, tasks), build_char_vocab(cfg, tasks)
    if adapter_only(cfg.model):
        vocab.keep_weights = True          # the base never changes: the run keeps it once, in pretrained/
    torch.manual_seed(cfg.seed)
    model = make_model(_build_config(cfg, vocab, run_dir, resume, transfer_from), task_specs(tasks), vocab,
                       data_dir, char_vocab=chars, with_vectors=transfer_from is None)
    if transfer_from is not None:
        _load_shared_and_freeze(model, Path(transfer_from))
    if not quiet and group.is_main:
        counts = parameter_counts(model)
        logger.info("%d of %d parameters train (%.2f%%)", counts["trainable_params"], counts["params"],
                    100.0 * counts["trainable_params"] / max(counts["params"], 1))
    max_len = cfg.data.max_length
    split = lambda name: {n: encode_split(t, name, vocab, max_len, chars)  # noqa: E731
                          for n, t in tasks.items()}
    train_items, dev_items, test_items = split("train"), split("dev"), split("test")
    info = task_info(tasks)
    progress = cfg.trainer.progress and not quiet and group.is_main
    extra = list(callbacks or []) if group.is_main else []      # rank 0 judges; the others follow
    trainer = Trainer(cfg, model, train_items, dev_items, vocab, info, run_dir, progress=progress,
                      char_vocab=chars, group=group,
                      callbacks=default_callbacks(cfg, model, list(train_items), run_dir, progress,
                                                  group.rank) + extra)
    trainer.setup(resume=resume)
    summary = trainer.train()
    if not group.is_main:
        return summary
    trainer.load_best()
    itos = getattr(vocab, "itos", None)
    t0 = time.perf_counter()
    dev_metrics = _kept_dev_metrics(run_dir, dev_items)
    if dev_metrics is None:
        dev_metrics = evaluate_metrics(model, dev_items, cfg.data.eval_batch_size, trainer.device, info, itos)
    test_metrics, test_pairs = evaluate_with_predictions(model, test_items, cfg.data.eval_batch_size,
                                                         trainer.device, info, itos)
    summary["eval_seconds"] = summary.get("eval_seconds", 0.0) + time.perf_counter() - t0
    with ckpt.writing(run_dir / "predictions", "the test predictions"):
        write_predictions(run_dir, "test", test_pairs)
    dev, test = primary(dev_metrics), primary(test_metrics)
    results = {"architecture": cfg.model.architecture, "dev": dev, "test": test,
               "dev_metrics": dev_metrics, "test_metrics": test_metrics,
               "metrics": {n: t.metrics for n, t in tasks.items()},
               "dev_avg": _avg(dev), "test_avg": _avg(test), **summary,
               "wall_seconds": trainer.earlier_wall_seconds + time.perf_counter() - wall0,
               "wall_includes_resumes": True,
               **parameter_counts(model),          # at the end: a structure-adapting model has grown
               "vocab_size": len(vocab)}
    ckpt.write_json(run_dir / "results.json", results)
    trainer.callbacks.on_results(trainer, results)
    structure = learned_structure(model, dev_items or train_items, trainer.device)
    if structure:
        ckpt.write_json(run_dir / "structure.json", structure)
    if not quiet:
        for layer, groups in enumerate(structure.get("fafs_tree", []), 1):
            print(f"layer {layer}: " + " | ".join(", ".join(g) for g in groups))
        print(format_metric_table({"dev": dev_metrics, "test": test_metrics}, list(tasks)))
        logger.info("%d steps, %.0f train tokens/s, best dev mean %.2f at step %s; run directory %s",
                    summary["steps"], summary["train_tokens_per_s"], summary["best_dev_mean"],
                    summary["best_step"], run_dir)
    return results


def parameter_counts(model: torch.nn.Module) -> dict[str, int]:
    """``params`` (all, each shared tensor once) and ``trainable_params`` (those that train:
    under an adapter-only run the adapters and heads)."""
    return {"params": model.num_parameters(),
            "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad)}


def _build_config(cfg: ExperimentConfig, vocab, run_dir: Path, resume: bool,
                  transfer_from: Optional[Path]) -> ExperimentConfig:
    """The config the model is built from. A pretrained encoder whose weights are about to be
    replaced by a checkpoint (a resumed run's ``last/``; a transfer's source run when the
    original model folder is gone) is built from the run's own copy of the model's config, so
    the original folder is not needed; otherwise from ``model.pretrained`` itself."""
    if resume and (run_dir / "last" / "model.safetensors").is_file():
        return on_run_copy(cfg, vocab)
    if transfer_from is not None and getattr(cfg.model, "pretrained", None):
        from .modules.pretrained import PretrainedModelError, resolve_pretrained
        try:
            resolve_pretrained(cfg.model.pretrained)
        except PretrainedModelError:
            return on_run_copy(cfg, vocab)
    return cfg


def _kept_dev_metrics(run_dir: Path, dev_items: dict) -> Optional[dict]:
    """The dev metrics the trainer computed for exactly the weights in ``best/`` (the mean
    selection keeps them in ``best/state.json``), or None where dev must be scored again: no such
    record (an older run directory), weights composed from several steps (per-task selection),
    or tasks that differ from this run's dev data."""
    path = run_dir / "best" / "state.json"
    if not path.is_file():
        return None
    try:
        state = ckpt.read_json(path)
    except (OSError, ValueError):
        return None
    metrics = state.get("dev_metrics") if isinstance(state, dict) else None
    if not isinstance(metrics, dict) or "per_task" in state:
        return None
    if set(metrics) != {task for task, items in dev_items.items() if items}:
        return None
    return metrics


def _load_shared_and_freeze(model: torch.nn.Module, source: Path) -> None:
    """Copy the source run's shared parameters into ``model`` and freeze them. The frozen base of
    an adapter-only encoder is not in the run's weights: the model was built with it already."""
    state = ckpt.read_weights(source / "best" / "model.safetensors")
    names = {id(p): n for n, p in model.named_parameters()}
    saved = set(model.state_dict())
    shared = [p for p in model.shared_parameters() if names[id(p)] in saved]
    missing = [names[id(p)] for p in shared if names[id(p)] not in state]
    if missing:
        raise ValueError(f"{source}: the trained run has no weights for {missing[:3]}; "
                         "was it trained with the same architecture?")
    with torch.no_grad():
        for p in shared:
            value = state[names[id(p)]]
            if value.shape != p.shape:
                raise ValueError(f"{source}: {names[id(p)]} has shape {tuple(value.shape)}, "
                                 f"the new model {tuple(p.shape)}")
            p.copy_(value)
            p.requires_grad_(False)


def transfer_config(run_dir: str | Path, task_config: str | Path,
                    overrides: Optional[list[str]] = None) -> ExperimentConfig:
    """The config of a transfer run: tasks, data, trainer and output from ``task_config``; the
    model section from the trained run (its weights must fit)."""
    saved = Path(run_dir) / "config.yaml"
    if not saved.is_file():
        raise FileNotFoundError(f"{run_dir}: not a polytask run directory (no config.yaml)")
    source = load_yaml(saved.read_text(encoding="utf-8"))
    path = Path(task_config)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    try:
        raw = load_yaml(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    raw["model"] = source["model"]
    raw.setdefault("data", {})["max_length"] = source["data"]["max_length"]
    return load_config(raw=raw, overrides=overrides)


class RunError(PolytaskError, ValueError):
    """A run directory that cannot do what was asked (a task it lacks, nothing to inspect)."""


STRUCTURE_KEYS = ("cross_stitch_alpha", "sluice_alpha", "sluice_beta", "task_covariance")


@torch.no_grad()
def learned_structure(model: torch.nn.Module, items: dict, device) -> dict:
    """The architecture's learned sharing structure (cross-stitch α, sluice α/β, task covariance),
    read from ``TaskOutput.inspect`` on one example, as nested lists for ``structure.json``."""
    task = next((t for t, its in items.items() if its), None)
    if task is None:
        return {}
    was_training = model.training
    model.eval()
    try:
        out = model(get_kind(model.task_kinds[task]).collate(task, items[task][:1]).to(device))
    finally:
        model.train(was_training)
    structure = {k: v.cpu().tolist() for k, v in out.inspected().items() if k in STRUCTURE_KEYS}
    structure.update(model.structure())                               # e.g. the fully-adaptive tree
    return structure


def inspect_examples(run: LoadedRun, task: str, texts: list[str]) -> list[dict]:
    """Per-example inspection values (fusion gates, mixing weights, ...) with the tokens. An
    architecture that exposes none is an error saying so (not a list of empty records)."""
    info = _task_info(run, task)
    kind = get_kind(info["type"])
    tcfg = next(t for t in run.cfg.tasks if t.name == task)
    out = []
    for i, text in enumerate(texts):
        tokens = tokenize(text, tcfg.tokenizer, tcfg.lowercase) or ["<unk>"]
        items = kind.encode([Example(tokens=tokens, line=i + 1, text=text)], run.vocab, info["labels"],
                            run.cfg.data.max_length, run.chars)
        with torch.no_grad():
            result = run.model(kind.collate(task, items).to(run.device))
        out.append({"text": text, "tokens": tokens[: run.cfg.data.max_length],
                    "inspect": {k: v[0].cpu().tolist() if v.dim() > 2 else v.cpu().tolist()
                                for k, v in result.inspected().items()}})
    if out and not any(record["inspect"] for record in out):
        raise RunError(f"{run.cfg.model.architecture} exposes nothing to inspect per example: it has no gates, "
                       "mixing weights or attention of its own (the shared-memory architectures show their fusion "
                       "gates, transformer_* their task attention; cross_stitch, sluice and regularized_heads write "
                       "their learned structure to structure.json in the run directory)")
    return out


def _task_info(run: LoadedRun, task: str) -> dict:
    if task not in run.task_info:
        raise KeyError(f"unknown task {task!r}: this run has the tasks {', '.join(run.task_info)} (--task NAME)")
    return run.task_info[task]


def _avg(scores: dict[str, float]) -> Optional[float]:
    return sum(scores.values()) / len(scores) if scores else None


@dataclass
class LoadedRun:
    cfg: ExperimentConfig
    vocab: Vocab
    task_info: dict
    model: torch.nn.Module
    device: torch.device
    chars: Optional[Vocab] = None


def missing_run(run_dir: str | Path, configs: Path = Path("configs")) -> FileNotFoundError:
    """The error for a run directory that does not exist, saying what to run: the config under
    ``configs`` whose ``output_dir`` it is, when there is one."""
    wanted = Path(run_dir).expanduser().resolve()
    for path in sorted(configs.glob("**/*.yaml")) if configs.is_dir() else []:
        try:
            raw = load_yaml(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError, OSError):
            continue
        if isinstance(raw, dict) and isinstance(raw.get("output_dir"), str) \
                and Path(raw["output_dir"]).expanduser().resolve() == wanted:
            return FileNotFoundError(f"{run_dir}: no such run directory; train it first: polytask train {path} "
                                     "(with the --data-dir of your other runs)")
    return FileNotFoundError(f"{run_dir}: no such run directory; train it first: "
                             f"polytask train CONFIG --output-dir {run_dir}")


def load_run(run_dir: str | Path, weights: str = "best", device: str = "cpu") -> LoadedRun:
    """Rebuild a trained model from its run directory (config, vocab, tasks, safetensors)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise missing_run(run_dir)
    for name in ("config.yaml", "vocab.json", "tasks.json"):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(f"{run_dir}: not a polytask run directory (no {name})")
    cfg = load_config(run_dir / "config.yaml")
    vocab = load_vocab(run_dir / "vocab.json")
    chars = Vocab.load(run_dir / "chars.json") if (run_dir / "chars.json").is_file() else None
    info = ckpt.read_json(run_dir / "tasks.json")
    model = build_model(on_run_copy(cfg, vocab), specs_from_info(info), len(vocab),
                        num_chars=len(chars) if chars else 0)
    path = run_dir / weights / "model.safetensors"
    if not path.is_file():
        path = run_dir / "last" / "model.safetensors"
    ckpt.load_weights(model, path)
    dev = resolve_device(device)
    model.to(dev).eval()
    return LoadedRun(cfg, vocab, info, model, dev, chars)


def evaluate(run_dir: str | Path, split: str = "test", data_dir: Optional[Path] = None) -> dict[str, dict[str, float]]:
    """Every metric of every task of a trained run on ``split`` (``{task: {metric: value}}``), read
    afresh from the data files."""
    run = load_run(run_dir)
    tasks = load_tasks(run.cfg, resolve_data_dir(str(data_dir) if data_dir else None, run.cfg))
    items = {}
    for name, task in tasks.items():
        if task.labels != run.task_info[name]["labels"]:
            raise ValueError(f"task {name!r}: the data's labels {task.labels} differ from the "
                             f"trained ones {run.task_info[name]['labels']}")
        items[name] = encode_split(task, split, run.vocab, run.cfg.data.max_length, run.chars)
    return evaluate_metrics(run.model, items, run.cfg.data.eval_batch_size, run.device, run.task_info,
                            getattr(run.vocab, "itos", None))


def predict(run: LoadedRun, task: str, inputs: Iterable) -> list[dict]:
    """Predictions of the trained ``task`` for raw inputs, as its kind reads them (texts; pairs;
    sentences or token lists for tagging; (context, question) for qa) and writes them (label and
    probabilities; score; tokens and tags; answer)."""
    info = _task_info(run, task)
    kind = get_kind(info["type"])
    tcfg = next(t for t in run.cfg.tasks if t.name == task)
    examples = kind.parse_inputs(list(inputs), tcfg)
    if not examples:
        return []
    if info["type"] == "tagging":
        return _predict_tagging(run, task, tcfg, examples)
    items = kind.encode(examples, run.vocab, info["labels"], run.cfg.data.max_length, run.chars)
    bs, dev = run.cfg.data.eval_batch_size, run.device
    if info["type"] in ("classification", "pair_classification"):
        return _finite(kind.records(kind.probabilities(run.model, task, items, bs, dev), info))
    return _finite(kind.records(kind.predict(run.model, task, items, bs, dev, itos=getattr(run.vocab, "itos", None)),
                                info))


NOT_FINITE = ("the model's output for this input is not finite (NaN or Inf): its weights are probably "
              "not finite; retrain, or use a checkpoint from before the loss diverged")


def _finite(records: list[dict]) -> list[dict]:
    """Each record as it is, or ``{"error": ...}`` where a number in it is NaN or infinite (which
    JSON cannot carry, and no caller should take for a prediction)."""
    def finite(value) -> bool:
        if isinstance(value, float):
            return math.isfinite(value)
        if isinstance(value, dict):
            return all(finite(v) for v in value.values())
        if isinstance(value, (list, tuple)):
            return all(finite(v) for v in value)
        return True
    return [record if finite(record) else {"error": NOT_FINITE} for record in records]


def _predict_tagging(run: LoadedRun, task: str, tcfg, examples: list[Example]) -> list[dict]:
    """Tags for each sentence; sentences longer than ``data.max_length`` (words, or a pretrained
    tokenizer's sub-tokens) are tagged in consecutive pieces (the tagging kind's ``encode_scored``,
    as dev and test are scored). The records keep the sentence's own tokens (not lowercased)."""
    info, kind = run.task_info[task], get_kind("tagging")
    model_examples = [Example(tokens=[t.lower() for t in ex.tokens] if tcfg.lowercase else ex.tokens, line=ex.line,
                              words=ex.tokens) for ex in examples]
    try:
        items = kind.encode_scored(model_examples, run.vocab, info["labels"], run.cfg.data.max_length, run.chars)
    except ValueError as exc:
        raise ValueError(f"input {exc}") from None
    tags = kind.predict(run.model, task, items, run.cfg.data.eval_batch_size, run.device)
    return kind.records([(ex.tokens, t) for ex, t in zip(examples, tags)], info)


def predict_tagging(run: LoadedRun, task: str, sentences: Iterable[str | list[str]]) -> list[dict]:
    """Tags for each sentence: a whitespace-tokenised string or a token list."""
    return predict(run, task, sentences)
