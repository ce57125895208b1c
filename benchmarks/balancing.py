"""Balancing benchmark: hard sharing on the 16 FDU-MTL domains under each loss weighting and
gradient method (a batch of every task per step), with average and worst-task accuracy, Δm against
equal weighting, time per step relative to equal weighting (same run of this script) and peak
memory.

    python benchmarks/balancing.py --data-dir ../shared/data
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import run_suite, suite_argument_parser, write_report  # noqa: E402

FDU = "configs/fdu-mtl/hard-sharing.yaml"
ALL = ["trainer.step_mode=all_tasks", "trainer.max_steps=1500", "trainer.eval_every=125"]
METHODS = ("equal", "uncertainty", "dwa", "rlw", "gradnorm", "pcgrad", "mgda", "upgrad", "imtlg")
RUNS = {m: (FDU, [*ALL, f"trainer.weighting={m}"], {"weighting": m}) for m in METHODS}
PUBLISHED = [{"name": n, "source": "Chai et al. ACL 2023 (GetMTL) Appendix Table 3, 14 Amazon domains, TextCNN",
              "test_avg": v} for n, v in (("Uniform (EW)", 88.47), ("Uncertainty", 88.74), ("GradNorm", 88.01),
                                          ("MGDA", 88.30), ("GetMTL", 89.80))]


def main() -> None:
    args = suite_argument_parser(__doc__, "benchmarks/work/balancing").parse_args()
    runs = run_suite(args, RUNS)
    equal = next((r for r in runs if r["name"] == "equal"), None)
    speed = []
    for r in runs:
        r["worst_task"] = min(r["test"].values())
        if equal and r is not equal:
            speed.append({"name": f"{r['name']} vs equal", "a": r["name"], "b": "equal", "unit": "wall s per step",
                          "ratio_a_over_b": round((r["wall_s"] / r["steps"]) / (equal["wall_s"] / equal["steps"]), 3)})
    extra = "\n| run | worst task |\n|---|---|\n" + "".join(f"| {r['name']} | {r['worst_task']:.2f} |\n" for r in runs)
    write_report(args, "balancing", "accuracy", runs, PUBLISHED, speed, extra, baseline="equal")


if __name__ == "__main__":
    main()
