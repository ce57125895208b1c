"""Tagging benchmark: UD English EWT UPOS accuracy and CoNLL-2000 chunking span F1 for a
single-task BiLSTM-CRF, hard sharing of both tasks, low supervision and the joint many-task model.

    python benchmarks/tagging.py --data-dir ../shared/data

Dev sets: EWT's own dev file; for CoNLL-2000 (which has none) the last 1000 training sentences.
No externally pretrained vectors. Each run is a ``polytask train`` of ``configs/tagging/*.yaml``
writing to ``benchmarks/work/tagging/<name>``; finished runs are reused, interrupted ones resumed.
Writes ``benchmarks/results/tagging.md`` and ``.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, provenance, run_polytask  # noqa: E402

RUNS = {
    "single-task": ("configs/tagging/single-task.yaml", "single_task"),
    "hard-sharing": ("configs/tagging/hard-sharing.yaml", "hard_sharing"),
    "low-supervision": ("configs/tagging/low-supervision.yaml", "low_supervision"),
    "joint-many-task": ("configs/tagging/joint-many-task.yaml", "joint_many_task"),
}
PUBLISHED = [
    {"name": "JMT (chunking, pretrained vectors)", "source": "Hashimoto et al. EMNLP 2017, as cited in "
     "polytask issue 3", "test": {"chunk": 95.77}},
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--work-dir", default="benchmarks/work/tagging")
    ap.add_argument("--runs", default=",".join(RUNS))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only-report", action="store_true", help="report the finished runs only")
    ap.add_argument("--results-dir", default=str(ROOT / "benchmarks" / "results"),
                    help="where tagging.md/json go (a smoke test writes elsewhere)")
    ap.add_argument("overrides", nargs="*", help="dotted overrides for every run, e.g. trainer.max_steps=2000")
    args = ap.parse_args()
    data_dir = str(Path(args.data_dir).resolve())
    Path(args.work_dir).mkdir(parents=True, exist_ok=True)

    def work(name: str):
        config, arch = RUNS[name]
        if args.only_report and not (Path(args.work_dir) / name / "results.json").is_file():
            return None
        res = run_polytask(name, config, args.overrides, data_dir, args.work_dir, args.threads)
        return {"name": name, "architecture": arch, "config": config,
                "settings": {"encoder": "bilstm+char-cnn", "vectors": "random", "head": "crf"},
                "overrides": args.overrides, "test": res["test"], "dev": res["dev"],
                "test_avg": res["test_avg"], "dev_avg": res["dev_avg"], "seeds": [1],
                "wall_s": round(res["wall_seconds"], 1), "train_tokens_per_s": round(res["train_tokens_per_s"]),
                "peak_rss_mb": round(res["peak_rss_mb"]), "params": res["params"], "steps": res["steps"]}

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        runs = [r for r in pool.map(work, [n for n in args.runs.split(",") if n]) if r]
    command = "python benchmarks/tagging.py --data-dir ../shared/data " + " ".join(args.overrides)
    report = {**provenance("tagging", command.strip(), "upos: token accuracy %, chunk: span F1"),
              "runs": runs, "published": PUBLISHED, "speed": []}
    out = Path(args.results_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tagging.json").write_text(json.dumps(report, indent=1))
    (out / "tagging.md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict) -> str:
    single = next((r for r in report["runs"] if r["name"] == "single-task"), None)
    lines = ["# Tagging: UD English EWT UPOS + CoNLL-2000 chunking", "",
             f"Command: `{report['command']}`  ", f"Commit {report['git_commit']}, {report['device']}, "
             f"{report['date']}. Test sets; no pretrained vectors.", "",
             "| run | UPOS acc | chunk F1 | Δ UPOS vs single | Δ chunk vs single | wall s | train tokens/s | params |",
             "|---|---|---|---|---|---|---|---|"]
    for r in report["runs"]:
        d = lambda k: f"{r['test'][k] - single['test'][k]:+.2f}" if single else "–"  # noqa: E731
        lines.append(f"| {r['name']} | {r['test']['upos']:.2f} | {r['test']['chunk']:.2f} | {d('upos')} | "
                     f"{d('chunk')} | {r['wall_s']:.0f} | {r['train_tokens_per_s']} | {r['params']:,} |")
    for p in report["published"]:
        lines.append(f"| {p['name']} (published) | {p['test'].get('upos', '–')} | {p['test'].get('chunk', '–')} "
                     f"| | | | | |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
