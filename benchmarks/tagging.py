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

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import WORK_DIR, ensure_vectors, run_suite, selected_runs, suite_argument_parser, write_report  # noqa: E402

# word2vec on the training text of both tasks (train + unlabeled only; there is no unlabeled text),
# made by ensure_vectors in the work directory
VECTORS = "w2v-100.txt"
W2V = f"data.vectors={WORK_DIR}/{VECTORS}"
TUNED = ["model.dropout=0.5", "model.word_dropout=0.05", "model.encoder.hidden_dim=200"]
RANDOM = {"encoder": "bilstm+char-cnn", "vectors": "random", "head": "crf"}
WORD2VEC = {**RANDOM, "vectors": "word2vec on train text"}
TAG = "configs/tagging/"
RUNS = {   # name -> (config, overrides, settings)
    "single-task": (TAG + "single-task.yaml", [], RANDOM),
    "hard-sharing": (TAG + "hard-sharing.yaml", [], RANDOM),
    "low-supervision": (TAG + "low-supervision.yaml", [], RANDOM),
    "joint-many-task": (TAG + "joint-many-task.yaml", [], RANDOM),
    "single-task-w2v": (TAG + "single-task.yaml", [*TUNED, W2V], WORD2VEC),
    "hard-sharing-w2v": (TAG + "hard-sharing.yaml", [*TUNED, W2V], WORD2VEC),
    "low-supervision-w2v": (TAG + "low-supervision.yaml", [*TUNED, W2V], WORD2VEC),
    "joint-many-task-w2v": (TAG + "joint-many-task.yaml", [*TUNED, W2V], WORD2VEC),
}
PUBLISHED = [
    {"name": "JMT (chunking, pretrained vectors)", "source": "Hashimoto et al. EMNLP 2017, as cited in "
     "polytask issue 3", "test": {"chunk": 95.77}},
]


def main() -> None:
    args = suite_argument_parser(__doc__, "benchmarks/work/tagging").parse_args()
    if not args.only_report and any(W2V in RUNS[n][1] for n in selected_runs(args, RUNS)):
        ensure_vectors(args, TAG + "hard-sharing.yaml", VECTORS, 100, min_count=1)
    runs = run_suite(args, RUNS)
    write_report(args, "tagging", "upos: token accuracy %, chunk: span F1", runs, PUBLISHED, markdown=markdown,
                 fields={"jobs": args.jobs, "threads": args.threads})


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
