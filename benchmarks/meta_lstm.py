"""Meta-MTL benchmark: accuracy on the 16 FDU-MTL domains beside single-task and hard sharing, the
transfer experiment (Meta-LSTM trained on 15 domains, frozen, then the 16th trained on it, against
that domain trained alone), and training speed of the Meta-LSTM against ``torch.nn.LSTM``.

    python benchmarks/meta_lstm.py --data-dir ../shared/data

Writes ``benchmarks/results/meta-lstm.md`` and ``.json``. Finished runs are reused.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, best_seconds, head_commit, run_polytask, run_suite, suite_argument_parser, write_report  # noqa: E402

FDU = "configs/fdu-mtl/"
RUNS = {
    "single-task": (FDU + "single-task.yaml", [], {"encoder": "bilstm"}),
    "fs-mtl": (FDU + "hard-sharing.yaml", [], {"encoder": "bilstm"}),
    "asp-mtl": (FDU + "adversarial-shared-private.yaml", [], {"encoder": "bilstm"}),
    "meta-lstm": (FDU + "meta-lstm.yaml", [], {"encoder": "meta-lstm"}),
}
PUBLISHED = [{"name": "ASP-MTL", "source": "Liu, Qiu, Huang ACL 2017 Table 2 (100 - error)", "test_avg": 86.1},
             {"name": "FS-MTL", "source": "Liu, Qiu, Huang ACL 2017 Table 2 (100 - error)", "test_avg": 84.7}]


def speed(batch: int = 32, length: int = 128, hidden: int = 128, dim: int = 200, repeats: int = 5) -> list[dict]:
    """Train tokens/s (forward + backward) in one process, same batch, lengths and sizes: one
    Meta-LSTM direction against ``nn.LSTM`` and against the straightforward implementation (W(z_t)
    built per example each step, plain autograd), and both directions against a bidirectional
    ``nn.LSTM``. Each figure is the best of ``repeats`` timed calls after a warm-up call (the reference: one
    call, it is slow enough)."""
    sys.path.insert(0, str(ROOT / "src"))
    import torch
    from polytask.models.meta_lstm import BasicLSTM, MetaLSTM, meta_lstm_passes, reference_meta_lstm
    torch.manual_seed(0)
    x = torch.randn(batch, length, dim)
    metas = [MetaLSTM(dim, hidden, 40, 40) for _ in range(2)]
    basics = [BasicLSTM(dim, hidden, 40, 40) for _ in range(2)]
    lstm = torch.nn.LSTM(dim, hidden, batch_first=True)
    bilstm = torch.nn.LSTM(dim, hidden, batch_first=True, bidirectional=True)

    def rate(fn, n: int = repeats, warm_up: bool = True) -> float:
        return batch * length / best_seconds(fn, n, warm_up)

    fast = rate(lambda: meta_lstm_passes([x], metas[:1], basics[:1])[0].sum().backward())
    torch_lstm = rate(lambda: lstm(x)[0].sum().backward())
    reference = rate(lambda: reference_meta_lstm(x, metas[0], basics[0]).sum().backward(), 1, False)
    fast_bi = rate(lambda: sum(h.sum() for h in meta_lstm_passes([x, x], metas, basics)).backward())
    torch_bi = rate(lambda: bilstm(x)[0].sum().backward())
    common = {"unit": "train tokens/s", "batch": batch, "length": length, "hidden": hidden, "input": dim,
              "threads": torch.get_num_threads()}
    pair = lambda name, a, b, ra, rb: {"name": name, "a": a, "b": b, "ratio_a_over_b": round(ra / rb, 3),  # noqa: E731
                                       "a_tokens_per_s": round(ra), "b_tokens_per_s": round(rb), **common}
    threads = torch.get_num_threads()
    rows = [pair(f"meta-lstm vs nn.LSTM (one direction, {threads} threads)", "meta_lstm", "nn.LSTM", fast, torch_lstm),
            pair(f"meta-lstm vs straightforward implementation ({threads} threads)", "meta_lstm",
                 "reference_meta_lstm", fast, reference),
            pair(f"bidirectional meta-lstm vs bidirectional nn.LSTM ({threads} threads)", "meta_lstm (2 directions)",
                 "nn.LSTM (bidirectional)", fast_bi, torch_bi)]
    if threads > 1:          # the small per-step products gain less from more threads than nn.LSTM does
        torch.set_num_threads(1)
        try:
            one = [rate(lambda: meta_lstm_passes([x], metas[:1], basics[:1])[0].sum().backward()),
                   rate(lambda: lstm(x)[0].sum().backward())]
        finally:
            torch.set_num_threads(threads)
        common["threads"] = 1
        rows.append(pair("meta-lstm vs nn.LSTM (one direction, 1 thread)", "meta_lstm", "nn.LSTM", *one))
    return rows


def transfer(args) -> list[dict]:
    """Meta-LSTM on 15 domains -> frozen -> video; against video alone."""
    data_dir = str(Path(args.data_dir).resolve())
    source = run_polytask("meta-lstm-15", FDU + "meta-lstm-15.yaml", list(args.overrides), data_dir,
                          args.work_dir, args.threads)
    alone = run_polytask("video-alone", FDU + "video-alone.yaml", list(args.overrides), data_dir,
                         args.work_dir, args.threads)
    out = Path(args.work_dir) / "video-transfer"
    if not (out / "results.json").is_file():
        commit_file = Path(args.work_dir) / "video-transfer.commit"
        if not commit_file.is_file():
            commit_file.write_text(head_commit() + "\n")
        cmd = [sys.executable, "-m", "polytask.cli", "transfer", str(Path(args.work_dir) / "meta-lstm-15"),
               "--task", FDU + "transfer-video.yaml", "--data-dir", data_dir, "--output-dir", str(out),
               "--quiet", f"trainer.num_threads={args.threads}"]
        subprocess.run(cmd, check=True, cwd=ROOT, env={**__import__("os").environ, "PYTHONPATH": str(ROOT / "src")})
    moved = json.loads((out / "results.json").read_text())
    return [{"name": "video: transfer from 15 domains (frozen Meta-LSTM)", "test": moved["test"]["video"],
             "wall_s": round(moved["wall_seconds"], 1), "source_test_avg": source["test_avg"]},
            {"name": "video: trained alone from scratch", "test": alone["test"]["video"],
             "wall_s": round(alone["wall_seconds"], 1)}]


def targets(runs: list[dict], speed_rows: list[dict], transfer_rows: list[dict]) -> str:
    """The issue's targets, each stated as met or missed from the figures above."""
    by = {r["name"]: r for r in runs}
    lines = ["", "## Targets (issue 4)", ""]
    meta = by.get("meta-lstm")
    if meta:
        lines.append(f"- Meta-LSTM average ≥ 88.0: {'met' if meta['test_avg'] >= 88.0 else 'missed'} "
                     f"({meta['test_avg']:.2f})")
        for other in ("fs-mtl", "asp-mtl"):
            if other in by:
                ok = meta["test_avg"] > by[other]["test_avg"]
                lines.append(f"- above the project's own {other} ({by[other]['test_avg']:.2f}): {'met' if ok else 'missed'}")
    for s in speed_rows:
        goal = 5.0 if s["b"] == "reference_meta_lstm" else 0.5
        lines.append(f"- {s['name']} ≥ {goal}×: {'met' if s['ratio_a_over_b'] >= goal else 'missed'} "
                     f"({s['ratio_a_over_b']}×, {s['a_tokens_per_s']} vs {s['b_tokens_per_s']} tokens/s)")
    if len(transfer_rows) == 2:
        moved, alone = transfer_rows[0]["test"], transfer_rows[1]["test"]
        lines.append(f"- transfer to the held-out domain beats training it alone: {'yes' if moved > alone else 'no'} "
                     f"({moved:.2f} vs {alone:.2f})")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = suite_argument_parser(__doc__, "benchmarks/work/meta-lstm")
    ap.add_argument("--no-transfer", action="store_true")
    args = ap.parse_args()
    runs = run_suite(args, RUNS)
    finished = all((Path(args.work_dir) / n / "results.json").is_file()
                   for n in ("meta-lstm-15", "video-alone", "video-transfer"))
    rows = [] if args.no_transfer or (args.only_report and not finished) else transfer(args)
    extra = "\n## Transfer to a held-out domain (video)\n\n| run | video test acc | wall s |\n|---|---|---|\n" + \
        "".join(f"| {r['name']} | {r['test']:.2f} | {r['wall_s']:.0f} |\n" for r in rows) if rows else ""
    speed_rows = speed()
    report = write_report(args, "meta-lstm", "accuracy", runs, PUBLISHED, speed_rows,
                          extra + targets(runs, speed_rows, rows))
    if rows:
        report["transfer"] = rows
        (Path(args.results_dir) / "meta-lstm.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
