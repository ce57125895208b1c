"""``polytask report RUN_DIR...``: one or several runs side by side, as Markdown and HTML.

For every run: per-task dev/test results, the learning curves (mean dev metric and per-task dev
over steps, from ``metrics.jsonl``), and, when a single-task run is among them (or given with
``--baseline``), Δm against it (Maninis et al. 2019: the mean relative change over tasks,
Δm = (1/K) Σ_k (M_k − M_k^single) / M_k^single, in percent) with a negative-transfer flag for each
task that does worse than its single-task model.
"""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Optional

from .tables import format_table


def read_run(run_dir: Path) -> dict:
    run_dir = Path(run_dir)
    if not (run_dir / "metrics.jsonl").is_file():
        raise FileNotFoundError(f"{run_dir}: not a polytask run directory (no metrics.jsonl)")
    log = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]
    results = json.loads((run_dir / "results.json").read_text()) if (run_dir / "results.json").is_file() else {}
    return {"name": run_dir.name, "dir": str(run_dir), "log": log, "results": results}


def delta_m(scores: dict[str, float], single: dict[str, float]) -> Optional[float]:
    common = [t for t in scores if t in single and single[t]]
    if not common:
        return None
    return 100.0 * sum((scores[t] - single[t]) / single[t] for t in common) / len(common)


def plot_curves(runs: list[dict], out: Path) -> Optional[Path]:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # plots are optional: pip install 'polytask[plots]'
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for run in runs:
        steps = [r["step"] for r in run["log"] if "dev_mean" in r]
        ax.plot(steps, [r["dev_mean"] for r in run["log"] if "dev_mean" in r], marker=".", label=run["name"])
    ax.set_xlabel("step")
    ax.set_ylabel("mean dev metric")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = out / "learning-curves.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_gradient_cosines(run: dict, out: Path) -> Optional[Path]:
    """Heat map of the tasks' gradient cosine similarities, averaged over the logged evaluations."""
    records = [r["grad_cosine"] for r in run["log"] if "grad_cosine" in r]
    if not records:
        return None
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np
    except ImportError:
        return None
    tasks = records[-1]["tasks"]
    mean = np.nanmean(np.array([r["matrix"] for r in records], dtype=float), axis=0)
    fig, ax = plt.subplots(figsize=(1 + 0.45 * len(tasks), 0.8 + 0.45 * len(tasks)))
    im = ax.imshow(mean, vmin=-1, vmax=1, cmap="RdBu")
    ax.set_xticks(range(len(tasks)), tasks, rotation=90, fontsize=7)
    ax.set_yticks(range(len(tasks)), tasks, fontsize=7)
    ax.set_title(f"{run['name']}: gradient cosine (mean of {len(records)})", fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    path = out / f"grad-cosine-{run['name']}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def build_report(run_dirs: list[Path], out: Path, baseline: Optional[Path] = None) -> dict:
    """Write ``report.md``, ``report.html`` (and ``learning-curves.png``) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    runs = [read_run(d) for d in run_dirs]
    base = read_run(baseline) if baseline else next(
        (r for r in runs if r["results"].get("architecture") == "single_task"), None)
    tasks = list(dict.fromkeys(t for r in runs for t in r["results"].get("test", {})))
    summary = {}
    for run in runs:
        test = run["results"].get("test", {})
        entry = {"test_avg": run["results"].get("test_avg"), "dev_avg": run["results"].get("dev_avg"),
                 "steps": run["results"].get("steps")}
        if base is not None and run is not base:
            single = base["results"].get("test", {})
            entry["delta_m"] = delta_m(test, single)
            entry["negative_transfer"] = sorted(t for t in test if t in single and test[t] < single[t])
        summary[run["name"]] = entry
    plot = plot_curves(runs, out)
    lines = ["# polytask report", "", format_table({r["name"]: r["results"].get("test", {}) for r in runs}, tasks),
             "", "| run | test avg | dev avg | steps | Δm vs single-task (%) | negative transfer |",
             "|---|---|---|---|---|---|"]
    for name, e in summary.items():
        dm = f"{e['delta_m']:+.2f}" if e.get("delta_m") is not None else "–"
        neg = ", ".join(e.get("negative_transfer", [])) or "–"
        avg = f"{e['test_avg']:.2f}" if e["test_avg"] is not None else "–"
        dev = f"{e['dev_avg']:.2f}" if e["dev_avg"] is not None else "–"
        lines.append(f"| {name} | {avg} | {dev} | {e['steps']} | {dm} | {neg} |")
    if base is not None:
        lines += ["", f"Single-task baseline: `{base['dir']}`."]
    if plot is not None:
        lines += ["", f"![learning curves]({plot.name})"]
    for run in runs:
        heat = plot_gradient_cosines(run, out)
        if heat is not None:
            lines += ["", f"![gradient cosine similarity, {run['name']}]({heat.name})"]
    markdown = "\n".join(lines) + "\n"
    (out / "report.md").write_text(markdown, encoding="utf-8")
    body = "".join(f"<p>{html.escape(line)}</p>" if not line.startswith("|") else
                   f"<pre>{html.escape(line)}</pre>" for line in lines if not line.startswith("!["))
    images = [line[line.index("(") + 1:-1] for line in lines if line.startswith("![")]
    image = "".join(f'<img src="{name}" alt="{name}">' for name in images)
    (out / "report.html").write_text(f"<!doctype html><meta charset='utf-8'><title>polytask report</title>"
                                     f"<body>{body}{image}</body>", encoding="utf-8")
    (out / "report.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return summary
