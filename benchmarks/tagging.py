"""Tagging benchmark: UD English EWT UPOS accuracy and CoNLL-2000 chunking span F1 for a
single-task BiLSTM-CRF, hard sharing of both tasks, low supervision and the joint many-task model.

    python benchmarks/tagging.py --data-dir ../shared/data

Dev sets: EWT's own dev file; for CoNLL-2000 (which has none) the last 1000 training sentences.
No externally pretrained vectors. Each run is a ``polytask train`` of ``configs/tagging/*.yaml``
writing to ``benchmarks/work/tagging/<name>``; finished runs are reused, interrupted ones resumed.
The ``*-w2v`` runs add word2vec vectors trained by ``polytask data vectors`` on the two training
sets only (no dev, no test text; the issue allows this), more dropout, word dropout and a wider
BiLSTM. Writes ``benchmarks/results/tagging.md`` and ``.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, provenance, run_polytask  # noqa: E402

TUNED = ["model.dropout=0.5", "model.word_dropout=0.05", "model.encoder.hidden_dim=200"]
RUNS = {   # name -> (config, architecture, extra overrides, uses the word2vec vectors)
    "single-task": ("configs/tagging/single-task.yaml", "single_task", [], False),
    "hard-sharing": ("configs/tagging/hard-sharing.yaml", "hard_sharing", [], False),
    "low-supervision": ("configs/tagging/low-supervision.yaml", "low_supervision", [], False),
    "joint-many-task": ("configs/tagging/joint-many-task.yaml", "joint_many_task", [], False),
    "single-task-w2v": ("configs/tagging/single-task.yaml", "single_task", TUNED, True),
    "hard-sharing-w2v": ("configs/tagging/hard-sharing.yaml", "hard_sharing", TUNED, True),
    "low-supervision-w2v": ("configs/tagging/low-supervision.yaml", "low_supervision", TUNED, True),
    "joint-many-task-w2v": ("configs/tagging/joint-many-task.yaml", "joint_many_task", TUNED, True),
}
DEFAULT_RUNS = ",".join(RUNS)
PUBLISHED = [
    {"name": "JMT (chunking, pretrained vectors)", "source": "Hashimoto et al. EMNLP 2017, as cited in "
     "polytask issue 3", "test": {"chunk": 95.77}},
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--work-dir", default="benchmarks/work/tagging")
    ap.add_argument("--runs", default=DEFAULT_RUNS, help=f"comma list of runs (known: {', '.join(RUNS)})")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only-report", action="store_true", help="report the finished runs only")
    ap.add_argument("--results-dir", default=str(ROOT / "benchmarks" / "results"),
                    help="where tagging.md/json go (a smoke test writes elsewhere)")
    ap.add_argument("overrides", nargs="*", help="dotted overrides for every run, e.g. trainer.max_steps=2000")
    args = ap.parse_args()
    data_dir = str(Path(args.data_dir).resolve())
    Path(args.work_dir).mkdir(parents=True, exist_ok=True)

    names = [n for n in args.runs.split(",") if n]
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        raise SystemExit(f"unknown runs {unknown} (known: {', '.join(RUNS)})")
    vectors = Path(args.work_dir).resolve() / "w2v-100.txt"
    if any(RUNS[n][3] for n in names) and not args.only_report and not vectors.is_file():
        # word2vec on the training text of both tasks (train + unlabeled only; there is no unlabeled text)
        subprocess.run([sys.executable, "-m", "polytask.cli", "data", "vectors", "configs/tagging/hard-sharing.yaml",
                        "--data-dir", data_dir, "--output", str(vectors), "--dim", "100", "--epochs", "10",
                        "--min-count", "1"], check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})

    def work(name: str):
        config, arch, extra, w2v = RUNS[name]
        if args.only_report and not (Path(args.work_dir) / name / "results.json").is_file():
            return None
        overrides = extra + ([f"data.vectors={vectors}"] if w2v else []) + list(args.overrides)
        res = run_polytask(name, config, overrides, data_dir, args.work_dir, args.threads)
        return {"name": name, "architecture": arch, "config": config,
                "settings": {"encoder": "bilstm+char-cnn", "vectors": "word2vec on train text" if w2v else "random",
                             "head": "crf"},
                "overrides": [o for o in overrides if not o.startswith("data.vectors=")]
                + (["data.vectors=<work-dir>/w2v-100.txt"] if w2v else []), "test": res["test"], "dev": res["dev"],
                "test_avg": res["test_avg"], "dev_avg": res["dev_avg"], "seeds": [1],
                "wall_s": round(res["wall_seconds"], 1), "train_tokens_per_s": round(res["train_tokens_per_s"]),
                "peak_rss_mb": round(res["peak_rss_mb"]), "params": res["params"], "steps": res["steps"],
                "code_commit": res["code_commit"]}

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        runs = [r for r in pool.map(work, names) if r]
    command = "python benchmarks/tagging.py --data-dir ../shared/data " + " ".join(args.overrides)
    report = {**provenance("tagging", command.strip(), "upos: token accuracy %, chunk: span F1"),
              "runs": runs, "published": PUBLISHED, "speed": [], "jobs": args.jobs, "threads": args.threads}
    out = Path(args.results_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tagging.json").write_text(json.dumps(report, indent=1))
    (out / "tagging.md").write_text(markdown(report))
    print(markdown(report))


def baseline_for(report: dict, run: dict):
    """The single-task run trained under the same settings (``-w2v`` runs against ``single-task-w2v``)."""
    name = "single-task-w2v" if run["name"].endswith("-w2v") else "single-task"
    return next((r for r in report["runs"] if r["name"] == name), None)


def markdown(report: dict) -> str:
    lines = ["# Tagging: UD English EWT UPOS + CoNLL-2000 chunking", "",
             f"Command: `{report['command']}`  ",
             f"Report written at commit {report['git_commit']} (each run's code commit in the table), "
             f"{report['device']}, {report['date']}; {report.get('jobs', '?')} runs at a time, "
             f"{report.get('threads', '?')} thread(s) each. "
             "Test-set scores (dev in brackets); no externally pretrained vectors. Dev sets: EWT's dev file; "
             "CoNLL-2000's last 1000 training sentences (end of WSJ section 18), removed from its training set.", "",
             "| run | UPOS acc | chunk F1 | Δ UPOS vs single | Δ chunk vs single | wall s | train tokens/s | params "
             "| code commit |", "|---|---|---|---|---|---|---|---|---|"]
    for r in report["runs"]:
        base = baseline_for(report, r)
        d = lambda k: f"{r['test'][k] - base['test'][k]:+.2f}" if base and base is not r else "–"  # noqa: E731
        lines.append(f"| {r['name']} | {r['test']['upos']:.2f} ({r['dev']['upos']:.2f}) | {r['test']['chunk']:.2f} "
                     f"({r['dev']['chunk']:.2f}) | {d('upos')} | {d('chunk')} | {r['wall_s']:.0f} | "
                     f"{r['train_tokens_per_s']} | {r['params']:,} | {r.get('code_commit', '–')} |")
    for p in report["published"]:
        lines.append(f"| {p['name']} (published) | {p['test'].get('upos', '–')} | {p['test'].get('chunk', '–')} "
                     f"| | | | | | |")
    if report["runs"]:
        best_upos = max(report["runs"], key=lambda r: r["test"]["upos"])
        best_chunk = max(report["runs"], key=lambda r: r["test"]["chunk"])
        lines += ["", "Targets (issue 3):",
                  f"- UPOS ≥ 95.5: {'met' if best_upos['test']['upos'] >= 95.5 else 'missed'} "
                  f"(best {best_upos['test']['upos']:.2f}, {best_upos['name']})",
                  f"- chunking F1 ≥ 94.5: {'met' if best_chunk['test']['chunk'] >= 94.5 else 'missed'} "
                  f"(best {best_chunk['test']['chunk']:.2f}, {best_chunk['name']})"]
        for r in report["runs"]:
            base = baseline_for(report, r)
            if base and base is not r:
                ok = all(r["test"][k] >= base["test"][k] for k in ("upos", "chunk"))
                lines.append(f"- {r['name']} at least matches {base['name']} on both: {'yes' if ok else 'no'}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
