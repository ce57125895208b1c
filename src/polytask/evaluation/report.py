"""``polytask report RUN_DIR...``: one or several systems side by side, as Markdown and HTML.

A system is a run directory, or a directory of seed runs (``seed-1/``, ``seed-2/``, ... as
``polytask train --seeds`` writes them): its numbers are then the mean ± sample standard deviation
over the finished seeds. For every system: per-task test results, the learning curves (mean dev
metric over steps, from ``metrics.jsonl``, averaged over seeds), and, when a single-task system is
among them (or given with ``--baseline``), Δm against it (Maninis et al. 2019: the mean relative
change over tasks, Δm = (1/K) Σ_k (M_k − M_k^single) / M_k^single, in percent; computed per seed
against the baseline's seed mean, then mean ± std) with a negative-transfer flag for each task whose
mean does worse than the baseline's. For every pair of systems: a paired significance test
(:mod:`.significance`) over the test examples, with the seed-level spread beside it. Every run's
scores, every metric of every task, go to ``runs.csv`` and ``runs.json``.
"""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Optional

import yaml

from .aggregate import format_stat, mean_std, seed_runs, split_metrics
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


def read_system(path: Path) -> dict:
    """A run directory, or a directory of seed runs: ``{"name", "dir", "runs", "seeds"}`` with only
    the finished runs (those with ``results.json``) in ``runs``, ``seeds`` beside them."""
    path = Path(path)
    if (path / "metrics.jsonl").is_file():
        config = path / "config.yaml"
        runs, seeds = [read_run(path)], [(yaml.safe_load(config.read_text()) or {}).get("seed")
                                         if config.is_file() else None]
    else:
        dirs = seed_runs(path)
        if not dirs:
            raise FileNotFoundError(f"{path}: not a polytask run directory (no metrics.jsonl) "
                                    "nor a directory of seed runs (seed-<n>/)")
        seeds = [s for s, d in dirs.items() if (d / "metrics.jsonl").is_file()]
        if not seeds:
            raise FileNotFoundError(f"{path}: no seed run has started logging yet")
        runs = [read_run(dirs[s]) for s in seeds]
    finished = [(s, r) for s, r in zip(seeds, runs) if r["results"]]
    if not finished:
        finished = [(seeds[0], runs[0])]                   # an unfinished run still shows its curve
    return {"name": path.name, "dir": str(path), "runs": [r for _, r in finished], "seeds": [s for s, _ in finished]}


def _stats(values: list) -> dict:
    return mean_std([v for v in values if v is not None])


def _cell(stat: dict) -> str:
    return format_stat(stat)


def system_scores(system: dict) -> dict:
    """Per-task test means and stds, and the seed statistics of the averages."""
    results = [r["results"] for r in system["runs"]]
    tasks = list(dict.fromkeys(t for r in results for t in r.get("test", {})))
    return {"test": {t: _stats([r.get("test", {}).get(t) for r in results]) for t in tasks},
            "test_avg": _stats([r.get("test_avg") for r in results]),
            "dev_avg": _stats([r.get("dev_avg") for r in results]),
            "steps": _stats([r.get("steps") for r in results])}


def mean_curve(system: dict) -> list[dict]:
    """The dev-mean curve averaged over the system's runs, at the steps every run evaluated."""
    curves = [{r["step"]: r["dev_mean"] for r in run["log"] if "dev_mean" in r} for run in system["runs"]]
    steps = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
    return [{"step": s, "dev_mean": sum(c[s] for c in curves) / len(curves)} for s in steps]


def run_rows(systems: list[dict]) -> list[dict]:
    """One row per (system, run, split, task, metric): every run's scores."""
    rows = []
    for system in systems:
        for seed, run in zip(system["seeds"], system["runs"]):
            for split in ("dev", "test"):
                for task, metrics in split_metrics(run["results"], split).items():
                    rows += [{"system": system["name"], "seed": seed, "run_dir": run["dir"], "split": split,
                              "task": task, "metric": metric, "value": value} for metric, value in metrics.items()]
    return rows


def compare(a: dict, b: dict, alpha: float, n_resamples: int) -> dict:
    """The paired test over test examples and the seed-level view of systems ``a`` and ``b``."""
    from .significance import load_predictions, paired_test, seed_test, verdict
    sa, sb = system_scores(a), system_scores(b)
    out = {"a": a["name"], "b": b["name"], "alpha": alpha,
           "delta": (sa["test_avg"]["mean"] - sb["test_avg"]["mean"])
           if sa["test_avg"]["mean"] is not None and sb["test_avg"]["mean"] is not None else None,
           "seeds": seed_test(sa["test_avg"]["values"], sb["test_avg"]["values"])}
    try:
        out["examples"] = paired_test(load_predictions([Path(r["dir"]) for r in a["runs"]]),
                                      load_predictions([Path(r["dir"]) for r in b["runs"]]), n_resamples)
        p, by = out["examples"]["p_value"], "examples"
    except (FileNotFoundError, ValueError) as exc:
        out["examples"] = {"skipped": str(exc)}
        p, by = out["seeds"]["p_value"], "seeds"
    out["verdict"], out["verdict_by"] = verdict(p, alpha), by if p is not None else None
    if set(sa["test"]) != set(sb["test"]):
        out["note"] = (f"the systems share {len(set(sa['test']) & set(sb['test']))} of their tasks: the "
                       "example-level test compares those, the test averages cover each system's own")
    # the example-level test does not see training randomness; say when the seeds alone disagree
    out["within_seed_spread"] = (by == "examples" and p is not None and p < alpha
                                 and out["seeds"]["p_value"] is not None and out["seeds"]["p_value"] >= alpha)
    return out


