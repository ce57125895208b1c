"""FDU-MTL benchmark: single-task, FS-MTL, SP-MTL and ASP-MTL (BiLSTM) on the 16 review domains,
with random and with word2vec vectors trained on FDU-MTL's own train + unlabeled text, beside a
minimal hand-written PyTorch loop and the published numbers.

    python benchmarks/fdu_mtl.py --data-dir ../shared/data

Each run is a ``polytask train`` subprocess writing to ``benchmarks/work/fdu-mtl/<name>``; an interrupted
benchmark started again resumes the unfinished runs and reuses the finished ones. Results go to
``benchmarks/results/fdu-mtl.md`` and ``.json`` (format: ../shared/benchmarks.md).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (ROOT, WORK_DIR, argv_command, ensure_vectors, record_commit, run_commit, run_suite,  # noqa: E402
                    selected_runs, suite_argument_parser, write_report)

sys.path.insert(0, str(ROOT / "src"))
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

FDU = "configs/fdu-mtl/"
RANDOM = {"encoder": "bilstm", "vectors": "random"}
# name -> (config, overrides, settings), in the order they run: fs-mtl first, the hand loop beside it
RUNS = {
    "fs-mtl": (FDU + "hard-sharing.yaml", [], RANDOM),
    "asp-mtl": (FDU + "adversarial-shared-private.yaml", [], RANDOM),
    "single-task": (FDU + "single-task.yaml", [], RANDOM),
    "sp-mtl": (FDU + "shared-private.yaml", [], RANDOM),
    # the hand loop initialises word vectors N(0, 1) (nn.Embedding's default); polytask's default is 0.1
    "fs-mtl-init1": (FDU + "hard-sharing.yaml", ["model.embedding_init_std=1.0"],
                     {**RANDOM, "embedding_init_std": 1.0}),
    # the hand loop draws random batches padded to their longest text; polytask buckets by length
    "fs-mtl-nobucket": (FDU + "hard-sharing.yaml", ["data.bucket=false"], {**RANDOM, "bucketing": False}),
    # the hand loop reads every review whole (up to 5,941 tokens); polytask's configs cut at 400
    "fs-mtl-fulllength": (FDU + "hard-sharing.yaml", ["data.max_length=6000"], RANDOM),
    # the hand loop does not clip gradients; polytask's configs clip the norm at 5
    "fs-mtl-noclip": (FDU + "hard-sharing.yaml", ["trainer.clip_norm=null"], RANDOM),
}
VECTORS = "fdu-word2vec-200d.txt"   # made by ensure_vectors in the work directory on first use
W2V = f"data.vectors={WORK_DIR}/{VECTORS}"


def vectors_runs(names: list[str]) -> dict:
    """``<name>+w2v``: run ``name`` again with word2vec vectors trained on FDU-MTL's own text."""
    return {f"{n}+w2v": (RUNS[n][0], [*RUNS[n][1], W2V], {"encoder": "bilstm", "vectors": "word2vec-own"})
            for n in names}


def hand_loop(args) -> dict | None:
    """The hand loop's row (``benchmarks/hand_loop.py``, run once into ``<work-dir>/hand-loop.json``
    and reused after; an interrupted one starts again)."""
    out = Path(args.work_dir) / "hand-loop.json"
    if not out.is_file():
        if args.only_report:
            return None
        cmd = [sys.executable, "benchmarks/hand_loop.py", "--data-dir", str(Path(args.data_dir).resolve()),
               "--out", str(out), "--steps", str(args.hand_steps), "--threads", str(args.threads)]
        print(f"[bench] hand-loop: {' '.join(cmd)}", flush=True)
        record_commit(args.work_dir, "hand-loop")
        with (Path(args.work_dir) / "hand-loop.log").open("a") as log:
            subprocess.run(cmd, check=True, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    hand = json.loads(out.read_text())
    return {"name": "hand-loop", "architecture": "hard_sharing (plain PyTorch loop)",
            "config": "benchmarks/hand_loop.py", "settings": dict(RANDOM),
            "test": hand["test"], "test_avg": hand["test_avg"], "dev_avg": hand["dev_avg"],
            "seeds": [1], "wall_s": round(hand["wall_s"], 1),
            "train_tokens_per_s": round(hand["train_tokens_per_s"]),
            "peak_rss_mb": round(hand["peak_rss_mb"]), "params": hand["params"], "steps": hand["steps"],
            "code_commit": run_commit(args.work_dir, "hand-loop")}


def speed_against_hand_loop(runs: list[dict]) -> list[dict]:
    """polytask's FS-MTL against the hand loop: wall time and throughput, from the same benchmark run."""
    hand = next((r for r in runs if r["name"] == "hand-loop"), None)
    fs = next((r for r in runs if r["name"] == "fs-mtl"), None)
    if not (hand and fs):
        return []
    return [{"name": "polytask fs-mtl vs hand loop", "a": "polytask fs-mtl", "b": "hand loop",
             "ratio_a_over_b": round(fs["wall_s"] / hand["wall_s"], 3), "unit": "wall seconds",
             "batch": 32, "a_test_avg": fs["test_avg"], "b_test_avg": hand["test_avg"]},
            {"name": "polytask fs-mtl vs hand loop (throughput)", "a": "polytask fs-mtl",
             "b": "hand loop", "unit": "train tokens/s", "batch": 32,
             "ratio_a_over_b": round(fs["train_tokens_per_s"] / hand["train_tokens_per_s"], 3)}]


def main() -> None:
    ap = suite_argument_parser(__doc__, "benchmarks/work/fdu-mtl")
    ap.add_argument("--vectors-runs", default="fs-mtl",
                    help="runs repeated with word2vec vectors trained on FDU-MTL text ('' for none)")
    ap.add_argument("--no-hand-loop", action="store_true")
    ap.add_argument("--hand-steps", type=int, default=6000)
    args = ap.parse_args()
    with_vectors = vectors_runs([n for n in args.vectors_runs.split(",") if n])
    chosen = [*selected_runs(args, RUNS), *with_vectors]
    if not args.no_hand_loop:   # beside fs-mtl (the first run) so both see the same machine load
        chosen.insert(1, "hand-loop")
    args.runs = ",".join(chosen)
    if with_vectors and not args.only_report:
        ensure_vectors(args, FDU + "hard-sharing.yaml", VECTORS, 200)
    runs = run_suite(args, {**RUNS, **with_vectors, "hand-loop": lambda: hand_loop(args)})
    published = [{"name": n, "source": SOURCE, "test_avg": PUBLISHED_AVG[n],
                  "test": {d: round(100 - PUBLISHED_ERROR[d][i], 1) for d in DOMAINS}}
                 for i, n in enumerate(PUBLISHED_NAMES)]
    write_report(args, "fdu-mtl", "accuracy", runs, published, speed_against_hand_loop(runs),
                 markdown=markdown, command=argv_command())


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
