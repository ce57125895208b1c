"""``polytask data check``: what the data of an experiment looks like before training on it.

For every task of a config: split sizes, label balance, token lengths, unknown-word rates against
the vocabulary training would build, what the readers had to repair, and duplicated texts inside a
split, across the splits of a task and across tasks. Two texts are duplicates when their token
sequences (after the task's tokenizer and lowercasing) are identical; empty texts never count.
"""
from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from pathlib import Path
from typing import Optional

import numpy as np

from .config import ExperimentConfig
from .data.readers import Example
from .data.vocab import Vocab
from .experiment import build_vocab
from .kinds import get_kind
from .tasks import Task, load_task, resolve_path

SPLITS = ("train", "dev", "test")
PAIRS = (("train", "dev"), ("train", "test"), ("dev", "test"))


def _key(ex: Example) -> Optional[tuple]:
    """The identity of an example's text, or None for an empty text."""
    if not ex.tokens and not ex.tokens_b:
        return None
    if ex.tokens_b is None:
        return tuple(ex.tokens)
    return tuple(ex.tokens), tuple(ex.tokens_b)


def _length_stats(examples: list[Example], max_length: int) -> dict:
    """Mean, median, 95th percentile and max token length, and how many exceed ``max_length``."""
    lengths = np.array([len(ex.tokens) for ex in examples], dtype=np.int64)
    over = sum(1 for ex in examples
               if len(ex.tokens) > max_length or len(ex.tokens_b or ()) > max_length)
    if lengths.size == 0:
        return {"mean": None, "median": None, "p95": None, "max": None, "over_max_length": 0}
    return {"mean": round(float(lengths.mean()), 2), "median": float(np.median(lengths)),
            "p95": round(float(np.percentile(lengths, 95)), 2), "max": int(lengths.max()),
            "over_max_length": over}


def _unk_rate(examples: list[Example], vocab: Vocab, max_length: int) -> tuple[Optional[float], int, int]:
    """Share of tokens (the first ``max_length`` of each text, as the model sees them) not in ``vocab``
    (of a pretrained tokenizer's sub-tokens: the share that are its unknown token)."""
    if not isinstance(vocab, Vocab):
        counts = [vocab.unknown(ex, max_length) for ex in examples]
        unknown, total = sum(u for u, _ in counts), sum(n for _, n in counts)
        return (round(unknown / total, 5) if total else None), unknown, total
    known, total, unknown = vocab.stoi, 0, 0
    for ex in examples:
        for tokens in (ex.tokens, ex.tokens_b or []):
            tokens = tokens[:max_length]
            total += len(tokens)
            unknown += sum(1 for t in tokens if t not in known)
    return (round(unknown / total, 5) if total else None), unknown, total


def _duplicates(task: Task, other_train: dict[str, set]) -> dict:
    """Duplicate counts of one task; ``other_train`` maps every task name to its train text keys."""
    keys = {s: [k for k in map(_key, task.split(s)) if k is not None] for s in SPLITS}
    sets = {s: set(v) for s, v in keys.items()}
    out = {"within_train": len(keys["train"]) - len(sets["train"]),
           "within_test": len(keys["test"]) - len(sets["test"])}
    for a, b in PAIRS:
        out[f"{a}_{b}"] = len(sets[a] & sets[b])
    seen = sets["train"] | sets["dev"]
    # the published figure (PROVENANCE): distinct test texts found in the train file (train + dev)
    out["test_in_train_dev"] = len(sets["test"] & seen)
    out["test_examples_in_train_dev"] = sum(1 for k in keys["test"] if k in seen)
    by_task = {name: len(sets["test"] & keys_) for name, keys_ in other_train.items()
               if name != task.name and sets["test"] & keys_}
    others = set().union(*(keys_ for name, keys_ in other_train.items() if name != task.name))
    out["test_in_other_train"] = len(sets["test"] & others)
    out["test_in_other_train_by_task"] = by_task
    labels = defaultdict(set)
    for s in SPLITS:
        for ex in task.split(s):
            k = _key(ex)
            if k is not None:
                labels[k].add(ex.label)
    out["label_conflicts"] = sum(1 for v in labels.values() if len(v) > 1)
    return out


