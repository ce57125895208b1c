"""Plain-text and Markdown tables of per-task results."""
from __future__ import annotations

import math


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def format_table(columns: dict[str, dict[str, float]], tasks: list[str], markdown: bool = True,
                 average: bool = True) -> str:
    """Rows = tasks (+ average), columns = runs or splits. ``columns[name][task] = value``."""
    names = list(columns)
    rows = []
    for task in tasks:
        rows.append([task] + [_fmt(columns[n].get(task)) for n in names])
    if average:
        avg = []
        for n in names:
            vals = [columns[n][t] for t in tasks if columns[n].get(t) is not None]
            avg.append(_fmt(sum(vals) / len(vals)) if vals else "–")
        rows.append(["average"] + avg)
    header = ["task"] + names
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    if markdown:
        line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"
        sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
        return "\n".join([line(header), sep] + [line(r) for r in rows])
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths))
    return "\n".join([line(header), "-" * (sum(widths) + 2 * len(widths))] + [line(r) for r in rows])


def format_metric_table(splits: dict[str, dict[str, dict[str, float]]], tasks: list[str],
                        markdown: bool = False) -> str:
    """``{split: {task: {metric: value}}}`` as one table: a column ``split`` with each task's first
    metric (the one that selects on dev; the average row averages these), then ``split metric``
    columns for every other metric. A note names the first metrics unless all are accuracy."""
    columns: dict[str, dict[str, float]] = {}
    first: dict[str, str] = {}
    for split, scores in splits.items():
        for task, values in scores.items():
            for i, (metric, value) in enumerate(values.items()):
                columns.setdefault(split if i == 0 else f"{split} {metric}", {})[task] = value
                if i == 0:
                    first.setdefault(task, metric)
    table = format_table(columns, tasks, markdown=markdown)
    if any(metric != "accuracy" for metric in first.values()):
        table += "\n" + f"{', '.join(splits)}: each task's first metric (" + \
            ", ".join(f"{t} {first[t]}" for t in tasks if t in first) + ")"
    return table
