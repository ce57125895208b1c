"""The MTL catalogue on the 16 FDU-MTL domains: soft sharing (L2, trace norm), cross-stitch,
sluice, block-sparse l1/l2 and l1/linf, task clustering, tensor-normal prior, Tucker and
Tensor-Train task layers, fully-adaptive feature sharing, beside single-task and hard sharing,
with Δm, parameters and throughput; and cross-stitch and sluice on UPOS + chunking beside
single-task and hard sharing there (``catalogue-tagging.md``). The learned structure
(cross-stitch α, sluice α/β, task covariance, the FAFS tree) is plotted or listed.

    python benchmarks/catalogue.py --data-dir ../shared/data
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, run_suite, suite_argument_parser, write_report  # noqa: E402

FDU = "configs/fdu-mtl/hard-sharing.yaml"
A = "model.architecture="
EQUAL = "16 task BiLSTM columns of 32 units (the recurrent weights of one 128-unit BiLSTM)"
RUNS = {
    "single-task": ("configs/fdu-mtl/single-task.yaml", [], {}),
    "fs-mtl": (FDU, [], {}),
    "soft-l2": (FDU, [A + "soft_sharing", "model.soft_sharing=l2"], {}),
    "soft-trace": (FDU, [A + "soft_sharing", "model.soft_sharing=trace"], {}),
    # every step of cross-stitch and sluice runs all 16 task columns: at 32 units each they cost
    # about what one 128-unit BiLSTM does (16·32² = 128² recurrent weights); 128 each is ~12× FS-MTL
    "cross-stitch": (FDU, [A + "cross_stitch", "model.encoder.hidden_dim=32"], {"encoder": EQUAL}),
    "sluice": (FDU, [A + "sluice", "model.encoder.hidden_dim=32"], {"encoder": EQUAL}),
    "l1-l2": (FDU, [A + "regularized_heads", "model.head_regularizer=l1_l2"], {}),
    "l1-linf": (FDU, [A + "regularized_heads", "model.head_regularizer=l1_linf"], {}),
    "task-clustering": (FDU, [A + "regularized_heads", "model.head_regularizer=task_clustering"], {}),
    "tensor-normal": (FDU, [A + "regularized_heads", "model.head_regularizer=tensor_normal"], {}),
    "tucker": (FDU, [A + "tucker_heads"], {}),
    "tensor-train": (FDU, [A + "tensor_train_heads"], {}),
    "fafs": (FDU, [A + "fully_adaptive", "model.encoder.num_layers=2", "model.fafs_widen_every=1000"],
             {"encoder": "2-layer BiLSTM, widened at steps 1000 and 2000"}),
}
# The catalogue's methods have no published FDU-MTL figures; the BiLSTM baselines of the paper that
# introduced the benchmark stand beside them (as in fdu-mtl.md).
PUBLISHED = [{"name": n, "source": "Liu, Qiu, Huang ACL 2017 Table 2, 200-d GloVe", "test_avg": v}
             for n, v in (("BiLSTM (single)", 82.6), ("FS-MTL", 84.7), ("SP-MTL", 85.1), ("ASP-MTL", 86.1))]
# UPOS (UD English EWT) + chunking (CoNLL-2000), the tagging benchmark's data and settings; every
# run here has a 2-layer BiLSTM so that cross-stitch and sluice have a layer to mix after.
TAG = "configs/tagging/hard-sharing.yaml"
TWO = ["model.encoder.num_layers=2"]
TAGGING_RUNS = {
    "tagging-single-task": ("configs/tagging/single-task.yaml", TWO, {"encoder": "2-layer BiLSTM + char CNN, CRF"}),
    "tagging-hard-sharing": (TAG, TWO, {"encoder": "2-layer BiLSTM + char CNN, CRF"}),
    "tagging-cross-stitch": (TAG, [*TWO, A + "cross_stitch"], {"encoder": "2-layer BiLSTM + char CNN, CRF"}),
    "tagging-sluice": (TAG, [*TWO, A + "sluice"], {"encoder": "2-layer BiLSTM + char CNN, CRF"}),
}


def structure_plots(args) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    md = ""
    for run, key in (("cross-stitch", "cross_stitch_alpha"), ("sluice", "sluice_alpha"),
                     ("tensor-normal", "task_covariance")):
        path = Path(args.work_dir) / run / "structure.json"
        if not path.is_file():
            continue
        value = json.loads(path.read_text())[key]
        matrix = value[-1] if key != "task_covariance" else value      # the top layer's α
        names = list(json.loads((Path(args.work_dir) / run / "tasks.json").read_text()))
        if len(matrix) == 2 * len(names):                       # sluice: two subspaces per task
            names = [f"{n}/{i}" for n in names for i in (1, 2)]
        fig, ax = plt.subplots(figsize=(7, 6))
        im = ax.imshow(matrix, cmap="viridis")
        ax.set_title(f"{run}: {key}" + (" (top layer)" if key != "task_covariance" else ""), fontsize=8)
        if len(names) == len(matrix):
            ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
            ax.set_yticks(range(len(names)), names, fontsize=6)
        fig.tight_layout()
        fig.colorbar(im, ax=ax)
        name = f"catalogue-{run}.png"
        fig.savefig(Path(args.results_dir) / name, dpi=110)
        plt.close(fig)
        md += f"\n![{run} {key}]({name})\n"
    tree = Path(args.work_dir) / "fafs" / "structure.json"
    if tree.is_file():
        layers = json.loads(tree.read_text())["fafs_tree"]
        md += "\nFully-adaptive feature sharing, the branches it grew (bottom layer first):\n\n" + "".join(
            f"- layer {i}: " + " | ".join(", ".join(g) for g in groups) + "\n" for i, groups in enumerate(layers, 1))
        md += fafs_decisions(Path(args.work_dir) / "fafs")
    return md


def fafs_decisions(run_dir: Path) -> str:
    """Each widening decision of the FAFS run (top layer first): the spread of the task affinities it
    saw, the number of groups it chose at its branch cost λ, and what smaller costs would have chosen
    from the same affinities and the same branches above."""
    sys.path.insert(0, str(ROOT / "src"))
    import torch
    from polytask.config import load_config
    from polytask.models.fafs import branch_affinity, group_branches
    cost = load_config(run_dir / "config.yaml").model.fafs_branch_cost
    tasks = list(json.loads((run_dir / "tasks.json").read_text()))
    above = [[i] for i in range(len(tasks))]           # at the top every task is its own branch
    rows = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event.get("event") != "structure":
            continue
        a = torch.tensor(event["task_affinity"])
        off = a[~torch.eye(len(a), dtype=torch.bool)]
        branches = branch_affinity(a, above)
        sizes = [sorted((sum(len(above[b]) for b in g) for g in group_branches(branches, lam)), reverse=True)
                 for lam in (0.035, 0.025, 0.01)]
        rows.append(f"| {event['step']} | {event['layer']} | {len(above)} | {float(off.min()):.2f} / "
                    f"{float(off.mean()):.2f} / {float(off.max()):.2f} | {len(event['groups'])} | "
                    + " | ".join(f"{len(v)} ({'+'.join(map(str, v))})" for v in sizes) + " |")
        above = [sorted(tasks.index(t) for t in g) for g in event["groups"]]
    if not rows:
        return ""
    return ("\nIts widening decisions, top layer first: the affinity A = (1 + cos of two tasks' gradients on "
            "the layer) / 2 (off-diagonal min / mean / max), the groups chosen at the run's branch cost "
            f"λ = {cost}, and the groups (tasks in each) that smaller costs would choose from the same "
            "affinities and branches:\n\n"
            "| step | layer | branches above | A min / mean / max | groups at λ | λ = 0.035 | λ = 0.025 | λ = 0.01 |\n"
            "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")


def targets(runs: list[dict], tagging: list[dict] | None = None) -> str:
    """The issue's target, stated for each method from the runs above: does it beat the single-task
    average, and does it beat hard sharing (FS-MTL; on tagging, the hard-sharing tagger)?"""
    def verdicts(rows, single, hard, per_task=False):
        out = []
        for r in rows:
            if r is single or r is hard:
                continue
            cells = [f"{r['test_avg']:.2f}"] + ["–" if ref is None else
                                                 f"{'yes' if r['test_avg'] > ref['test_avg'] else 'no'} "
                                                 f"({r['test_avg'] - ref['test_avg']:+.2f})" for ref in (single, hard)]
            if per_task:
                cells.append(", ".join(f"{t} {v:.2f}" for t, v in sorted(r["test"].items())))
            out.append(f"| {r['name']} | " + " | ".join(cells) + " |")
        return out

    def find(rows, name):
        return next((r for r in rows if r["name"] == name), None)

    lines = ["", "## Target: every method beats the single-task average; which beat hard sharing", "",
             "16 FDU-MTL domains, average test accuracy:", "",
             "| method | test avg | beats single-task | beats hard sharing (FS-MTL) |", "|---|---|---|---|"]
    single, hard = find(runs, "single-task"), find(runs, "fs-mtl")
    lines += verdicts(runs, single, hard)
    methods = [r for r in runs if r is not single and r is not hard]
    if single and methods:
        below = [r["name"] for r in methods if r["test_avg"] <= single["test_avg"]]
        lines += ["", f"Every method beats the single-task average: {'met' if not below else 'missed (' + ', '.join(below) + ')'}."]
        if hard:
            above = [r["name"] for r in methods if r["test_avg"] > hard["test_avg"]]
            lines.append(f"Beat hard sharing: {', '.join(above) or 'none'}. One seed per run: the spread "
                         "between seeds is not measured here, so margins under a point are not settled.")
    if tagging:
        t_single, t_hard = find(tagging, "tagging-single-task"), find(tagging, "tagging-hard-sharing")
        tasks = sorted(tagging[0]["test"])
        lines += ["", f"UPOS + chunking, mean of the two tasks' test metrics ({' and '.join(tasks)}):", "",
                  "| method | mean | beats single-task | beats hard sharing | per task |", "|---|---|---|---|---|"]
        lines += verdicts(tagging, t_single, t_hard, per_task=True)
    return "\n".join(lines) + "\n"


def main() -> None:
    args = suite_argument_parser(__doc__, "benchmarks/work/catalogue").parse_args()
    chosen = [n for n in args.runs.split(",") if n] if args.runs else [*RUNS, *TAGGING_RUNS]
    unknown = [n for n in chosen if n not in RUNS and n not in TAGGING_RUNS]
    if unknown:
        raise SystemExit(f"unknown runs {unknown} (known: {', '.join([*RUNS, *TAGGING_RUNS])})")
    Path(args.results_dir).mkdir(parents=True, exist_ok=True)
    extra, tag_report = "", None
    tagging = [n for n in chosen if n in TAGGING_RUNS]
    if tagging:
        args.runs = ",".join(tagging)
        tag_report = write_report(args, "catalogue-tagging", "upos: token accuracy %, chunk: span F1",
                                  run_suite(args, TAGGING_RUNS), [], None, baseline="tagging-single-task")
        extra = "\nCross-stitch and sluice on UPOS + chunking: see `catalogue-tagging.md`.\n"
    args.runs = ",".join(n for n in chosen if n in RUNS)
    if not args.runs:                          # only tagging runs asked for: leave catalogue.md alone
        return
    runs = run_suite(args, RUNS)
    missing = [n for n in args.runs.split(",") if n not in {r["name"] for r in runs}]
    if missing:
        extra += f"\nNot finished yet (no results in the work directory): {', '.join(missing)}.\n"
    report = write_report(args, "catalogue", "accuracy", runs, PUBLISHED, None,
                          targets(runs, tag_report["runs"] if tag_report else None) + structure_plots(args) + extra)
    if tagging:
        report["tagging"] = tag_report["runs"]
        (Path(args.results_dir) / "catalogue.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
