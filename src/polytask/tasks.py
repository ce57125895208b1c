"""A Task: name, kind, splits of examples, label set and metrics, read as its kind reads files."""
from __future__ import annotations

import dataclasses
import random
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .config import TaskConfig
from .data.qa import read_squad, split_by_article
from .data.readers import DataError, DataWarning, Example, ReadStats
from .kinds import TaskKind, TaskSpec, get_kind
from .kinds.qa import qa_examples


@dataclass
class Task:
    name: str
    type: str
    labels: list[str]
    train: list[Example]
    dev: list[Example]
    test: list[Example]
    metrics: tuple[str, ...] = ("accuracy",)
    stats: dict[str, ReadStats] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    scheme: Optional[str] = None
    head: str = "softmax"
    pair: bool = False
    recorded: dict = field(default_factory=dict)    # what the kind records of its settings (tasks.json)

    @property
    def kind(self) -> TaskKind:
        return get_kind(self.type)

    @property
    def metric(self) -> str:
        """The metric that selects on dev."""
        return self.metrics[0]

    def split(self, name: str) -> list[Example]:
        if name not in ("train", "dev", "test"):
            raise ValueError(f"unknown split {name!r} (train, dev, test)")
        return getattr(self, name)

    def info(self) -> dict:
        """What a run directory records about the task (``tasks.json``)."""
        return {"type": self.type, "labels": self.labels, "metrics": list(self.metrics), "scheme": self.scheme,
                "head": self.head, "pair": self.pair, **self.recorded}


def task_metrics(cfg: TaskConfig) -> tuple[str, ...]:
    """The task's metrics: its ``metric`` (one or a list), else its kind's defaults."""
    if cfg.metric:
        return (cfg.metric,) if isinstance(cfg.metric, str) else tuple(cfg.metric)
    return get_kind(cfg.type).default_metric(cfg)


def spec_from_info(name: str, info: dict) -> TaskSpec:
    return TaskSpec(name, info["type"], tuple(info["labels"]), info.get("scheme"), info.get("head", "softmax"),
                    bool(info.get("pair", info["type"] == "pair_classification")))


def resolve_path(data_dir: Optional[Path], rel: str) -> Path:
    path = Path(rel).expanduser()
    if not path.is_absolute() and data_dir is not None:
        path = data_dir / path
    return path


def split_source(cfg: TaskConfig, data_dir: Optional[Path], role: str) -> Optional[Path]:
    """The path the task's ``role`` split (dev, test) is read from: its own path, or, for a Hugging
    Face dataset whose ``split`` mapping names the role, the train path's dataset; None if neither."""
    given = getattr(cfg, role)
    if given is not None:
        return resolve_path(data_dir, given)
    if cfg.format == "hf" and role in (cfg.split or {}):
        return resolve_path(data_dir, cfg.train)
    return None


def _read(kind: TaskKind, cfg: TaskConfig, path: Path, role: str, paths: dict, stats: dict) -> list[Example]:
    examples, stats[role] = kind.read(cfg, path, role=role)
    paths[role] = getattr(stats[role], "extra", {}).get("source") or str(path)   # an hf split: its path and name
    return examples


