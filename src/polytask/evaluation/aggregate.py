"""Runs of one system over several seeds, summarised: mean ± sample standard deviation over seeds
of every metric of every task, and of the average over tasks.

A system trained with ``polytask train CONFIG --seeds 1,2,3`` is a directory holding one run
directory per seed (``seed-1/``, ``seed-2/``, ...); :func:`write_aggregate` writes its summary
beside them as ``seeds.json`` and ``seeds.md``.
"""
from __future__ import annotations

import json
import math
import re
import statistics
from pathlib import Path
from typing import Optional

SEED_DIR = re.compile(r"^seed-(-?\d+)$")


def seed_dir(parent: Path, seed: int) -> Path:
    return Path(parent) / f"seed-{seed}"


def seed_runs(parent: Path) -> dict[int, Path]:
    """The seed run directories under ``parent`` (``seed-<n>`` holding a run), by seed."""
    parent = Path(parent)
    if not parent.is_dir():
        return {}
    found = {int(m.group(1)): d for d in parent.iterdir()
             if d.is_dir() and (m := SEED_DIR.match(d.name)) and (d / "config.yaml").is_file()}
    return dict(sorted(found.items()))


def mean_std(values: list[float]) -> dict:
    """``{"mean", "std", "n", "values"}``; ``std`` is the sample standard deviation (n − 1 in the
    denominator), None below two values."""
    values = [float(v) for v in values if v is not None and not math.isnan(v)]
    if not values:
        return {"mean": None, "std": None, "n": 0, "values": []}
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None,
            "n": len(values), "values": values}


def split_metrics(results: dict, split: str) -> dict[str, dict[str, float]]:
    """``{task: {metric: value}}`` of one split of a ``results.json`` (every metric; results
    written before per-task metric lists give their one score under its metric's name)."""
    if results.get(f"{split}_metrics"):
        return results[f"{split}_metrics"]
    names = results.get("metrics", {})
    return {task: {(names.get(task) or ["score"])[0]: value} for task, value in results.get(split, {}).items()}


def aggregate_results(runs: dict[int, dict]) -> dict:
    """Mean ± std over seeds of every (split, task, metric), of ``dev_avg``/``test_avg`` and, for a
    metric every task reports, of its average over tasks. ``runs``: seed -> ``results.json``."""
    out: dict = {"seeds": sorted(runs)}
    for split in ("dev", "test"):
        per_seed = {seed: split_metrics(r, split) for seed, r in runs.items()}
        tasks = list(dict.fromkeys(t for scores in per_seed.values() for t in scores))
        out[split] = {}
        for task in tasks:
            metrics = list(dict.fromkeys(m for s in per_seed.values() for m in s.get(task, {})))
            out[split][task] = {m: mean_std([s[task][m] for s in per_seed.values() if m in s.get(task, {})])
                                for m in metrics}
        out[f"{split}_avg"] = mean_std([r.get(f"{split}_avg") for r in runs.values()])
        shared = [m for m in dict.fromkeys(m for t in tasks for m in out[split][t])
                  if all(m in out[split][t] for t in tasks)]
        out.setdefault("average", {})[split] = {
            m: mean_std([statistics.fmean(s[t][m] for t in tasks) for s in per_seed.values()
                         if all(m in s.get(t, {}) for t in tasks)]) for m in shared}
    for key in ("steps", "best_step", "wall_seconds"):
        out[key] = mean_std([r.get(key) for r in runs.values()])
    out["architecture"] = next((r.get("architecture") for r in runs.values()), None)
    return out


def format_stat(stat: Optional[dict]) -> str:
    if not stat or stat.get("mean") is None:
        return "–"
    return f"{stat['mean']:.2f}" if stat.get("std") is None else f"{stat['mean']:.2f} ± {stat['std']:.2f}"


def format_aggregate(agg: dict) -> str:
    """A Markdown table: rows = tasks and their average, columns = each split's first metric
    (``dev``, ``test``) and its other metrics (``test macro_f1``, ...), cells = mean ± std."""
    columns: dict[str, dict[str, str]] = {}
    tasks = list(dict.fromkeys(list(agg["dev"]) + list(agg["test"])))
    for split in ("dev", "test"):
        for task, metrics in agg[split].items():
            for i, (metric, stat) in enumerate(metrics.items()):
                columns.setdefault(split if i == 0 else f"{split} {metric}", {})[task] = format_stat(stat)
        columns.setdefault(split, {})["average"] = format_stat(agg[f"{split}_avg"])
        for metric, stat in agg["average"][split].items():
            name = f"{split} {metric}"
            if name in columns:
                columns[name]["average"] = format_stat(stat)
    rows = [[task] + [columns[c].get(task, "–") for c in columns] for task in tasks + ["average"]]
    header = ["task"] + list(columns)
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    seeds = agg["seeds"]
    spread = ("mean ± sample standard deviation over seeds" if len(seeds) > 1
              else "one seed, so no spread (train several with --seeds)")
    note = (f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))}): {spread}; "
            "average = the mean over tasks of each task's first metric")
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
                     + [line(r) for r in rows] + ["", note])


def read_results(run_dir: Path) -> Optional[dict]:
    path = Path(run_dir) / "results.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def write_aggregate(parent: Path, seeds: Optional[list[int]] = None) -> Optional[dict]:
    """Aggregate the finished seed runs under ``parent`` (only ``seeds`` when given) into
    ``parent/seeds.json`` and ``parent/seeds.md``; returns the aggregate, None when no seed run
    has finished. ``missing`` lists the seeds asked for whose run has not finished."""
    parent = Path(parent)
    dirs = seed_runs(parent)
    wanted = sorted(seeds) if seeds is not None else list(dirs)
    results = {s: r for s in wanted if s in dirs and (r := read_results(dirs[s])) is not None}
    if not results:
        return None
    agg = aggregate_results(results)
    agg["runs"] = {str(s): dirs[s].name for s in results}
    agg["missing"] = [s for s in wanted if s not in results]
    (parent / "seeds.json").write_text(json.dumps(agg, indent=1), encoding="utf-8")
    table = format_aggregate(agg)
    if agg["missing"]:
        table += f"\n\nNot finished: seeds {', '.join(map(str, agg['missing']))}."
    (parent / "seeds.md").write_text(f"# {parent.name}\n\n{table}\n", encoding="utf-8")
    return agg