def _task_notes(name: str, rep: dict) -> list[str]:
    """Plain-language notes on what stands out in one task's report."""
    notes = []
    for file, st in rep["read_stats"].items():
        if st["fallback_lines"] or st["replaced_chars"]:
            notes.append(f"{name}: {st['fallback_lines']} {file} line(s) were not valid UTF-8 and were "
                         f"decoded with the fallback encoding ({st['replaced_chars']} character(s) replaced)")
        if st["empty_texts"]:
            notes.append(f"{name}: {st['empty_texts']} empty text(s) in the {file} file (kept)")
    d = rep["duplicates"]
    if d["test_in_train_dev"]:
        notes.append(f"{name}: {d['test_in_train_dev']} distinct test texts "
                     f"({d['test_examples_in_train_dev']} of {rep['counts']['test']} test examples) "
                     "also appear in train+dev")
    if d["test_in_other_train"]:
        where = ", ".join(f"{t} {n}" for t, n in sorted(d["test_in_other_train_by_task"].items(),
                                                        key=lambda kv: -kv[1]))
        notes.append(f"{name}: {d['test_in_other_train']} distinct test texts appear in other tasks' "
                     f"train splits ({where})")
    if d["label_conflicts"]:
        notes.append(f"{name}: {d['label_conflicts']} text(s) occur with different labels")
    return notes


def check_tasks(cfg: ExperimentConfig, data_dir: Optional[Path]) -> dict:
    """Inspect every task of ``cfg`` and return a JSON-serialisable report.

    Args:
        cfg: The experiment; its tasks, ``seed`` (random dev splits) and ``data`` settings are used.
        data_dir: Directory the task paths are relative to.

    Returns:
        ``{"data_dir", "max_length", "vocab_size", "tasks": {name: {...}}, "total": {...},
        "notes": [...]}``. Per task: ``counts`` (train/dev/test/unlabeled), ``label_balance``
        (label counts per split), ``lengths`` (per split), ``unk_rate`` (dev/test),
        ``read_stats`` (per file read: ``train`` is the whole train file, dev portion included)
        and ``duplicates``. Overlap counts between splits or tasks count distinct texts;
        ``within_*`` counts the extra copies inside one split.

    Raises:
        DataError: A task file is missing or malformed.
    """
    max_length = cfg.data.max_length
    tasks = {tc.name: load_task(tc, data_dir, cfg.seed) for tc in cfg.tasks}
    vocab = build_vocab(cfg, tasks)
    train_keys = {name: {k for k in map(_key, t.train) if k is not None} for name, t in tasks.items()}
    report = {"data_dir": str(data_dir), "max_length": max_length, "vocab_size": len(vocab),
              "tasks": {}, "total": {}, "notes": []}
    unk_sums = {"dev": [0, 0], "test": [0, 0]}
    for tc in cfg.tasks:
        task = tasks[tc.name]
        stats = {file: dataclasses.asdict(st) for file, st in task.stats.items()}
        unlabeled = 0
        if tc.unlabeled is not None:
            examples, st = get_kind(tc.type).read(tc, resolve_path(data_dir, tc.unlabeled), labelled=False,
                                                  role="unlabeled")
            unlabeled, stats["unlabeled"] = len(examples), dataclasses.asdict(st)
        for st in stats.values():
            st.pop("extra", None)
        rep = {"type": task.type, "labels": task.labels,
               "counts": {**{s: len(task.split(s)) for s in SPLITS}, "unlabeled": unlabeled},
               "label_balance": {s: {lab: Counter(ex.label for ex in task.split(s)).get(lab, 0)
                                     for lab in task.labels} for s in SPLITS},
               "lengths": {s: _length_stats(task.split(s), max_length) for s in SPLITS},
               "unk_rate": {}, "read_stats": stats,
               "duplicates": _duplicates(task, train_keys), "paths": task.paths}
        for s in ("dev", "test"):
            rate, unknown, total = _unk_rate(task.split(s), vocab, max_length)
            rep["unk_rate"][s] = rate
            unk_sums[s][0] += unknown
            unk_sums[s][1] += total
        report["tasks"][tc.name] = rep
        report["notes"] += _task_notes(tc.name, rep)
    reps = report["tasks"].values()
    total = {"tasks": len(tasks),
             "counts": {s: sum(r["counts"][s] for r in reps) for s in (*SPLITS, "unlabeled")},
             "unk_rate": {s: (round(u / n, 5) if n else None) for s, (u, n) in unk_sums.items()},
             "duplicates": {k: sum(r["duplicates"][k] for r in reps)
                            for k in ("within_train", "within_test", "train_dev", "train_test",
                                      "dev_test", "test_in_train_dev", "test_examples_in_train_dev",
                                      "test_in_other_train", "label_conflicts")}}
    lengths = [r["lengths"]["train"]["mean"] * r["counts"]["train"] for r in reps if r["counts"]["train"]]
    total["train_mean_length"] = round(sum(lengths) / max(1, total["counts"]["train"]), 2)
    over = {name: [r["lengths"][s]["over_max_length"] for s in SPLITS] for name, r in report["tasks"].items()}
    over = {name: n for name, n in over.items() if sum(n)}
    if over:
        report["notes"].append(f"texts longer than data.max_length={max_length} are truncated "
                               "(train/dev/test): " + ", ".join(
                                   f"{name} {'/'.join(map(str, n))}" for name, n in over.items()))
    report["total"] = total
    return report


