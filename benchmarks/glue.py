"""GLUE on CPU with MiniLM-L6 (``model.pretrained: minilm``): RTE, MRPC, CoLA, STS-B and SICK
(relatedness and entailment), with GLUE's own metrics (RTE accuracy, MRPC F1, CoLA MCC, STS-B and
SICK-R Pearson, SICK-E accuracy; the others in results.json). GLUE's dev files are the test sets;
each task selects its best step on examples drawn from its train file (SICK: on its trial set).

Runs (``--runs`` picks some):
  single-task   one fine-tuned copy of MiniLM per task (``single_task``, best step per task)
  mt-dnn        one shared MiniLM and a head per task (``hard_sharing``: MT-DNN, Liu et al. 2019)
  sp-lora       shared-private on the shared MiniLM: the base model (frozen) is the shared part, a LoRA
                adapter per task the private part (``model.adapter.per_task``); a run whose keys a
                checkout's config does not take is left out, and the report says so

Then the time of one training step of MT-DNN on one batch (32 pairs of ``--speed-length``
sub-tokens) under fp32 and under bf16 autocast, in this one process, with tokens/s (``--no-speed``
skips it). Each run's own time per step, tokens/s and peak memory are in its row.

    python benchmarks/glue.py --data-dir ../shared/data
    python benchmarks/glue.py --data-dir ../shared/data --runs mt-dnn trainer.precision=bf16
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (ROOT, run_suite, selected_runs, suite_argument_parser, training_step_seconds,  # noqa: E402
                    write_report)

CONFIG = "configs/glue/mt-dnn.yaml"
RUNS = {
    "single-task": (CONFIG, ["model.architecture=single_task", "trainer.select=per_task"],
                    {"encoder": "MiniLM-L6, fine-tuned", "sharing": "none"}),
    "mt-dnn": (CONFIG, [], {"encoder": "MiniLM-L6, fine-tuned", "sharing": "hard (MT-DNN)"}),
    "sp-lora": (CONFIG, ["model.architecture=shared_private", "model.adapter.type=lora", "model.adapter.per_task=true"],
                {"encoder": "MiniLM-L6, shared + per-task LoRA", "sharing": "shared-private"}),
}
# GLUE dev (our test sets), Liu et al. ACL 2019 Table 3 (published-results.md §3): BERT-large
# fine-tuned per task, and MT-DNN on BERT-large; first metric of each task (MRPC: F1; STS-B: Pearson)
SOURCE = "Liu, He, Chen, Gao ACL 2019 (MT-DNN) Table 3, GLUE dev, BERT-large"
PUBLISHED = [
    {"name": "BERT-large single-task", "source": SOURCE,
     "test": {"rte": 71.1, "mrpc": 89.5, "cola": 61.8, "stsb": 89.6}},
    {"name": "MT-DNN", "source": SOURCE, "test": {"rte": 83.4, "mrpc": 91.0, "cola": 63.5, "stsb": 90.7}},
]


def available(runs: dict, overrides: list[str]) -> tuple[dict, dict]:
    """``(runs whose config loads, name -> why the others cannot run here)``: a run whose overrides
    name keys this checkout's config does not take (``model.adapter`` before it lands) is left out."""
    sys.path.insert(0, str(ROOT / "src"))
    from polytask.config import load_config
    from polytask.errors import PolytaskError
    ok, missing = {}, {}
    for name, (config, extra, settings) in runs.items():
        try:
            load_config(ROOT / config, overrides=[*extra, *overrides])
        except PolytaskError as exc:
            missing[name] = str(exc).replace(f"{ROOT}/", "")      # no local paths in a report
            continue
        ok[name] = (config, extra, settings)
    return ok, missing