def comparison_line(c: dict) -> str:
    def p_text(p: float) -> str:
        return f"p = {p:.4f}" if p >= 1e-4 else f"p = {p:.1e}"
    seeds, ex = c["seeds"], c["examples"]
    sa, sb = _stats(seeds["a"]), _stats(seeds["b"])
    head = (f"**{c['a']} vs {c['b']}**: Δ test avg {c['delta']:+.2f}" if c["delta"] is not None
            else f"**{c['a']} vs {c['b']}**: Δ test avg –")
    seed_part = f"{_cell(sa)} vs {_cell(sb)} over {sa['n']} and {sb['n']} seeds"
    if seeds["p_value"] is not None:
        seed_part += f", Welch {p_text(seeds['p_value'])}"
    if "skipped" in ex:
        example_part = f"no example-level test ({ex['skipped']})"
    else:
        example_part = (f"paired approximate randomisation over {ex['examples']} test examples "
                        f"(predictions pooled over seeds, {ex['resamples']} shuffles): {p_text(ex['p_value'])}")
    caveat = ", but the seeds alone do not separate them" if c.get("within_seed_spread") else ""
    caveat += f" ({c['note']})" if c.get("note") else ""
    return f"- {head} ({seed_part}); {example_part} → {c['verdict']}{caveat}"


def write_run_tables(rows: list[dict], out: Path) -> None:
    import csv
    with (out / "runs.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["system", "seed", "run_dir", "split", "task", "metric", "value"])
        writer.writeheader()
        writer.writerows(rows)
    (out / "runs.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")


def build_report(run_dirs: list[Path], out: Path, baseline: Optional[Path] = None, alpha: float = 0.05,
                 n_resamples: int = 10000) -> dict:
    """Write ``report.md``, ``report.html``, ``report.json``, ``significance.json``, ``runs.csv``,
    ``runs.json`` (and ``learning-curves.png``) into ``out``; returns the per-system summary."""
    out.mkdir(parents=True, exist_ok=True)
    systems = [read_system(d) for d in run_dirs]
    base = read_system(baseline) if baseline else next(
        (s for s in systems if s["runs"][0]["results"].get("architecture") == "single_task"), None)
    base_test = {t: st["mean"] for t, st in system_scores(base)["test"].items()} if base else {}
    tasks = list(dict.fromkeys(t for s in systems for r in s["runs"] for t in r["results"].get("test", {})))
    summary, columns = {}, {}
    for system in systems:
        scores = system_scores(system)
        entry = {"seeds": system["seeds"], "test_avg": scores["test_avg"]["mean"],
                 "test_avg_std": scores["test_avg"]["std"], "dev_avg": scores["dev_avg"]["mean"],
                 "dev_avg_std": scores["dev_avg"]["std"], "steps": scores["steps"]["mean"],
                 "test": {t: st["mean"] for t, st in scores["test"].items()},
                 "test_std": {t: st["std"] for t, st in scores["test"].items()}}
        if base is not None and system["dir"] != base["dir"]:
            deltas = _stats([delta_m(r["results"].get("test", {}), base_test) for r in system["runs"]])
            entry["delta_m"], entry["delta_m_std"] = deltas["mean"], deltas["std"]
            entry["negative_transfer"] = sorted(t for t, v in entry["test"].items()
                                                if t in base_test and v is not None and v < base_test[t])
        summary[system["name"]] = entry
        columns[system["name"]] = {t: _cell(st) for t, st in scores["test"].items()}
        columns[system["name"]]["average"] = _cell(scores["test_avg"])
    comparisons = [compare(a, b, alpha, n_resamples) for i, a in enumerate(systems) for b in systems[i + 1:]]
    plot = plot_curves([{"name": s["name"], "log": mean_curve(s)} for s in systems], out)
    lines = ["# polytask report", "", format_table(columns, tasks + ["average"], average=False), "",
             "| run | test avg | dev avg | steps | Δm vs single-task (%) | negative transfer | seeds |",
             "|---|---|---|---|---|---|---|"]
    for system in systems:
        e, scores = summary[system["name"]], system_scores(system)
        dm = f"{e['delta_m']:+.2f}" + (f" ± {e['delta_m_std']:.2f}" if e.get("delta_m_std") is not None else "") \
            if e.get("delta_m") is not None else "–"
        neg = ", ".join(e.get("negative_transfer", [])) or "–"
        steps = f"{e['steps']:.0f}" if e["steps"] is not None else "–"
        seeds = ", ".join(str(s) for s in e["seeds"] if s is not None) or "–"
        lines.append(f"| {system['name']} | {_cell(scores['test_avg'])} | {_cell(scores['dev_avg'])} | {steps} "
                     f"| {dm} | {neg} | {seeds} |")
    if any(len(s["runs"]) > 1 for s in systems):
        lines += ["", "Mean ± sample standard deviation over seeds; Δm per seed against the baseline's seed mean."]
    if comparisons:
        lines += ["", "## Significance", "",
                  "Paired approximate randomisation over the test examples (each system's predictions pooled "
                  "over its seeds; the statistic is the difference of test averages), beside the spread over "
                  "seeds. p-values are per pair, not corrected for the number of pairs."]
        lines += [""] + [comparison_line(c) for c in comparisons]
    if base is not None:
        lines += ["", f"Single-task baseline: `{base['dir']}`."]
    if plot is not None:
        lines += ["", f"![learning curves]({plot.name})"]
    for system in systems:
        heat = plot_gradient_cosines({**system["runs"][0], "name": system["name"]}, out)
        if heat is not None:
            lines += ["", f"![gradient cosine similarity, {system['name']}]({heat.name})"]
    write_run_tables(run_rows(systems), out)
    (out / "significance.json").write_text(json.dumps(comparisons, indent=1), encoding="utf-8")
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
