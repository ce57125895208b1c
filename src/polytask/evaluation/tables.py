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
