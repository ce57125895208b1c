"""A Task: name, type, splits of examples, label vocabulary and metric."""
from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..config import TaskConfig
from .conll import read_conll, read_conllu
from .qa import read_squad, split_by_article
from .readers import DataError, Example, ReadStats, read_fdu, read_table, tokenize


@dataclass
class Task:
    name: str
    type: str
    labels: list[str]
    train: list[Example]
    dev: list[Example]
    test: list[Example]
    metric: str = "accuracy"
    stats: dict[str, ReadStats] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)

    scheme: Optional[str] = None
    head: str = "softmax"

    @property
    def is_pair(self) -> bool:
        return self.type == "pair_classification"

    @property
    def is_tagging(self) -> bool:
        return self.type == "tagging"

    def split(self, name: str) -> list[Example]:
        if name not in ("train", "dev", "test"):
            raise ValueError(f"unknown split {name!r} (train, dev, test)")
        return getattr(self, name)


def resolve_path(data_dir: Optional[Path], rel: str) -> Path:
    path = Path(rel).expanduser()
    if not path.is_absolute() and data_dir is not None:
        path = data_dir / path
    return path


def qa_examples(cfg: TaskConfig, items) -> list[Example]:
    """SQuAD-style QAExamples as Examples (context = tokens, question = tokens_b)."""
    how = cfg.tokenizer
    return [Example(tokens=tokenize(q.context, how, cfg.lowercase),
                    tokens_b=tokenize(q.question, question_tokenizer(cfg), cfg.lowercase),
                    answer=tokenize(q.answers[0], how, cfg.lowercase) if q.answers else [],
                    answers_text=list(q.answers), line=i + 1) for i, q in enumerate(items)]


def question_tokenizer(cfg: TaskConfig) -> str:
    """How a question someone wrote (a template, or a new question at prediction time) is split:
    the task's own tokenizer, except that ``whitespace`` (for pre-tokenised files) becomes ``ptb``,
    so that "good or bad?" ends in the words "bad" and "?" and not in the unknown word "bad?"."""
    return "ptb" if cfg.tokenizer == "whitespace" else cfg.tokenizer


def cast_to_qa(cfg: TaskConfig, examples: list[Example]) -> list[Example]:
    """Labelled examples as (context, question, answer) with the task's question template. The
    template's own words go through :func:`question_tokenizer`; ``{b}`` (the second text of a pair)
    keeps the tokens its file gave."""
    words = {str(k): str(v) for k, v in cfg.answer_words.items()}
    how = question_tokenizer(cfg)
    parts = [tokenize(part.format(labels=", ".join(words.values())), how, cfg.lowercase)
             for part in cfg.question.split("{b}")]
    out = []
    for ex in examples:
        if ex.label not in words:
            raise DataError(cfg.train, f"label {ex.label!r} has no entry in answer_words {words}", ex.line)
        question = list(parts[0])
        for part in parts[1:]:
            question += list(ex.tokens_b or []) + part
        answer = words[ex.label]
        out.append(Example(tokens=ex.tokens, tokens_b=question,
                           answer=tokenize(answer, cfg.tokenizer, cfg.lowercase), answers_text=[answer],
                           label=ex.label, line=ex.line))
    return out


def read_split(cfg: TaskConfig, path: Path, labeled: bool = True) -> tuple[list[Example], ReadStats]:
    """Read one file of a task with the reader its ``format`` names."""
    if cfg.format == "squad":
        return qa_examples(cfg, read_squad(path)), ReadStats()
    if cfg.type == "qa" and labeled:
        plain = dataclasses.replace(cfg, type="pair_classification" if cfg.text_b_column else "classification")
        examples, stats = read_split(plain, path)
        return cast_to_qa(cfg, examples), stats
    if cfg.format == "conll":
        return read_conll(path, token_column=cfg.token_column, label_column=cfg.tag_column,
                          lowercase=cfg.lowercase, encoding=cfg.encoding,
                          fallback_encoding=cfg.fallback_encoding)
    if cfg.format == "conllu":
        return read_conllu(path, label_field=cfg.conllu_field, lowercase=cfg.lowercase,
                           encoding=cfg.encoding)
    if cfg.format == "fdu":
        return read_fdu(path, labeled=labeled, tokenizer=cfg.tokenizer, lowercase=cfg.lowercase,
                        encoding=cfg.encoding, fallback_encoding=cfg.fallback_encoding)
    if not labeled:
        return read_table(path, fmt=cfg.format, text_column=cfg.text_column, label_column=None,
                          header=cfg.header, tokenizer=cfg.tokenizer, lowercase=cfg.lowercase,
                          encoding=cfg.encoding, fallback_encoding=cfg.fallback_encoding)
    return read_table(path, fmt=cfg.format, text_column=cfg.text_column, label_column=cfg.label_column,
                      text_b_column=cfg.text_b_column if cfg.type == "pair_classification" else None,
                      header=cfg.header, tokenizer=cfg.tokenizer, lowercase=cfg.lowercase,
                      encoding=cfg.encoding, fallback_encoding=cfg.fallback_encoding)