def _balance(counts: dict[str, int]) -> str:
    n = sum(counts.values())
    return "/".join(f"{100 * c / n:.0f}" for c in counts.values()) if n else "-"


def _rate(value: Optional[float]) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


_COLUMNS = [("task", "<"), ("train", ">"), ("dev", ">"), ("test", ">"), ("unlab", ">"),
            ("bal% train", ">"), ("len", ">"), ("unk dev", ">"), ("unk test", ">"), ("dup tr", ">"),
            ("dup te", ">"), ("tr∩dev", ">"), ("tr∩te", ">"), ("dev∩te", ">"), ("te∩tr+dev", ">"),
            ("te∩other", ">")]


def format_report(report: dict) -> str:
    """Render a :func:`check_tasks` report as a plain-text table followed by notes.

    Args:
        report: The dictionary :func:`check_tasks` returned.

    Returns:
        One row per task and a total row, then a legend and the notes, one per line.
    """
    rows = []
    for name, r in report["tasks"].items():
        c, d = r["counts"], r["duplicates"]
        mean = r["lengths"]["train"]["mean"]
        rows.append([name, c["train"], c["dev"], c["test"], c["unlabeled"],
                     _balance(r["label_balance"]["train"]), "-" if mean is None else f"{mean:.0f}",
                     _rate(r["unk_rate"]["dev"]), _rate(r["unk_rate"]["test"]), d["within_train"],
                     d["within_test"], d["train_dev"], d["train_test"], d["dev_test"],
                     d["test_in_train_dev"], d["test_in_other_train"]])
    t = report["total"]
    c, d = t["counts"], t["duplicates"]
    rows.append([f"total ({t['tasks']} tasks)", c["train"], c["dev"], c["test"], c["unlabeled"], "",
                 f"{t['train_mean_length']:.0f}", _rate(t["unk_rate"]["dev"]),
                 _rate(t["unk_rate"]["test"]), d["within_train"], d["within_test"], d["train_dev"],
                 d["train_test"], d["dev_test"], d["test_in_train_dev"], d["test_in_other_train"]])
    cells = [[str(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, (h, _) in enumerate(_COLUMNS)]

    def line(values: list[str]) -> str:
        return "  ".join(f"{v:{a}{w}}" for v, (_, a), w in zip(values, _COLUMNS, widths)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = [line([h for h, _ in _COLUMNS]), rule, *map(line, cells[:-1]), rule, line(cells[-1]), ""]
    labels = {tuple(r["labels"]) for r in report["tasks"].values()}
    order = "/".join(next(iter(labels))) if len(labels) == 1 else "each task's label order"
    out += [f"data: {report['data_dir']}; vocabulary: {report['vocab_size']} words from all train splits; "
            f"max_length {report['max_length']}",
            f"bal% train = share of labels {order} in train; len = mean train tokens; unk = dev/test tokens "
            "not in the vocabulary",
            "dup = extra copies of a text within a split; A∩B = distinct texts in both; te∩tr+dev = "
            "distinct test texts in the train file; te∩other = distinct test texts in other tasks' train",
            ""]
    out += ["notes:"] + [f"  - {n}" for n in report["notes"]] if report["notes"] else ["notes: none"]
    return "\n".join(out)
