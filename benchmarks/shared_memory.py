"""Shared-memory benchmark (Liu, Qiu, Huang, EMNLP 2016): the paper's four product domains (Books,
DVD, Electronics, Kitchen, from FDU-MTL) with a single-task LSTM, ME-LSTM, ARC-I and ARC-II; ARC-I
and ARC-II on all 16 domains beside FS-MTL; training speed of ARC-II against the plain LSTM
measured in the same run; a plot of how much each step of a few test reviews drew from the
shared memory (the ARC-II global fusion gate).

    python benchmarks/shared_memory.py --data-dir ../shared/data
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, run_suite, suite_argument_parser, write_report  # noqa: E402

P4 = "configs/fdu-mtl/products4.yaml"
MEM = ["trainer.select=mean", "trainer.patience=null", "model.memory_slots=50", "model.memory_width=20"]
FDU16 = ["model.encoder.type=lstm", "model.encoder.hidden_dim=100", "model.memory_slots=50", "model.memory_width=20"]
RUNS = {
    "lstm-4": (P4, [], {"domains": 4, "encoder": "lstm"}),
    "me-lstm-4": (P4, ["model.architecture=me_lstm", *MEM], {"domains": 4}),
    "arc1-4": (P4, ["model.architecture=shared_memory_arc1", *MEM], {"domains": 4}),
    "arc2-4": (P4, ["model.architecture=shared_memory_arc2", *MEM], {"domains": 4}),
    "fs-mtl-16": ("configs/fdu-mtl/hard-sharing.yaml", [], {"domains": 16, "encoder": "bilstm"}),
    "arc1-16": ("configs/fdu-mtl/hard-sharing.yaml", ["model.architecture=shared_memory_arc1", *FDU16], {"domains": 16}),
    "arc2-16": ("configs/fdu-mtl/hard-sharing.yaml", ["model.architecture=shared_memory_arc2", *FDU16], {"domains": 16}),
}
PUBLISHED = [{"name": "ARC-II", "source": "Liu, Qiu, Huang EMNLP 2016 Table 4 (GloVe 100d)",
              "test": {"books": 82.8, "dvd": 83.0, "electronics": 85.5, "kitchen_housewares": 84.0}, "test_avg": 83.825},
             {"name": "LSTM", "source": "Liu, Qiu, Huang EMNLP 2016 Table 4",
              "test": {"books": 78.0, "dvd": 79.5, "electronics": 81.2, "kitchen_housewares": 81.8}}]


def fusion_plot(args) -> str:
    """Dump the ARC-II global fusion gates for three books test reviews and plot their step means."""
    run = Path(args.work_dir) / "arc2-4"
    if not (run / "results.json").is_file():
        return ""
    texts = [line.split("\t", 1)[1] for line in (Path(args.data_dir) / "fdu-mtl" / "books.task.test")
             .read_text(errors="replace").splitlines()[:3]]
    src = Path(args.work_dir) / "fusion-input.txt"
    src.write_text("\n".join(" ".join(t.split()[:40]) for t in texts) + "\n")
    dump = Path(args.work_dir) / "fusion.jsonl"
    subprocess.run([sys.executable, "-m", "polytask.cli", "inspect", str(run), "--task", "books", "--input",
                    str(src), "--output", str(dump)], check=True, cwd=ROOT,
                   env={**__import__("os").environ, "PYTHONPATH": str(ROOT / "src")})
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [json.loads(line) for line in dump.read_text().splitlines()]
    fig, axes = plt.subplots(len(rows), 1, figsize=(10, 1.6 * len(rows)))
    for ax, row in zip(axes, rows):
        gate = [sum(step) / len(step) for step in row["inspect"]["fusion_global"]]
        ax.bar(range(len(gate)), gate)
        ax.set_xticks(range(len(gate)), row["tokens"], rotation=90, fontsize=6)
        ax.set_ylim(0, 1)
        ax.set_ylabel("global gate", fontsize=7)
    fig.tight_layout()
    name = "shared-memory-fusion.png"
    fig.savefig(Path(args.results_dir) / name, dpi=110)
    return f"\n## How much each step drew from the shared memory (ARC-II, books test reviews)\n\n![fusion gates]({name})\n"


def main() -> None:
    args = suite_argument_parser(__doc__, "benchmarks/work/shared-memory").parse_args()
    runs = run_suite(args, RUNS)
    by = {r["name"]: r for r in runs}
    speed = []
    if "arc2-4" in by and "lstm-4" in by:
        speed.append({"name": "ARC-II vs LSTM (4 domains)", "a": "arc2", "b": "lstm", "unit": "train tokens/s",
                      "ratio_a_over_b": round(by["arc2-4"]["train_tokens_per_s"] / by["lstm-4"]["train_tokens_per_s"], 3)})
    Path(args.results_dir).mkdir(parents=True, exist_ok=True)
    write_report(args, "shared-memory", "accuracy", runs, PUBLISHED, speed, fusion_plot(args), baseline="lstm-4")


if __name__ == "__main__":
    main()
