"""Balancing benchmark: hard sharing on the 16 FDU-MTL domains under each loss weighting and
gradient method (a batch of every task per step), with average and worst-task accuracy, Δm against
equal weighting, peak memory, and the time of one training step of each method relative to equal
weighting, measured in this one process on the same 16 batches (the runs' own wall times are listed
too, but runs sharing a CPU do not time each other fairly).

    python benchmarks/balancing.py --data-dir ../shared/data
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import random_batch, run_suite, step_seconds, suite_argument_parser, write_report  # noqa: E402

FDU = "configs/fdu-mtl/hard-sharing.yaml"
# A batch of 8 reviews from every domain per step (128 in all), 1500 steps: every domain sees the
# 1500 × 8 = 12,000 training reviews that FS-MTL's 6000 one-domain steps of 32 give it on average,
# in as many reviews per second (the per-review cost of the BiLSTM step does not depend on the batch
# size on this CPU: 7.3 ms at batch 8, 7.6 ms at 32, measured with step_seconds at 1 thread).
ALL = ["trainer.step_mode=all_tasks", "data.batch_size=8", "trainer.max_steps=1500", "trainer.eval_every=125"]
METHODS = ("equal", "uncertainty", "dwa", "rlw", "gradnorm", "pcgrad", "mgda", "upgrad", "imtlg", "cagrad",
           "nashmtl")
RUNS = {m: (FDU, [*ALL, f"trainer.weighting={m}"], {"weighting": m}) for m in METHODS}
PUBLISHED = [{"name": n, "source": "Chai et al. ACL 2023 (GetMTL) Appendix Table 3, 14 Amazon domains, TextCNN",
              "test_avg": v} for n, v in (("Uniform (EW)", 88.47), ("Uncertainty", 88.74), ("GradNorm", 88.01),
                                          ("MGDA", 88.30), ("GetMTL", 89.80))] + [
    {"name": n, "source": "Lin et al. TMLR 2022 (RLW) Table 2, PAWS-X en/zh/de/es, mBERT", "test_avg": v}
    for n, v in (("EW", 90.00), ("Uncertainty", 90.18), ("DWA", 90.15), ("RLW", 90.25), ("MGDA-UB", 89.49),
                 ("GradNorm", 89.47), ("PCGrad", 90.00), ("IMTL-G", 89.82), ("CAGrad", 89.91))]


def step_times(methods, batch: int = 8, length: int = 150, vocab: int = 30_000, repeats: int = 3,
               overrides: tuple = (), threads: int = 0) -> list[dict]:
    """Seconds per all-tasks training step (16 forwards, the method's backward, Adam) of each method
    against equal weighting: the FS-MTL model of ``hard-sharing.yaml`` (plus the runs' ``overrides``)
    on the same 16 batches of ``batch`` × ``length`` tokens, in this process, at ``threads`` torch
    threads (0: torch's default)."""
    import torch
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    tasks = [f"domain{i}" for i in range(16)]
    data = {t: random_batch(t, batch, length, vocab) for t in tasks}

    def seconds(method: str) -> float:
        return step_seconds(FDU, [*ALL, *overrides, f"trainer.weighting={method}"], tasks, data, vocab, repeats)

    equal = seconds("equal")
    return [{"name": f"{m} vs equal, one training step (same process, same batches)", "a": m, "b": "equal",
             "unit": "seconds per step", "ratio_a_over_b": round(t / equal, 2), "a_seconds": round(t, 4),
             "b_seconds": round(equal, 4), "batch": batch, "length": length, "threads": torch.get_num_threads()}
            for m, t in ((m, seconds(m)) for m in methods if m != "equal")]


def main() -> None:
    ap = suite_argument_parser(__doc__, "benchmarks/work/balancing")
    ap.add_argument("--speed-length", type=int, default=150, help="tokens per review in the step timing")
    ap.add_argument("--no-speed", action="store_true",
                    help="skip the step timing (it runs with --only-report too, at --threads threads)")
    args = ap.parse_args()
    runs = run_suite(args, RUNS)
    equal = next((r for r in runs if r["name"] == "equal"), None)
    chosen = [n for n in (args.runs.split(",") if args.runs else RUNS) if n]
    speed = [] if args.no_speed else step_times(chosen, length=args.speed_length, overrides=tuple(args.overrides),
                                                threads=args.threads)
    for r in runs:
        r["worst_task"] = min(r["test"].values())
        if equal and r is not equal:
            speed.append({"name": f"{r['name']} vs equal, the runs' wall time per step", "a": r["name"], "b": "equal",
                          "unit": "wall s per step",
                          "ratio_a_over_b": round((r["wall_s"] / r["steps"]) / (equal["wall_s"] / equal["steps"]), 3)})
    extra = "\n| run | worst task |\n|---|---|\n" + "".join(f"| {r['name']} | {r['worst_task']:.2f} |\n" for r in runs)
    write_report(args, "balancing", "accuracy", runs, PUBLISHED, speed, extra, baseline="equal")


if __name__ == "__main__":
    main()
