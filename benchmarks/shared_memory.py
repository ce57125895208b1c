"""Shared-memory benchmark (Liu, Qiu, Huang, EMNLP 2016): the paper's four product domains (Books,
DVD, Electronics, Kitchen, from FDU-MTL) with a single-task LSTM, ME-LSTM, ARC-I and ARC-II; ARC-I
and ARC-II on all 16 domains beside FS-MTL; training speed of ARC-II against the plain LSTM
measured in the same run; a plot of how much each step of a few test reviews drew from the
shared memory (the ARC-II global fusion gate).

    python benchmarks/shared_memory.py --data-dir ../shared/data
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import inspect_plot, run_suite, suite_argument_parser, write_report  # noqa: E402

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
    return inspect_plot(args, "arc2-4", "books", "fusion_global", "global gate", "shared-memory-fusion.png",
                        "How much each step drew from the shared memory (ARC-II global fusion gate, books test reviews)")


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
