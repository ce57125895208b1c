"""What the benchmark scripts share: running ``polytask train`` as a resumable subprocess, and the
provenance fields of a results file (../shared/benchmarks.md)."""
from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Union

ROOT = Path(__file__).resolve().parents[1]


def ensure_vectors(args, config: str, filename: str, dim: int, overrides: list[str] = (), epochs: int = 10,
                   min_count: int = 2) -> str:
    """``<work-dir>/<filename>``: skip-gram word2vec of ``dim`` dimensions trained by ``polytask data
    vectors`` on the train + unlabelled text of ``config`` (+ ``overrides``), made once per work dir,
    for the words seen at least ``min_count`` times. Written under a temporary name first, so an
    interrupted run never leaves a half file to reuse."""
    path = (Path(args.work_dir) / filename).resolve()
    if not path.is_file():
        partial = path.with_name(path.name + ".partial")
        path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "polytask.cli", "data", "vectors", config, *overrides,
               "--data-dir", str(Path(args.data_dir).resolve()), "--output", str(partial), "--dim", str(dim),
               "--epochs", str(epochs), "--min-count", str(min_count)]
        print(f"[bench] vectors: {' '.join(cmd)}", flush=True)
        subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
        partial.rename(path)
    return str(path)


def check_same_config(out: Path, config: str, overrides: list[str]) -> None:
    """Refuse to reuse or resume ``out`` when it was trained with other settings than the run now
    asks for (another --scale, a changed override): its numbers would be reported under the wrong
    name. Only the keys the config file and overrides set are compared: a library default that
    changed since (for a part the run does not use, say) does not count."""
    saved = out / "config.yaml"
    if not saved.is_file():
        return
    sys.path.insert(0, str(ROOT / "src"))
    import yaml
    from polytask.config import RUN_LOCAL_KEYS, apply_overrides, config_differences, load_config, to_dict
    wanted = to_dict(load_config(ROOT / config, overrides=overrides))
    asked = apply_overrides(yaml.safe_load((ROOT / config).read_text()) or {}, overrides)   # what the run sets
    old = yaml.safe_load(saved.read_text()) or {}
    changed = config_differences(old, wanted, only=asked)
    if changed and wanted["trainer"].get("select") == "mean" \
            and not config_differences(old, wanted, ignore=(*RUN_LOCAL_KEYS, "trainer.patience"), only=asked) \
            and same_best_under_patience(out, wanted["trainer"].get("patience"), wanted["trainer"]["max_steps"]):
        changed = []                                   # only the patience differs, and it keeps the best
    if changed:
        raise SystemExit(f"{out} was trained with other settings than this run asks for: {'; '.join(changed)}. "
                         "Move it aside, or pass another --work-dir.")


def same_best_under_patience(out: Path, patience: int | None, max_steps: int) -> bool:
    """True when early stopping after ``patience`` evaluations without a better dev mean would have
    kept the best checkpoint that run ``out`` (trained with another patience, or none) has: no
    evaluation beat its best after the one at which that patience runs out, and a finished run either
    reached that point or trained all ``max_steps`` (one that stopped earlier, under a smaller
    patience, might have found a better checkpoint later). Such a run is reused or resumed (the
    trainer stops a resumed run whose patience is spent at once)."""
    metrics = out / "metrics.jsonl"
    if patience is None or not metrics.is_file():
        return False
    best, bad, last = float("-inf"), 0, 0
    for line in metrics.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if row.get("event") != "eval" or row.get("dev_mean") is None:
            continue
        if bad >= patience:                  # the patience ran out earlier: a later best would differ
            if row["dev_mean"] > best:
                return False
            continue
        best, bad = (row["dev_mean"], 0) if row["dev_mean"] > best else (best, bad + 1)
        last = row["step"]
    finished = (out / "results.json").is_file()
    return not finished or bad >= patience or last >= max_steps


