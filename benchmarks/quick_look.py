"""What evaluation costs: the README's quick look, timed end to end, and the share of a full FS-MTL
run's wall time spent scoring dev and test (issue "Results you can trust", item 4).

The quick look is the README's command, run as a user runs it (a fresh process, the 16 FDU-MTL
domains read, the vocabulary built, 200 steps, dev scored at the last step, test scored once with
the best weights):

    polytask train configs/fdu-mtl/hard-sharing.yaml --data-dir ../shared/data trainer.max_steps=200

Its wall time is measured around the process, so data loading and start-up are included. The full
run is the default FS-MTL config (up to 6000 steps, dev every 500), trained here, or a finished run
of it given with ``--full-run`` (the report names that run, its steps and what its config sets
differently); its ``results.json`` gives ``eval_seconds`` (every dev scoring during training plus
the final scoring: test, and dev again where the best step's dev scores were not kept) and
``wall_seconds``. Measure on an otherwise idle machine: the targets are about this machine's time.

    python benchmarks/quick_look.py --data-dir ../shared/data
    python benchmarks/quick_look.py --data-dir ../shared/data --full-run runs/fs-mtl   # a finished full run

The full run is trained in ``--work-dir`` (resumable; reused once finished) unless ``--full-run``
names a finished run of the same config trained with the code that measures ``eval_seconds``.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, argv_command, run_polytask, suite_argument_parser, write_report  # noqa: E402

FDU = "configs/fdu-mtl/hard-sharing.yaml"
QUICK = ["trainer.max_steps=200"]
TARGET_QUICK_S = 90.0
TARGET_EVAL_SHARE = 0.10


def quick_look(args) -> dict:
    """Run the quick look once in a fresh directory; its wall time around the process and its
    results.json."""
    out = Path(args.work_dir) / "quick-look"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "polytask.cli", "train", FDU, "--data-dir", str(Path(args.data_dir).resolve()),
           "--output-dir", str(out), "--quiet", *QUICK, *args.overrides]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    res = json.loads((out / "results.json").read_text())
    return {"wall_s": wall, "results": res}


def full_run(args) -> dict:
    if args.full_run:
        path = Path(args.full_run) / "results.json"
        if not path.is_file():
            raise SystemExit(f"--full-run {args.full_run}: no results.json (the run has not finished)")
        res = json.loads(path.read_text())
        sys.path.insert(0, str(ROOT / "src"))
        import yaml
        from polytask.config import RUN_LOCAL_KEYS, config_differences, load_config, to_dict
        saved = yaml.safe_load((Path(args.full_run) / "config.yaml").read_text()) or {}
        differs = config_differences(to_dict(load_config(ROOT / FDU, overrides=list(args.overrides))), saved,
                                     ignore=(*RUN_LOCAL_KEYS, "trainer.num_threads"))
        res["note"] = (f"{args.full_run}: " + ("; ".join(differs) if differs else "the config itself")
                       + f", seed {saved.get('seed')}")
    else:
        res = run_polytask("full-run", FDU, list(args.overrides), str(Path(args.data_dir).resolve()),
                           args.work_dir, args.threads)
    if "eval_seconds" not in res:
        raise SystemExit("the full run's results.json has no eval_seconds: it was trained by older code; "
                         "train it again (or leave out --full-run)")
    return res


def row(name: str, res: dict, wall_s: float, note: str) -> dict:
    return {"name": name, "architecture": res["architecture"], "config": FDU, "note": note,
            "test": res["test"], "test_avg": res["test_avg"], "dev_avg": res["dev_avg"],
            "steps": res["steps"], "wall_s": round(wall_s, 3), "run_wall_s": round(res["wall_seconds"], 3),
            "train_s": round(res["train_seconds"], 3), "eval_s": round(res["eval_seconds"], 3),
            "eval_share": round(res["eval_seconds"] / wall_s, 4),
            "train_tokens_per_s": round(res["train_tokens_per_s"]), "peak_rss_mb": round(res["peak_rss_mb"]),
            "params": res["params"]}


def markdown(report: dict) -> str:
    lines = ["# What evaluation costs: the quick look and a full FS-MTL run", "",
             f"Command: `{report['command']}` (commit {report['git_commit']}, {report['date']}, {report['device']}).",
             "Wall time of the quick look is measured around its process (start-up and reading the 16 domains "
             "included); the full run's is the run's own (`wall_seconds`, resumes included). Evaluation is every "
             "dev scoring during training plus the final dev and test scoring (`eval_seconds`).", "",
             "| run | steps | wall s | training s | evaluation s | evaluation share | dev mean | test average | what ran |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in report["runs"]:
        lines.append(f"| {r['name']} | {r['steps']} | {r['wall_s']:.1f} | {r['train_s']:.1f} | {r['eval_s']:.1f} | "
                     f"{100 * r['eval_share']:.1f}% | {r['dev_avg']:.2f} | {r['test_avg']:.2f} | {r['note']} |")
    lines += ["", "| target | result | figure |", "|---|---|---|"]
    for t in report["targets"]:
        lines.append(f"| {t['target']} | {'met' if t['met'] else 'missed'} | {t['figure']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = suite_argument_parser(__doc__, "benchmarks/work/quick-look")
    ap.add_argument("--full-run", default="", help="a finished full run of the default FS-MTL config to read "
                                                   "instead of training one")
    ap.add_argument("--skip-full", action="store_true", help="time the quick look only")
    args = ap.parse_args()
    Path(args.work_dir).mkdir(parents=True, exist_ok=True)
    quick = quick_look(args)
    runs = [row("quick look", quick["results"], quick["wall_s"], "README: trainer.max_steps=200")]
    targets = [{"target": f"quick look ≤ {TARGET_QUICK_S:.0f} s", "met": quick["wall_s"] <= TARGET_QUICK_S,
                "figure": f"{quick['wall_s']:.1f} s"}]
    if not args.skip_full:
        full = full_run(args)
        runs.append(row("full run", full, full["wall_seconds"], full.get("note", f"{FDU}, trained here")))
        share = full["eval_seconds"] / full["wall_seconds"]
        targets.append({"target": f"evaluation ≤ {100 * TARGET_EVAL_SHARE:.0f}% of a full run's wall time",
                        "met": share <= TARGET_EVAL_SHARE, "figure": f"{100 * share:.1f}%"})
    write_report(args, "quick-look", "accuracy", runs, [], markdown=markdown, command=argv_command(),
                 fields={"targets": targets})


if __name__ == "__main__":
    main()
