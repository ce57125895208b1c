"""From a config to tasks, vocabulary, encoded splits and a model: what train/evaluate/predict share."""
from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Optional

from .config import ExperimentConfig
from .data.batching import Encoded
from .data.vocab import BOS, EOS, PAD, UNK, Vocab
from .kinds import TaskSpec
from .models import build_model
from .tasks import Task, load_task, resolve_path, spec_from_info

logger = logging.getLogger(__name__)


def default_data_dir() -> Path:
    """The user cache's data directory (``$XDG_CACHE_HOME/polytask/data``)."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "polytask" / "data"


def resolve_data_dir(cli_value: Optional[str], cfg: Optional[ExperimentConfig] = None) -> Optional[Path]:
    """``--data-dir``, then the config's ``data_dir``, then ``$POLYTASK_DATA``, then the user cache."""
    for value in (cli_value, cfg.data_dir if cfg else None, os.environ.get("POLYTASK_DATA")):
        if value:
            return Path(value).expanduser()
    return default_data_dir()


def fetch_missing_data(cfg: ExperimentConfig, data_dir: Path) -> None:
    """Download into ``data_dir`` the known datasets (:data:`polytask.data.download.DATASETS`:
    FDU-MTL) whose files the config reads and ``data_dir`` lacks, from their pinned source with
    SHA-256 checks; said in one line first, with how to use a local copy instead."""
    from .data.download import dataset_of, download
    missing = {}
    for task in cfg.tasks:
        for rel in (task.train, task.dev, task.test, task.unlabeled):
            if rel and not Path(rel).expanduser().is_absolute() and not (data_dir / rel).exists():
                ds = dataset_of(rel)
                if ds is not None:
                    missing[ds.name] = ds
    for ds in missing.values():
        logger.warning(f"{ds.subdir}/ is not in {data_dir}: downloading {ds.name} once ({len(ds.sha256)} files"
                       f"{', ' + ds.size if ds.size else ''}) from {ds.source}, checked against SHA-256. Offline? Pass "
                       f"--data-dir DIR (or set $POLYTASK_DATA), DIR holding a copy of {ds.subdir}/.")
        download(ds.name, data_dir)


def load_tasks(cfg: ExperimentConfig, data_dir: Optional[Path]) -> dict[str, Task]:
    return {tc.name: load_task(tc, data_dir, cfg.seed) for tc in cfg.tasks}


def build_vocab(cfg: ExperimentConfig, tasks: dict[str, Task]) -> Vocab:
    """One vocabulary over every task's training text (dev and test never enter it), or the
    tokenizer of ``model.pretrained``."""
    beside = getattr(cfg.model, "pretrained_beside_words", False)
    if getattr(cfg.model, "pretrained", None) and not beside:   # the architectures that take one declare the key
        from .modules.pretrained import load_pretrained_vocab
        return load_pretrained_vocab(cfg.model.pretrained, cfg.data.max_length)
    def sentences():
        for task in tasks.values():
            for ex in task.train:
                yield ex.tokens[: cfg.data.max_length]
                if ex.tokens_b is not None:
                    yield ex.tokens_b[: cfg.data.max_length]
                if ex.answer is not None:
                    yield ex.answer
    vocab = Vocab.build(sentences(), cfg.data.vocab_min_freq, cfg.data.vocab_max_size)
    if any(t.type == "qa" for t in tasks.values()):     # answers start and end with <s> ... </s>
        vocab = Vocab([PAD, UNK, BOS, EOS] + [t for t in vocab.itos[2:] if t not in (BOS, EOS)])
    if getattr(cfg.model, "pretrained", None):   # the words, and the pretrained tokenizer beside them
        from .modules.pretrained import WordsBesidePretrained, load_pretrained_vocab
        return WordsBesidePretrained(vocab.itos, load_pretrained_vocab(cfg.model.pretrained, 512))
    return vocab


def on_run_copy(cfg: ExperimentConfig, vocab) -> ExperimentConfig:
    """``cfg`` with ``model.pretrained`` pointing at the run's own copy of the pretrained model's
    tokenizer and config, when ``vocab`` was read from a run directory that has one: the model is
    then built from that config and its weights come from the run, so the original model folder
    may be gone."""
    copy = getattr(vocab, "run_copy", None)
    if copy is None or not getattr(cfg.model, "pretrained", None):
        return cfg
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, pretrained=str(copy)))


def build_char_vocab(cfg: ExperimentConfig, tasks: dict[str, Task]) -> Optional[Vocab]:
    """Characters of every training token, when the model reads characters (else None)."""
    if cfg.model.char_embedding_dim <= 0:
        return None
    return Vocab.build(list(tok) for task in tasks.values() for ex in task.train
                       for tok in ex.tokens[: cfg.data.max_length] + (ex.tokens_b or [])[: cfg.data.max_length])


def task_info(tasks: dict[str, Task]) -> dict[str, dict]:
    """What a run directory records about each task (``tasks.json``)."""
    return {n: t.info() for n, t in tasks.items()}


def specs_from_info(info: dict[str, dict]) -> list[TaskSpec]:
    return [spec_from_info(name, i) for name, i in info.items()]


def task_specs(tasks: dict[str, Task]) -> list[TaskSpec]:
    return specs_from_info(task_info(tasks))


def encode_split(task: Task, split: str, vocab: Vocab, max_length: int,
                 char_vocab: Optional[Vocab] = None) -> list[Encoded]:
    """A split's encoded examples: training examples cut to ``max_length``, dev and test examples
    as their kind scores them (tagging: every word, long sentences in pieces)."""
    encode = task.kind.encode if split == "train" else task.kind.encode_scored
    return encode(task.split(split), vocab, task.labels, max_length, char_vocab)


def make_model(cfg: ExperimentConfig, specs: list[TaskSpec], vocab: Vocab, data_dir: Optional[Path],
               with_vectors: bool = True, char_vocab: Optional[Vocab] = None):
    """Build the model; initialise embeddings from ``data.vectors`` when given (training only)."""
    vectors = None
    if with_vectors and cfg.data.vectors:
        from .data.vectors import NAMED_VECTORS, looks_like_vector_name, vectors_for_vocab
        source: str | Path = Path(cfg.data.vectors).expanduser()
        if not source.is_absolute() and not source.exists():
            source = resolve_path(data_dir, cfg.data.vectors)
        if cfg.data.vectors in NAMED_VECTORS or (looks_like_vector_name(cfg.data.vectors) and not source.exists()):
            source = cfg.data.vectors     # a named source (glove-6b-50d), or an unknown name: refused listing the known
        vectors, _ = vectors_for_vocab(source, vocab, cfg.model.embedding_dim, cfg.seed)
    return build_model(cfg, specs, len(vocab), vectors, num_chars=len(char_vocab) if char_vocab else 0)