def step_times(overrides: list[str], batch: int = 32, length: int = 128, repeats: int = 3,
               threads: int = 1) -> list[dict]:
    """Seconds per MT-DNN training step (forward, backward, AdamW) on one batch of ``batch``
    cross-encoded pairs of ``length`` sub-tokens (RTE's task), fp32 against bf16 autocast (what
    ``trainer.precision: bf16`` does), alternately in this process at ``threads`` threads."""
    sys.path.insert(0, str(ROOT / "src"))
    import torch
    from polytask.config import load_config
    from polytask.data.batching import Encoded, collate_text
    from polytask.kinds import TaskSpec
    from polytask.models import build_model
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = load_config(ROOT / CONFIG, overrides=list(overrides))
    specs = [TaskSpec(t.name, "pair_classification", ("0", "1"), pair=True, cross_encoded=True) for t in cfg.tasks]
    from polytask.modules.pretrained import load_pretrained_vocab
    vocab = len(load_pretrained_vocab(cfg.model.pretrained, length))
    model = build_model(cfg, specs, vocab)
    low = min(1000, vocab // 2)                      # past the special tokens of a BERT-style vocabulary
    items = [Encoded(torch.randint(low, vocab, (length,)).tolist(), None, i % 2) for i in range(batch)]
    data = collate_text(specs[0].name, items)
    seconds = training_step_seconds(model, data, torch.optim.AdamW(model.parameters(), lr=5e-5), repeats)
    fp32, bf16 = seconds["fp32"], seconds["bf16"]
    tokens = batch * length
    return [{"name": "MT-DNN training step, bf16 autocast vs fp32 (same process, same batch)", "a": "bf16",
             "b": "fp32", "unit": "seconds per step", "ratio_a_over_b": round(bf16 / fp32, 3),
             "a_seconds": round(bf16, 4), "b_seconds": round(fp32, 4),
             "a_tokens_per_s": round(tokens / bf16), "b_tokens_per_s": round(tokens / fp32),
             "batch": batch, "length": length, "threads": threads}]


def add_costs(runs: list[dict]) -> None:
    """Seconds per training step of each run (its training time over its steps in this process)."""
    for r in runs:
        r["s_per_step"] = round(r["train_s"] / r["steps"], 3) if r.get("train_s") and r.get("steps") else None


def targets(runs: list[dict], missing: dict) -> str:
    """The issue's targets: multi-task beats single-task on the average and on RTE, CoLA MCC above
    30, STS-B Pearson at least 85; then the cost table and the runs left out."""
    by = {r["name"]: r for r in runs}
    lines = ["", "## Targets", ""]
    single = by.get("single-task")
    for name in ("mt-dnn", "sp-lora"):
        if name in by and single:
            r = by[name]
            for what, got, base in (("test average", r["test_avg"], single["test_avg"]),
                                    ("RTE accuracy", r["test"].get("rte"), single["test"].get("rte"))):
                if got is not None and base is not None:
                    lines.append(f"- {name} beats single-task on {what}: {'met' if got > base else 'missed'} "
                                 f"({got:.2f} vs {base:.2f}, {got - base:+.2f})")
    for r in runs:
        if "cola" in r["test"]:
            lines.append(f"- {r['name']}: CoLA MCC > 30: {'met' if r['test']['cola'] > 30 else 'missed'} "
                         f"({r['test']['cola']:.2f})")
        if "stsb" in r["test"]:
            lines.append(f"- {r['name']}: STS-B Pearson ≥ 85: {'met' if r['test']['stsb'] >= 85 else 'missed'} "
                         f"({r['test']['stsb']:.2f})")
    if runs:
        lines += ["", "| run | s per step | train tokens/s | peak RSS MB | steps |", "|---|---|---|---|---|"]
        lines += [f"| {r['name']} | {r['s_per_step']} | {r['train_tokens_per_s']} | {r['peak_rss_mb']} | {r['steps']} |"
                  for r in runs]
    for name, why in missing.items():
        lines.append(f"\n- {name}: not run: this checkout's config does not take its settings ({why})")
    return "\n".join(lines) + "\n" if len(lines) > 3 else ""


def main() -> None:
    ap = suite_argument_parser(__doc__, "benchmarks/work/glue")
    ap.add_argument("--speed-length", type=int, default=128, help="sub-tokens per pair in the step timing")
    ap.add_argument("--no-speed", action="store_true", help="skip the fp32/bf16 step timing")
    args = ap.parse_args()
    chosen = selected_runs(args, RUNS)
    runnable, missing = available({n: RUNS[n] for n in chosen}, list(args.overrides))
    for name, why in missing.items():
        print(f"[bench] {name}: left out: {why}", flush=True)
    args.runs = ",".join(runnable)
    runs = run_suite(args, runnable) if runnable else []
    add_costs(runs)
    speed = [] if args.no_speed else step_times(list(args.overrides), length=args.speed_length, threads=args.threads)
    write_report(args, "glue", "test metric per task (RTE acc, MRPC F1, CoLA MCC, STS-B/SICK-R Pearson, SICK-E acc)",
                 runs, PUBLISHED, speed, targets(runs, missing), fields={"left_out": missing})


if __name__ == "__main__":
    main()
