"""Per-example predictions of a run: ``<run>/predictions/<split>.jsonl``.

One JSON object per line and per example, in the order of the task's split (its file order)::

    {"task": "books", "index": 0, "gold": 1, "prediction": 0}

``gold`` and ``prediction`` are in the form the task's kind gives them (:meth:`TaskKind.gold`,
:meth:`TaskKind.predict`): a class id for (pair) classification, a float for regression, a list of
tag ids for tagging, an answer string (gold: the list of gold answers) for qa. Ids index the
``labels`` of the task in the run's ``tasks.json``. Two runs on the same test set can then be
paired example by example (:mod:`polytask.evaluation.significance`), and any metric recomputed
with :meth:`TaskKind.score_against`.
"""
from __future__ import annotations

import json
from pathlib import Path

PREDICTIONS_DIR = "predictions"


def predictions_path(run_dir: Path, split: str = "test") -> Path:
    return Path(run_dir) / PREDICTIONS_DIR / f"{split}.jsonl"


def write_predictions(run_dir: Path, split: str, pairs: dict[str, tuple[list, list]]) -> Path:
    """Write ``{task: (gold, predictions)}`` (through a temporary file and a rename)."""
    path = predictions_path(run_dir, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for task, (gold, predictions) in pairs.items():
            if len(gold) != len(predictions):
                raise ValueError(f"task {task!r}: {len(predictions)} predictions for {len(gold)} examples")
            for i, (g, p) in enumerate(zip(gold, predictions)):
                f.write(json.dumps({"task": task, "index": i, "gold": g, "prediction": p},
                                   ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def read_predictions(run_dir: Path, split: str = "test") -> dict[str, tuple[list, list]]:
    """``{task: (gold, predictions)}`` from a run directory, each list in example order."""
    path = predictions_path(run_dir, split)
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: no per-example predictions ({path.relative_to(run_dir)})")
    rows: dict[str, dict[int, tuple]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            rows.setdefault(record["task"], {})[int(record["index"])] = (record["gold"], record["prediction"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{n}: not a prediction record ({exc})") from None
    out = {}
    for task, by_index in rows.items():
        if sorted(by_index) != list(range(len(by_index))):
            raise ValueError(f"{path}: task {task!r} has gaps in its example indices")
        ordered = [by_index[i] for i in range(len(by_index))]
        out[task] = ([g for g, _ in ordered], [p for _, p in ordered])
    return out