def complete_tag_set(tags: list[str], scheme: str) -> list[str]:
    """Every prefix of every chunk type seen (a type seen as B-LST also gets I-LST), so a test
    tag whose type is known but whose prefix never occurred in training is not an error."""
    prefixes = "BI" if scheme == "BIO" else "BIES"
    kinds = {t.split("-", 1)[1] for t in tags if "-" in t}
    return sorted(set(tags) | {f"{p}-{k}" for k in kinds for p in prefixes})


def load_task(cfg: TaskConfig, data_dir: Optional[Path], seed: int = 1) -> Task:
    """Read a task's files and carve its dev set as ``cfg.dev_split`` says."""
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
        train, stats["train"] = read_split(cfg, train_path)
    policy, size = cfg.dev_split.policy, cfg.dev_split.size
    if policy == "file" and cfg.dev is not None:
        dev_path = resolve_path(data_dir, cfg.dev)
        paths["dev"] = str(dev_path)
        dev, stats["dev"] = read_split(cfg, dev_path)
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
    test = split_test or []
    if cfg.test is not None and split_test is None:
        test_path = resolve_path(data_dir, cfg.test)
        paths["test"] = str(test_path)
        test, stats["test"] = read_split(cfg, test_path)

    if cfg.type == "qa":
        return Task(name=cfg.name, type="qa", labels=[], train=train, dev=dev, test=test,
                    metric="f1" if cfg.format == "squad" else "em", stats=stats, paths=paths)
    if cfg.type == "tagging":
        labels = list(cfg.labels) if cfg.labels is not None else sorted(
            {tag for ex in train for tag in ex.tags})
        if cfg.labels is None and cfg.tag_scheme:
            labels = complete_tag_set(labels, cfg.tag_scheme)
        gold = lambda ex: ex.tags                                        # noqa: E731
    else:
        labels = list(cfg.labels) if cfg.labels is not None else sorted({ex.label for ex in train})
        gold = lambda ex: [ex.label]                                     # noqa: E731
    known = set(labels)
    for split, examples in (("train", train), ("dev", dev), ("test", test)):
        for ex in examples:
            for label in gold(ex):
                if label not in known:
                    source = paths.get(split, paths["train"])
                    raise DataError(source, f"unknown label {label!r} for task {cfg.name!r} "
                                    f"(known: {', '.join(labels)})", ex.line)
    if len(labels) < 2:
        raise DataError(train_path, f"task {cfg.name!r} needs at least two labels, found {labels}")
    metric = "f1" if cfg.type == "tagging" and cfg.tag_scheme else "accuracy"
    return Task(name=cfg.name, type=cfg.type, labels=labels, train=train, dev=dev, test=test,
                metric=metric, stats=stats, paths=paths, scheme=cfg.tag_scheme,
                head=cfg.tagging_head if cfg.type == "tagging" else "softmax")


def load_unlabeled(cfg: TaskConfig, data_dir: Optional[Path]) -> list[list[str]]:
    """Token lists of a task's unlabeled file (empty when it has none)."""
    if cfg.unlabeled is None:
        return []
    if cfg.unlabeled_tokenizer is not None:
        cfg = dataclasses.replace(cfg, tokenizer=cfg.unlabeled_tokenizer)
    examples, _ = read_split(cfg, resolve_path(data_dir, cfg.unlabeled), labeled=False)
    return [ex.tokens for ex in examples]
