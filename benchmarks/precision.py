"""bf16 against fp32 on this CPU: the time of one training step (forward, backward, Adam) of the
FS-MTL BiLSTM, the Meta-LSTM and the ME-LSTM / ARC-II memory models, each in one process on the same
batch, under ``torch.autocast("cpu", dtype=torch.bfloat16)`` (what ``trainer.precision: bf16``
does) and without it. Accuracy under bf16 needs full runs; this measures speed only.

    python benchmarks/precision.py
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, binary_specs, provenance, random_batch, training_step_seconds  # noqa: E402

FDU = "configs/fdu-mtl/hard-sharing.yaml"
MODELS = {   # name -> overrides of the FS-MTL config (each architecture at its benchmark's size)
    "hard_sharing": [],
    "meta_lstm": ["model.architecture=meta_lstm"],
    "me_lstm": ["model.architecture=me_lstm", "model.encoder.type=lstm", "model.encoder.hidden_dim=100"],
    "shared_memory_arc2": ["model.architecture=shared_memory_arc2", "model.encoder.type=lstm",
                           "model.encoder.hidden_dim=100"],
}


def step_time(name: str, overrides: list[str], batch, vocab: int, repeats: int) -> dict[str, float]:
    """Fastest fp32 and bf16 step of one model on ``batch``, timed alternately in this process."""
    import torch
    from polytask.config import load_config
    from polytask.models import build_model
    cfg = load_config(ROOT / FDU, overrides=overrides)
    torch.manual_seed(1)
    model = build_model(cfg, binary_specs(["t"]), vocab)
    return training_step_seconds(model, batch, torch.optim.Adam(model.parameters(), lr=1e-3), repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--results-dir", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    import torch
    torch.set_num_threads(args.threads)
    batch = random_batch("t", args.batch, args.length, args.vocab)
    speed = []
    for name in args.models.split(","):
        t = step_time(name, MODELS[name], batch, args.vocab, args.repeats)
        speed.append({"name": f"{name} bf16 vs fp32", "a": f"{name} bf16", "b": f"{name} fp32",
                      "ratio_a_over_b": round(t["fp32"] / t["bf16"], 3), "unit": "train steps/s",
                      "seconds_a": round(t["bf16"], 4), "seconds_b": round(t["fp32"], 4),
                      "batch": args.batch, "length": args.length, "threads": args.threads})
        print(f"{name}: fp32 {t['fp32']:.3f} s, bf16 {t['bf16']:.3f} s per step", flush=True)
    given, skip = [], False                             # where the report goes changes nothing in it
    for a in sys.argv[1:]:
        if not skip and not a.startswith("--results-dir"):
            given.append(a)
        skip = a == "--results-dir"
    command = " ".join(["python benchmarks/precision.py", *given])
    report = {**provenance("precision", command, "train steps/s"), "runs": [], "published": [],
              "speed": speed}
    out = Path(args.results_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "precision.json").write_text(json.dumps(report, indent=1))
    lines = ["# bf16 against fp32: time of one training step on this CPU", "",
             f"Command: `{report['command']}` (commit {report['git_commit']}, {report['date']}, {report['device']}).",
             f"One process, {args.threads} thread(s), the same batch of {args.batch} × {args.length} random tokens, "
             f"the fastest of {args.repeats} steps each (after a warm-up step), fp32 and bf16 timed in turn.",
             "Speed only: whether bf16 keeps the accuracy needs a full run of each (not measured here).", "",
             "| model | fp32 s/step | bf16 s/step | bf16 speed-up |", "|---|---|---|---|"]
    lines += [f"| {s['a'].split()[0]} | {s['seconds_b']:.3f} | {s['seconds_a']:.3f} | {s['ratio_a_over_b']:.2f}× |"
              for s in speed]
    (out / "precision.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