def load_task(cfg: TaskConfig, data_dir: Optional[Path], seed: int = 1) -> Task:
    """Read a task's files with its kind's reader and carve its dev set as ``cfg.dev_split`` says
    (a Hugging Face dataset's named dev split, or a dev path, is its dev set)."""
    kind = get_kind(cfg.type)
    paths, stats = {}, {}
    train_path = resolve_path(data_dir, cfg.train)
    paths["train"] = str(train_path)
    split_test: Optional[list[Example]] = None
    if cfg.format == "squad" and cfg.article_split:
        # only one file (SQuAD's dev set): its articles are split into train and test
        first, second = split_by_article(read_squad(train_path), cfg.article_split, seed)
        train, split_test = qa_examples(cfg, first), qa_examples(cfg, second)
        stats["train"] = ReadStats(lines=len(train))
    else:
        train = _read(kind, cfg, train_path, "train", paths, stats)
    policy, size = cfg.dev_split.policy, cfg.dev_split.size
    dev_path = split_source(cfg, data_dir, "dev")
    if dev_path is not None and (policy == "file" or cfg.format == "hf"):
        dev = _read(kind, cfg, dev_path, "dev", paths, stats)
    elif policy == "file":
        raise DataError(cfg.name, "dev_split.policy is 'file' but the task has no dev path")
    elif policy == "none":
        dev = []
    else:
        if size >= len(train):
            raise DataError(train_path, f"dev_split.size {size} leaves no training data "
                            f"({len(train)} examples)")
        if policy == "tail":
            train, dev = train[: len(train) - size], train[len(train) - size:]
        else:
            order = list(range(len(train)))
            random.Random(f"{seed}/{cfg.name}/dev").shuffle(order)
            held = set(order[:size])
            dev = [ex for i, ex in enumerate(train) if i in held]
            train = [ex for i, ex in enumerate(train) if i not in held]
    if cfg.balance_labels:
        train = balance_labels(train, seed, cfg.name)
    train = kind.vary_training(cfg, train, seed)
    test = split_test or []
    test_path = split_source(cfg, data_dir, "test")
    if test_path is not None and split_test is None:
        test = _read(kind, cfg, test_path, "test", paths, stats)
    labels = kind.label_set(cfg, train)
    if cfg.labels is None:
        warn_of_rare_labels(cfg.name, kind, train, paths["train"])
    kind.check_labels(cfg, labels, {"train": train, "dev": dev, "test": test}, paths)
    return Task(name=cfg.name, type=cfg.type, labels=labels, train=train, dev=dev, test=test,
                metrics=task_metrics(cfg), stats=stats, paths=paths, scheme=cfg.tag_scheme,
                head=cfg.tagging_head if cfg.type == "tagging" else "softmax", pair=kind.pair(cfg),
                recorded=kind.recorded(cfg))


def balance_labels(train: list[Example], seed: int, name: str) -> list[Example]:
    """``balance_labels``: the training examples, and copies of the rarer labels' examples (each
    repeated as evenly as possible, the leftover ones drawn with ``seed``) until every label has as
    many as the most frequent; an epoch then sees every label equally often."""
    by: dict[str, list[Example]] = {}
    for ex in train:
        by.setdefault(ex.label, []).append(ex)
    most = max((len(v) for v in by.values()), default=0)
    rng = random.Random(f"{seed}/{name}/balance")
    out = list(train)
    for label in sorted(by, key=str):
        examples = by[label]
        whole, rest = divmod(most - len(examples), len(examples))
        out += examples * whole + rng.sample(examples, rest)
    rng.shuffle(out)
    return out


# A label seen this often or less, where another is seen ten times as often, may be a typo (the
# real data's rarest tags, CoNLL-2000's I-PRT and B-UCP, are seen twice).
RARE_LABEL = 1


def warn_of_rare_labels(name: str, kind: TaskKind, train: list[Example], path: str) -> None:
    """Without ``labels:`` every label of the train split is a class, a typo too: warn (a
    :class:`DataWarning`) of a label seen only :data:`RARE_LABEL` time where another is seen ten
    times as often, listing every label found with its count."""
    counts: Counter = Counter()
    first: dict[str, int] = {}
    for ex in train:
        for label in kind.gold_labels(ex):
            counts[label] += 1
            first.setdefault(label, ex.line)
    top = max(counts.values(), default=0)
    rare = sorted((label for label, n in counts.items() if n <= RARE_LABEL and n * 10 <= top), key=first.get)
    if not rare:
        return
    seen = ", ".join(f"{label!r} (seen once, in the example at line {first[label]})" for label in rare)
    found = counts.most_common()
    listed = ", ".join(f"{label!r} {n}" for label, n in found[:30]) + (f", ... ({len(found) - 30} more)"
                                                                       if len(found) > 30 else "")
    warnings.warn(f"{path}: task {name!r} gives no labels:, so every label of its train split is a class, and "
                  f"{seen} may be a typo. Labels found: {listed}. List them in the task's labels: to refuse "
                  "any other.", DataWarning, stacklevel=3)


def load_unlabeled(cfg: TaskConfig, data_dir: Optional[Path]) -> list[list[str]]:
    """Token lists of a task's unlabeled file (empty when it has none)."""
    if cfg.unlabeled is None:
        return []
    if cfg.unlabeled_tokenizer is not None:
        cfg = dataclasses.replace(cfg, tokenizer=cfg.unlabeled_tokenizer)
    examples, _ = get_kind(cfg.type).read(cfg, resolve_path(data_dir, cfg.unlabeled), labelled=False, role="unlabeled")
    return [ex.tokens for ex in examples]
