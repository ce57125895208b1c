"""FDU-MTL benchmark: single-task, FS-MTL, SP-MTL and ASP-MTL (BiLSTM) on the 16 review domains,
with random and with word2vec vectors trained on FDU-MTL's own train + unlabeled text, beside a
minimal hand-written PyTorch loop and the published numbers.

    python benchmarks/fdu_mtl.py --data-dir ../shared/data

Each run is a ``polytask train`` subprocess writing to ``benchmarks/work/<name>``; an interrupted
benchmark started again resumes the unfinished runs and reuses the finished ones. Results go to
``benchmarks/results/fdu-mtl.md`` and ``.json`` (format: ../shared/benchmarks.md).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import head_commit, run_commit, run_polytask  # noqa: E402

from polytask.evaluation.tables import format_table  # noqa: E402

DOMAINS = ["apparel", "baby", "books", "camera_photo", "dvd", "electronics", "health_personal_care",
           "imdb", "kitchen_housewares", "magazines", "MR", "music", "software", "sports_outdoors",
           "toys_games", "video"]

# Liu, Qiu, Huang ACL 2017, Table 2, test ERROR rates (%), copied via
# ../shared/references/published-results.md §1.2; accuracy = 100 - error (derived).
PUBLISHED_ERROR = {  # domain: (BiLSTM single task, FS-MTL, SP-MTL, ASP-MTL)
    "books": (19.0, 17.5, 18.8, 16.0), "electronics": (21.5, 14.3, 15.3, 13.2),
    "dvd": (19.5, 16.5, 16.0, 14.5), "kitchen_housewares": (18.8, 14.0, 14.8, 13.8),
    "apparel": (14.0, 15.5, 13.5, 13.0), "camera_photo": (14.0, 13.5, 12.0, 10.8),
    "health_personal_care": (21.3, 12.0, 12.8, 11.8), "music": (22.8, 18.8, 17.0, 17.5),
    "toys_games": (15.3, 15.5, 14.8, 12.0), "video": (16.3, 16.3, 16.8, 15.5),
    "baby": (16.5, 12.0, 13.3, 11.8), "magazines": (8.5, 7.5, 8.0, 7.8),
    "software": (14.3, 13.8, 13.0, 12.8), "sports_outdoors": (16.0, 14.5, 12.8, 14.3),
    "imdb": (15.0, 17.5, 15.3, 14.5), "MR": (25.3, 25.3, 24.0, 23.3),
}
PUBLISHED_NAMES = ["BiLSTM (single)", "FS-MTL", "SP-MTL", "ASP-MTL"]
PUBLISHED_AVG = {"BiLSTM (single)": 82.6, "FS-MTL": 84.7, "SP-MTL": 85.1, "ASP-MTL": 86.1}
SOURCE = "Liu, Qiu, Huang ACL 2017 Table 2 (accuracy = 100 - error, derived), 200-d GloVe"

RUNS = {  # name: (config, architecture, extra overrides)
    "single-task": ("configs/fdu-mtl/single-task.yaml", "single_task", []),
    "fs-mtl": ("configs/fdu-mtl/hard-sharing.yaml", "hard_sharing", []),
    "sp-mtl": ("configs/fdu-mtl/shared-private.yaml", "shared_private", []),
    "asp-mtl": ("configs/fdu-mtl/adversarial-shared-private.yaml", "adversarial_shared_private", []),
    # the hand loop initialises word vectors N(0, 1) (nn.Embedding's default); polytask's default is 0.1
    "fs-mtl-init1": ("configs/fdu-mtl/hard-sharing.yaml", "hard_sharing", ["model.embedding_init_std=1.0"]),
    # the hand loop draws random batches padded to their longest text; polytask buckets by length
    "fs-mtl-nobucket": ("configs/fdu-mtl/hard-sharing.yaml", "hard_sharing", ["data.bucket=false"]),
    # the hand loop reads every review whole (up to 5,941 tokens); polytask's configs cut at 400
    "fs-mtl-fulllength": ("configs/fdu-mtl/hard-sharing.yaml", "hard_sharing", ["data.max_length=6000"]),
    # the hand loop does not clip gradients; polytask's configs clip the norm at 5
    "fs-mtl-noclip": ("configs/fdu-mtl/hard-sharing.yaml", "hard_sharing", ["trainer.clip_norm=null"]),
}


def run_hand_loop(args) -> dict:
    out = Path(args.work_dir) / "hand-loop.json"
    if out.is_file():
        return json.loads(out.read_text())
    cmd = [sys.executable, "benchmarks/hand_loop.py", "--data-dir", args.data_dir, "--out", str(out),
           "--steps", str(args.hand_steps), "--threads", str(args.threads)]
    print(f"[bench] hand-loop: {' '.join(cmd)}", flush=True)
    commit_file = Path(args.work_dir) / "hand-loop.commit"
    if not commit_file.is_file():
        commit_file.write_text(head_commit() + "\n")
    log = (Path(args.work_dir) / "hand-loop.log").open("a")
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    return json.loads(out.read_text())


def ensure_vectors(args) -> str:
    path = Path(args.work_dir) / "fdu-word2vec-200d.txt"
    if not path.is_file():
        cmd = [sys.executable, "-m", "polytask.cli", "data", "vectors", "configs/fdu-mtl/hard-sharing.yaml",
               "--data-dir", args.data_dir, "--output", str(path), "--dim", "200"]
        print(f"[bench] vectors: {' '.join(cmd)}", flush=True)
        subprocess.run(cmd, check=True, cwd=ROOT)
    return str(path.resolve())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--work-dir", default="benchmarks/work/fdu-mtl")
    ap.add_argument("--runs", default="fs-mtl,asp-mtl,single-task,sp-mtl,fs-mtl-init1,fs-mtl-nobucket,fs-mtl-fulllength,fs-mtl-noclip",
                    help="comma list of: " + ", ".join(RUNS))
    ap.add_argument("--vectors-runs", default="fs-mtl",
                    help="runs repeated with word2vec vectors trained on FDU-MTL text ('' for none)")
    ap.add_argument("--no-hand-loop", action="store_true")
    ap.add_argument("--hand-steps", type=int, default=6000)
    ap.add_argument("--jobs", type=int, default=2, help="runs at once")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run")
    ap.add_argument("--only-report", action="store_true", help="rewrite the report from finished runs")
    args = ap.parse_args()
    args.data_dir = str(Path(args.data_dir).resolve())
    Path(args.work_dir).mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PYTHONPATH", str(ROOT / "src"))

    jobs = []  # (name, settings, callable)
    for name in filter(None, args.runs.split(",")):
        config, arch, extra = RUNS[name]
        jobs.append((name, arch, config, {"encoder": "bilstm", "vectors": "random",
                                          **({"embedding_init_std": 1.0} if name == "fs-mtl-init1" else {}),
                                          **({"bucketing": False} if name == "fs-mtl-nobucket" else {})}, extra))
    vec_names = list(filter(None, args.vectors_runs.split(",")))
    if vec_names:
        vectors = str((Path(args.work_dir) / "fdu-word2vec-200d.txt").resolve())  # made on first use
        for name in vec_names:
            config, arch, extra = RUNS[name]
            jobs.append((f"{name}+w2v", arch, config, {"encoder": "bilstm", "vectors": "word2vec-own"},
                         extra + [f"data.vectors={vectors}"]))

    vectors_lock = threading.Lock()

    def work(job):
        name, arch, config, settings, overrides = job
        if name == "hand-loop":
            if args.only_report and not (Path(args.work_dir) / "hand-loop.json").is_file():
                return None
            hand = run_hand_loop(args)
            return {"name": "hand-loop", "architecture": "hard_sharing (plain PyTorch loop)",
                    "config": "benchmarks/hand_loop.py", "settings": settings,
                    "test": hand["test"], "test_avg": hand["test_avg"], "dev_avg": hand["dev_avg"],
                    "seeds": [1], "wall_s": round(hand["wall_s"], 1),
                    "train_tokens_per_s": round(hand["train_tokens_per_s"]),
                    "peak_rss_mb": round(hand["peak_rss_mb"]), "params": hand["params"], "steps": hand["steps"],
                    "code_commit": run_commit(args.work_dir, "hand-loop")}
        if args.only_report and not (Path(args.work_dir) / name / "results.json").is_file():
            return None
        if settings["vectors"] == "word2vec-own":
            with vectors_lock:
                ensure_vectors(args)
        res = run_polytask(name, config, overrides, str(Path(args.data_dir).resolve()), args.work_dir, args.threads)
        return {"name": name, "architecture": arch, "config": config, "settings": settings,
                "code_commit": res["code_commit"],
                "overrides": overrides, "test": res["test"], "test_avg": res["test_avg"],
                "dev_avg": res["dev_avg"], "seeds": [1], "wall_s": round(res["wall_seconds"], 1),
                "train_tokens_per_s": round(res["train_tokens_per_s"]), "peak_rss_mb": round(res["peak_rss_mb"]),
                "params": res["params"], "steps": res["steps"], "best_step": res.get("best_step")}

    if not args.no_hand_loop:  # run beside fs-mtl (the first job) so both see the same machine load
        jobs.insert(1, ("hand-loop", "", "", {"encoder": "bilstm", "vectors": "random"}, []))
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        runs = [r for r in pool.map(work, jobs) if r is not None]
    speed = []
    hand = next((r for r in runs if r["name"] == "hand-loop"), None)
    fs = next((r for r in runs if r["name"] == "fs-mtl"), None)
    if hand and fs:
        speed.append({"name": "polytask fs-mtl vs hand loop", "a": "polytask fs-mtl", "b": "hand loop",
                      "ratio_a_over_b": round(fs["wall_s"] / hand["wall_s"], 3), "unit": "wall seconds",
                      "batch": 32, "a_test_avg": fs["test_avg"], "b_test_avg": hand["test_avg"]})
        speed.append({"name": "polytask fs-mtl vs hand loop (throughput)", "a": "polytask fs-mtl",
                      "b": "hand loop", "unit": "train tokens/s", "batch": 32,
                      "ratio_a_over_b": round(fs["train_tokens_per_s"] / hand["train_tokens_per_s"], 3)})
    published = [{"name": n, "source": SOURCE, "test_avg": PUBLISHED_AVG[n],
                  "test": {d: round(100 - PUBLISHED_ERROR[d][i], 1) for d in DOMAINS}}
                 for i, n in enumerate(PUBLISHED_NAMES)]
    report = {"benchmark": "fdu-mtl", "command": reproduce_command(),
              "git_commit": head_commit(), "device": f"cpu: {os.cpu_count()} cores ({platform.processor() or platform.machine()})",
              "date": datetime.date.today().isoformat(), "metric": "accuracy", "runs": runs,
              "published": published, "speed": speed}
    out_dir = ROOT / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "fdu-mtl.json").write_text(json.dumps(report, indent=1))
    (out_dir / "fdu-mtl.md").write_text(markdown(report))
    print(markdown(report))


def reproduce_command() -> str:
    """The command that reproduces the report: the options given, less --data-dir, --work-dir (where
    the runs live changes nothing in them) and --only-report."""
    kept, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
            continue
        if a in ("--data-dir", "--work-dir"):
            skip = True
            continue
        if a.startswith(("--data-dir=", "--work-dir=")) or a == "--only-report":
            continue
        kept.append(a)
    return " ".join(["python benchmarks/fdu_mtl.py --data-dir ../shared/data", *kept])


def markdown(report: dict) -> str:
    cols = {r["name"]: r["test"] for r in report["runs"]}
    cols.update({f"{p['name']} (pub.)": p["test"] for p in report["published"]})
    single = next((r for r in report["runs"] if r["name"] == "single-task"), None)
    lines = ["# FDU-MTL: 16 review domains, test accuracy (%)", "",
             f"Command: `{report['command']}`  ", f"Report written at commit {report['git_commit']} (each run's code commit in the table), "
             f"{report['device']}, {report['date']}.",
             "", format_table(cols, DOMAINS), "",
             "Published columns: " + SOURCE + ". They used pretrained GloVe; our runs use no external vectors.", "",
             "| run | test avg | Δ vs single-task | dev avg | steps (best) | wall s | train tokens/s | peak RSS MB | params | code |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["runs"]:
        delta = f"{r['test_avg'] - single['test_avg']:+.2f}" if single else "–"
        lines.append(f"| {r['name']} | {r['test_avg']:.2f} | {delta} | {r['dev_avg']:.2f} | {r['steps']} "
                     f"({r.get('best_step', '–')}) | {r['wall_s']:.0f} | {r['train_tokens_per_s']} | "
                     f"{r['peak_rss_mb']} | {r['params']:,} | {r.get('code_commit', '–')} |")
    for p in report["published"]:
        lines.append(f"| {p['name']} (published) | {p['test_avg']:.1f} | | | | | | | | |")
    if report["speed"]:
        lines += ["", "Speed (same benchmark run):", ""]
        for s in report["speed"]:
            lines.append(f"- {s['name']}: {s['a']} / {s['b']} = {s['ratio_a_over_b']} ({s['unit']})")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