def run_polytask(name: str, config: str, overrides: list[str], data_dir: str, work_dir: str,
                 threads: int) -> dict:
    """Train ``config`` into ``work_dir/name`` (resuming an interrupted run; reusing a finished one)
    and return its ``results.json``."""
    out = Path(work_dir) / name
    results = out / "results.json"
    check_same_config(out, config, overrides)
    if results.is_file():
        print(f"[bench] {name}: reusing {results}", flush=True)
        return {**json.loads(results.read_text()), "code_commit": run_commit(work_dir, name)}
    record_commit(work_dir, name)
    cmd = [sys.executable, "-m", "polytask.cli", "train", config, "--data-dir", data_dir,
           "--output-dir", str(out), "--quiet", "--resume", f"trainer.num_threads={threads}", *overrides]
    print(f"[bench] {name}: {' '.join(cmd)}", flush=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    t0 = time.perf_counter()
    with (Path(work_dir) / f"{name}.log").open("a") as log:
        subprocess.run(cmd, check=True, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    print(f"[bench] {name}: done in {time.perf_counter() - t0:.0f} s", flush=True)
    return {**json.loads(results.read_text()), "code_commit": run_commit(work_dir, name)}


def best_seconds(fn, repeats: int, warm_up: bool = True) -> float:
    """The fastest of ``repeats`` timed calls of ``fn`` (after one untimed warm-up call)."""
    if warm_up:
        fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def training_step_seconds(model, batch, optimizer, repeats: int) -> dict[str, float]:
    """The fastest training step (zero_grad, forward, backward, optimizer step) of ``model`` on
    ``batch`` under fp32 and under bf16 autocast (what ``trainer.precision: bf16`` does), timed
    in this process: ``{"fp32": s, "bf16": s}``."""
    import torch

    def step(bf16: bool):
        def run():
            optimizer.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = model(batch).loss
            loss.float().backward()
            optimizer.step()
        return run
    return {"fp32": best_seconds(step(False), repeats), "bf16": best_seconds(step(True), repeats)}


def binary_specs(tasks: list[str]) -> list:
    """Specs of binary classification tasks named ``tasks`` (labels "0", "1"), for timing models."""
    sys.path.insert(0, str(ROOT / "src"))
    from polytask.kinds import TaskSpec
    return [TaskSpec(t, "classification", ("0", "1")) for t in tasks]


def step_seconds(config: str, overrides: list[str], tasks: list[str], batches: dict, vocab: int,
                 repeats: int) -> float:
    """Fastest seconds of one training step (the tasks' forwards, ``trainer.weighting``'s backward,
    Adam) of the model ``config`` + ``overrides`` builds for ``tasks``, on ``batches`` (task -> batch)."""
    sys.path.insert(0, str(ROOT / "src"))
    import torch
    from polytask.config import load_config
    from polytask.models import build_model
    from polytask.training.weighting import build_weighting
    cfg = load_config(ROOT / config, overrides=overrides)
    model = build_model(cfg, binary_specs(tasks), vocab)
    weighting = build_weighting(cfg, tasks, cfg.seed)
    opt = torch.optim.Adam([*model.parameters(), *weighting.parameters()], lr=1e-3)

    def step():
        opt.zero_grad()
        weighting.backward({t: model(b).loss for t, b in batches.items()}, model)
        opt.step()
    return best_seconds(step, repeats)


def random_batch(task: str, batch: int, length: int, vocab: int):
    """A batch of ``batch`` random texts of ``length`` tokens with alternating binary labels."""
    sys.path.insert(0, str(ROOT / "src"))
    import torch
    from polytask.data.batching import Encoded, collate_text
    return collate_text(task, [Encoded(torch.randint(2, vocab, (length,)).tolist(), None, i % 2) for i in range(batch)])


def head_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def record_commit(work_dir: str, name: str) -> None:
    """Keep the commit that run ``name`` starts training with (the code that produces its numbers) in
    ``<work-dir>/<name>.commit``; a resumed run keeps the one it started with."""
    path = Path(work_dir) / f"{name}.commit"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(head_commit() + "\n")


def run_commit(work_dir: str, name: str) -> str:
    """The commit recorded when run ``name`` started training ("unknown" if none was)."""
    path = Path(work_dir) / f"{name}.commit"
    return path.read_text().strip() if path.is_file() else "unknown"


def provenance(benchmark: str, command: str, metric: str) -> dict:
    return {"benchmark": benchmark, "command": command, "git_commit": head_commit(),
            "device": f"cpu: {os.cpu_count()} cores ({platform.processor() or platform.machine()})",
            "date": datetime.date.today().isoformat(), "metric": metric}


def suite_argument_parser(doc: str, default_work: str):
    """The options every suite shares; extra positional arguments are dotted overrides for all runs."""
    import argparse
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--work-dir", default=str(ROOT / default_work), type=lambda p: str(Path(p).resolve()),
                    help=f"where the runs are trained and kept (default: {default_work} in the repository)")
    ap.add_argument("--results-dir", default=str(ROOT / "benchmarks" / "results"), type=lambda p: str(Path(p).resolve()))
    ap.add_argument("--runs", default="", help="comma list of run names (default: all)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only-report", action="store_true", help="report the finished runs only")
    ap.add_argument("overrides", nargs="*", help="dotted overrides for every run, e.g. trainer.max_steps=200")
    return ap


def last_process_only(args, name: str, res: dict) -> dict[str, bool]:
    """For a run resumed after an interruption, which of its cost figures cover only the last
    process: the wall time under code older than the whole-run wall time, the peak memory when the
    checkpoint it resumed from did not record the earlier processes' peak."""
    log = Path(args.work_dir) / f"{name}.log"
    resumed = log.is_file() and "[polytask] resumed" in log.read_text(errors="replace")
    return {"wall_last_process_only": resumed and not res.get("wall_includes_resumes", False),
            "peak_rss_last_process_only": resumed and not res.get("peak_rss_covers_run", False)}


WORK_DIR = "<work-dir>"   # in a run's overrides: the work directory (see run_suite)
Run = Union[tuple[str, list[str], dict], Callable[[], Optional[dict]]]


def selected_runs(args, runs: dict[str, Run]) -> list[str]:
    """The runs ``--runs`` names (default: all of ``runs``, in their order); an unknown name is an
    error that lists the known ones."""
    chosen = [n for n in (args.runs.split(",") if args.runs else runs) if n]
    unknown = [n for n in chosen if n not in runs]
    if unknown:
        raise SystemExit(f"unknown runs {unknown} (known: {', '.join(runs)})")
    return chosen


def run_suite(args, runs: dict[str, Run]) -> list[dict]:
    """Train every selected run ``name -> (config, overrides, settings)``, ``--jobs`` at a time, and
    return rows for the report. ``<work-dir>`` in an override stands for the work directory: the run
    trains on the real path (a file the script made there, say) and its row keeps the placeholder, so
    that a report does not name this machine's paths. A run made some other way than ``polytask
    train`` is ``name -> function`` that returns its row (None when it has no results and
    ``--only-report`` is set); it takes its turn in the same pool."""
    from concurrent.futures import ThreadPoolExecutor
    data_dir = str(Path(args.data_dir).resolve())
    Path(args.work_dir).mkdir(parents=True, exist_ok=True)
    chosen = selected_runs(args, runs)

    def work(name: str):
        if callable(runs[name]):
            return runs[name]()
        config, overrides, settings = runs[name]
        if args.only_report and not (Path(args.work_dir) / name / "results.json").is_file():
            return None
        overrides = overrides + list(args.overrides)
        real = [o.replace(WORK_DIR, str(Path(args.work_dir).resolve())) for o in overrides]
        res = run_polytask(name, config, real, data_dir, args.work_dir, args.threads)
        return {"name": name, "architecture": res["architecture"], "config": config, "settings": settings,
                "overrides": overrides, "test": res["test"], "dev": res["dev"],
                "test_avg": res["test_avg"], "dev_avg": res["dev_avg"], "seeds": [1],
                "wall_s": round(res["wall_seconds"], 1), "train_s": round(res.get("train_seconds", 0.0), 3),
                "train_tokens_per_s": round(res["train_tokens_per_s"]),
                "peak_rss_mb": round(res["peak_rss_mb"]), "params": res["params"], "steps": res["steps"],
                "best_step": res.get("best_step"), "vocab_size": res.get("vocab_size"),
                "code_commit": res["code_commit"], **last_process_only(args, name, res)}

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        return [r for r in pool.map(work, chosen) if r]


def suite_command(args) -> str:
    """The command recorded in a suite's report: the script with ``--data-dir ../shared/data``,
    ``--scale`` when not the default and the overrides for every run."""
    flags = [f"--scale {args.scale}"] if getattr(args, "scale", "cpu") != "cpu" else []
    return " ".join([f"python benchmarks/{Path(sys.argv[0]).name} --data-dir ../shared/data", *flags, *args.overrides])


def argv_command() -> str:
    """The command that reproduces a report, every option given included, less --data-dir
    (``../shared/data`` stands for the local path), --work-dir and --results-dir (where the runs and the
    report live changes nothing in them) and --only-report."""
    kept, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
            continue
        if a in ("--data-dir", "--work-dir", "--results-dir"):
            skip = True
            continue
        if a.startswith(("--data-dir=", "--work-dir=", "--results-dir=")) or a == "--only-report":
            continue
        kept.append(a)
    return " ".join([f"python benchmarks/{Path(sys.argv[0]).name} --data-dir ../shared/data", *kept])


def write_report(args, name: str, metric: str, runs: list[dict], published: list[dict],
                 speed: Optional[list[dict]] = None, extra_md: str = "", baseline: str = "single-task",
                 markdown: Optional[Callable[[dict], str]] = None, command: Optional[str] = None,
                 fields: Optional[dict] = None) -> dict:
    """``<results-dir>/<name>.json|md``: the provenance (``command``, default ``suite_command``), the
    runs, the published figures, ``speed`` and any further ``fields`` as JSON; as Markdown,
    ``markdown(report)`` (default ``suite_markdown``) followed by ``extra_md``."""
    report = {**provenance(name, command or suite_command(args), metric), "runs": runs, "published": published,
              "speed": speed or [], **(fields or {})}
    text = (markdown(report) if markdown else suite_markdown(report, baseline)) + extra_md
    out = Path(args.results_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(report, indent=1))
    (out / f"{name}.md").write_text(text)
    print(text)
    return report


def suite_markdown(report: dict, baseline: str = "single-task") -> str:
    """Per-task table of the runs and the published figures, averages, Δm against the ``baseline``
    run, cost columns."""
    sys.path.insert(0, str(ROOT / "src"))
    from polytask.evaluation.report import delta_m
    from polytask.evaluation.tables import format_table
    runs, published = report["runs"], report["published"]
    base = next((r for r in runs if r["name"] == baseline), None)
    tasks = list(dict.fromkeys(t for r in runs for t in r["test"]))
    cols = {r["name"]: r["test"] for r in runs}
    cols.update({f"{p['name']} (pub.)": p["test"] for p in published if p.get("test")})  # per-task figures only
    lines = [f"# {report['benchmark']}", "", f"Command: `{report['command']}`  ",
             f"Report written at commit {report['git_commit']} (each run's own code commit is in the table), "
             f"{report['device']}, {report['date']}.", "",
             format_table(cols, tasks), "",
             f"| run | test avg | Δm vs {baseline} (%) | dev avg | steps | wall s | train tokens/s | peak RSS MB | params "
             "| code commit |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        dm = delta_m(r["test"], base["test"]) if base and r is not base else None
        lines.append(f"| {r['name']} | {r['test_avg']:.2f} | {'–' if dm is None else f'{dm:+.2f}'} | "
                     f"{r['dev_avg']:.2f} | {r['steps']} | {r['wall_s']:.0f}{'†' if r.get('wall_last_process_only') else ''}"
                     f" | {r['train_tokens_per_s']} | "
                     f"{r['peak_rss_mb']}{'‡' if r.get('peak_rss_last_process_only') else ''} | {r['params']:,} | "
                     f"{r.get('code_commit', '–')} |")
    for p in published:
        avg = p.get("test_avg")
        lines.append(f"| {p['name']} (published: {p['source']}) | {avg if avg is not None else '–'} | | | | | | | | |")
    if any(r.get("wall_last_process_only") for r in runs):
        lines.append("\n† resumed after an interruption, under code that timed only the last process: its wall "
                     "time leaves out the earlier ones (train tokens/s counts them all).")
    if any(r.get("peak_rss_last_process_only") for r in runs):
        lines.append("\n‡ resumed from a checkpoint that did not record the earlier processes' peak memory: the "
                     "figure is the last process's only.")
    for s in report["speed"]:
        lines.append(f"\n- speed, {s['name']}: {s['a']} / {s['b']} = {s['ratio_a_over_b']} ({s['unit']})")
    return "\n".join(lines) + "\n"


def inspect_plot(args, run: str, task: str, key: str, ylabel: str, filename: str, title: str,
                 examples: int = 3, words: int = 40, units: int = 0) -> str:
    """Run ``polytask inspect`` on a few test texts of ``task`` and bar-plot ``key`` per token
    (averaged over its last dimension when it has one), or with ``units`` > 0 draw a heat map of the
    ``units`` components that vary most over each text's tokens (a gate per hidden unit, where the
    mean hides that units saturate near 0 or 1); returns Markdown that shows the plot."""
    run_dir = Path(args.work_dir) / run
    if not (run_dir / "results.json").is_file():
        return ""
    lines = (Path(args.data_dir) / "fdu-mtl" / f"{task}.task.test").read_text(errors="replace").splitlines()
    src = Path(args.work_dir) / f"{run}-inspect-input.txt"
    src.write_text("\n".join(" ".join(line.split("\t", 1)[1].split()[:words]) for line in lines[:examples]) + "\n")
    dump = Path(args.work_dir) / f"{run}-inspect.jsonl"
    subprocess.run([sys.executable, "-m", "polytask.cli", "inspect", str(run_dir), "--task", task, "--input", str(src),
                    "--output", str(dump)], check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [json.loads(line) for line in dump.read_text().splitlines()]
    fig, axes = plt.subplots(len(rows), 1, figsize=(10, (2.6 if units else 1.7) * len(rows)), squeeze=False)
    for ax, row in zip(axes[:, 0], rows):
        values = row["inspect"][key]
        if units:
            import numpy as np
            grid = np.asarray(values, dtype=float).T                    # (components, tokens)
            top = np.sort(np.argsort(grid.std(axis=1))[-units:])
            image = ax.imshow(grid[top], aspect="auto", vmin=0.0, vmax=1.0, cmap="viridis")
            ax.set_yticks(range(len(top)), [str(u) for u in top], fontsize=5)
            fig.colorbar(image, ax=ax, fraction=0.02)
        else:
            values = [sum(v) / len(v) if isinstance(v, list) else v for v in values]
            ax.bar(range(len(values)), values)
        ax.set_xticks(range(len(values)), row["tokens"][: len(values)], rotation=90, fontsize=6)
        ax.set_ylabel(ylabel, fontsize=7)
    fig.tight_layout()
    Path(args.results_dir).mkdir(parents=True, exist_ok=True)
    fig.savefig(Path(args.results_dir) / filename, dpi=110)
    plt.close(fig)
    return f"\n## {title}\n\n![{title}]({filename})\n"
