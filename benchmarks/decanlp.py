"""Mini-decathlon benchmark (decaNLP, McCann et al. 2018) on the data in ../shared/data: SQuAD
(split by article), FDU-MTL books sentiment, RTE, MRPC, CoLA, SICK, all as question answering.
Runs: MQAN fully joint (one batch of every task in turn), MQAN with anti-curriculum (SQuAD
first), the seq2seq baseline fully joint, and single-task MQAN per task; per-task metric (SQuAD
F1, exact match elsewhere) and the decathlon score (their sum); zero-shot sentiment on an FDU-MTL
domain held out of training, asked with label words never seen as answers ("good or bad?").

    python benchmarks/decanlp.py --data-dir ../shared/data            # the reduced CPU scale
    python benchmarks/decanlp.py --data-dir ../shared/data --scale full   # the config as written

The config as written (200-d words, 200 hidden units, 20,000 steps) takes about 2 s per step on
this 2-core CPU, eleven hours per run. ``--scale cpu`` (the default) keeps every part of the model
and the data but makes it smaller and shorter: 100-d words, 64 hidden units, 2 attention heads,
contexts cut at 150 tokens, batches of 16, 12,000 joint steps and 2000 steps per single-task run;
about 0.25 s per step. Fully joint training is decaNLP's: one batch of every task in turn
(``trainer.schedule: cyclic``), so each of the six tasks gets 2000 batches in a joint run, as many
as its single-task run. (A first CPU run used ``round_robin`` with exhaustion, 6000 steps, where a
task's share follows its size: sentiment got about 350 batches, fewer than single-task MQAN needs
before it leaves the label prior, about 500, and every classification task answered with one
constant word until step 4000.) The report says which
scale ran. Every run starts from skip-gram word2vec of the model's width, trained once per work dir
(``polytask data vectors``) on the tasks' training text and unlabelled books reviews, standing in
for decaNLP's GloVe: without pretrained vectors nothing could tell the model that "good" in an
unseen question means what "positive" meant in training.
"""
from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, ensure_vectors, run_suite, suite_argument_parser, write_report  # noqa: E402

BASE = "configs/decanlp/mini-decathlon.yaml"
TASKS = ("squad", "sentiment", "rte", "mrpc", "cola", "sick")
PUBLISHED = [{"name": "MQAN (full decaNLP, CoVe)", "source": "McCann et al. 2018 / decaNLP README (published-results.md)",
              "test_avg": None, "decathlon": "571.7-609.0", "test": {"sentiment": 86.4}},
             {"name": "S2S baseline (full decaNLP)", "source": "McCann et al. 2018", "decathlon": "513.6", "test": {}}]
ZERO_SHOT_DOMAIN = "music"
SCALES = {
    "cpu": {"model": ["model.embedding_dim=100", "model.encoder.hidden_dim=64", "model.encoder.num_heads=2",
                      "data.max_length=150", "data.batch_size=16"],
            "joint": ["trainer.max_steps=12000", "trainer.eval_every=1000"],
            "single": ["trainer.max_steps=2000", "trainer.eval_every=250"],
            "pretrain_steps": 1500},
    "full": {"model": [], "joint": [], "single": [], "pretrain_steps": 5000},
}


def single_task_configs(work: Path, overrides: list[str]) -> dict:
    raw = yaml.safe_load((ROOT / BASE).read_text())
    out = {}
    for task in raw["tasks"]:
        one = {**raw, "tasks": [task], "output_dir": f"runs/decanlp/single-{task['name']}"}
        path = work / f"single-{task['name']}.yaml"
        path.write_text(yaml.safe_dump(one, sort_keys=False))
        out[f"single-{task['name']}"] = (str(path), overrides, {"tasks": task["name"]})
    return out


def first_step_switches(run, task: str, pairs: list[tuple[str, str]]) -> tuple[list[dict], dict]:
    """``predict`` on (context, question) pairs, also returning the mean switches at the first
    answer word: γ (vocabulary vs copying) and λ (copying from the context vs the question). Read
    with forward hooks: the first decoder call of a greedy decode has a one-word answer so far."""
    from polytask.runner import predict
    net, seen, first = run.model.net, [], [False]

    def on_decoder(module, args, out):           # args[0]: the answer so far, (B, A, H)
        first[0] = args[0].shape[1] == 1

    def on_switches(module, args, out):          # out: the logits of γ and λ, (B, 2)
        if first[0]:
            seen.append(torch.sigmoid(out))
    hooks = [net.decoder.register_forward_hook(on_decoder), net.switches.register_forward_hook(on_switches)]
    try:
        answers = predict(run, task, pairs)
    finally:
        for h in hooks:
            h.remove()
    gamma, lam = torch.cat(seen).mean(0).tolist() if seen else (float("nan"), float("nan"))
    return answers, {"gamma_vocabulary": round(gamma, 3), "lambda_context": round(lam, 3)}


def zero_shot(args, run_name: str) -> dict:
    """Accuracy on a held-out FDU-MTL domain asked "Is this review good or bad?" (good = 1), with
    the mean first-word switches under that question and under the training question."""
    sys.path.insert(0, str(ROOT / "src"))
    from polytask.evaluation.qa_metrics import normalize_answer
    from polytask.runner import load_run
    run_dir = Path(args.work_dir) / run_name
    if not (run_dir / "results.json").is_file():
        return {}
    run = load_run(run_dir)
    lines = (Path(args.data_dir) / "fdu-mtl" / f"{ZERO_SHOT_DOMAIN}.task.test").read_text(errors="replace").splitlines()
    rows = [line.split("\t", 1) for line in lines if "\t" in line][: args.zero_shot_examples]
    question = "Is this review good or bad?"          # the question tokenizer splits off the "?"
    predicted, switches = first_step_switches(run, "sentiment", [(text, question) for _, text in rows])
    answers = [normalize_answer(a["answer"]) for a in predicted]
    right = sum(a == ("good" if label == "1" else "bad") for (label, _), a in zip(rows, answers))
    asked = next(t["question"] for t in yaml.safe_load((ROOT / BASE).read_text())["tasks"] if t["name"] == "sentiment")
    _, trained = first_step_switches(run, "sentiment", [(text, asked) for _, text in rows])
    return {"run": run_name, "domain": ZERO_SHOT_DOMAIN, "question": question, "examples": len(rows),
            "accuracy": 100.0 * right / max(1, len(rows)),
            "answered_with_new_words": sum(a in ("good", "bad") for a in answers),
            "answers": dict(Counter(answers).most_common(5)),
            "switches": switches, "trained_question": asked, "switches_trained_question": trained}


def targets(runs: list[dict], shot: dict, single: str) -> str:
    """The three targets, each met or missed: MQAN beats seq2seq on every task; each multitask
    MQAN within 2 points of the single-task runs on every task; zero-shot sentiment at least 75%."""
    by = {r["name"]: r for r in runs}
    lines = ["", "Targets:"]
    mqan, s2s = by.get("mqan-joint"), by.get("seq2seq-joint")
    if mqan and s2s:
        margins = {t: mqan["test"][t] - s2s["test"][t] for t in mqan["test"] if t in s2s["test"]}
        lost = [t for t, m in margins.items() if m <= 0]
        lines.append(f"- MQAN (fully joint) beats the seq2seq baseline on every task: "
                     f"{'missed (' + ', '.join(lost) + ')' if lost else 'met'}; margins "
                     + ", ".join(f"{t} {m:+.2f}" for t, m in margins.items()))
    for name in ("mqan-joint", "mqan-anti-curriculum"):
        if name in by and single in by:
            gaps = {t: by[name]["test"][t] - by[single]["test"][t] for t in by[name]["test"] if t in by[single]["test"]}
            far = [t for t, g in gaps.items() if g < -2.0]
            lines.append(f"- {name} within 2 points of single-task on every task: "
                         f"{'missed (' + ', '.join(far) + ')' if far else 'met'}; "
                         + ", ".join(f"{t} {g:+.2f}" for t, g in gaps.items()))
    if shot:
        lines.append(f"- zero-shot sentiment at least 75%: {'met' if shot['accuracy'] >= 75 else 'missed'} "
                     f"({shot['accuracy']:.1f}%)")
    return "\n".join(lines) + "\n" if len(lines) > 2 else ""


def main() -> None:
    ap = suite_argument_parser(__doc__, "benchmarks/work/decanlp")
    ap.add_argument("--scale", choices=sorted(SCALES), default="cpu",
                    help="cpu: the reduced CPU setting (default); full: the config as written")
    ap.add_argument("--pretrain-steps", type=int, default=0,
                    help="anti-curriculum: SQuAD-only steps (default: 1500 at cpu scale, 5000 at full)")
    ap.add_argument("--zero-shot-examples", type=int, default=400)
    ap.add_argument("--vector-epochs", type=int, default=10, help="word2vec epochs over the training text")
    args = ap.parse_args()
    Path(args.work_dir).mkdir(parents=True, exist_ok=True)
    scale = SCALES[args.scale]
    pretrain = args.pretrain_steps or scale["pretrain_steps"]
    # word vectors, as decaNLP starts from GloVe: skip-gram word2vec on the tasks' training text and
    # unlabelled books reviews (no dev, no test, nothing of the zero-shot domain), at the model's size
    sys.path.insert(0, str(ROOT / "src"))
    from polytask.config import load_config
    scaled = load_config(ROOT / BASE, overrides=[*scale["model"], *args.overrides])
    dim = scaled.model.embedding_dim
    name = f"decathlon-word2vec-{dim}d.txt"
    if args.only_report:
        path = str((Path(args.work_dir) / name).resolve())
    else:
        path = ensure_vectors(args, BASE, name, dim, epochs=args.vector_epochs)
    vectors = [f"data.vectors={path}"]
    joint, label = [*scale["model"], *vectors, *scale["joint"]], {"scale": args.scale}
    runs = {
        "mqan-joint": (BASE, joint, {"model": "mqan", "schedule": "cyclic (one batch per task in turn)", **label}),
        "mqan-anti-curriculum": (BASE, [*joint, "trainer.pretrain_tasks=[squad]", f"trainer.pretrain_steps={pretrain}"],
                                 {"model": "mqan", "schedule": f"SQuAD only for {pretrain} steps, then cyclic",
                                  **label}),
        "seq2seq-joint": (BASE, [*joint, "model.architecture=seq2seq"], {"model": "seq2seq", **label}),
        **single_task_configs(Path(args.work_dir), [*scale["model"], *vectors, *scale["single"]]),
    }
    results = run_suite(args, runs)
    for r in results:   # the report names the vectors file by its place, not this machine's path
        r["overrides"] = [f"data.vectors=<work-dir>/{name}" if o == vectors[0] else o for o in r["overrides"]]
    for r in results:
        r["decathlon_score"] = round(sum(r["test"].values()), 2)
    singles = [r for r in results if r["name"].startswith("single-")]
    single = {t: v for r in singles for t, v in r["test"].items()}
    baseline = "single-task (per-task runs)"
    if single:
        if len(single) < len(TASKS):      # say so: its average and score cover the finished tasks only
            baseline += f", {len(single)} of {len(TASKS)} tasks so far"
        dev = {t: v for r in singles for t, v in r["dev"].items()}
        train_s = sum(r["train_s"] for r in singles)   # the runs' tokens over their summed training time
        tokens = sum(r["train_tokens_per_s"] * r["train_s"] for r in singles)
        results.append({"name": baseline, "architecture": "mqan", "config": BASE, "settings": {},
                        "test": single, "dev": dev, "test_avg": sum(single.values()) / len(single),
                        "dev_avg": sum(dev.values()) / max(len(dev), 1), "seeds": [1],
                        "wall_s": sum(r["wall_s"] for r in singles), "train_s": round(train_s, 1),
                        "train_tokens_per_s": round(tokens / train_s) if train_s else 0,
                        "peak_rss_mb": max(r["peak_rss_mb"] for r in singles),
                        "params": sum(r["params"] for r in singles), "steps": sum(r["steps"] for r in singles),
                        "decathlon_score": round(sum(single.values()), 2)})
    shot = zero_shot(args, "mqan-joint")
    if args.scale == "cpu":
        what = (f"the reduced CPU setting: {', '.join(scale['model'] + scale['joint'])}; "
                f"single-task runs {', '.join(scale['single'])}")
    else:
        what = f"the config as written, {BASE}"
    extra = f"\nScale: **{args.scale}** ({what}).\n"
    extra += "\n| run | decathlon score (sum of task metrics) |\n|---|---|\n" + "".join(
        f"| {r['name']} | {r['decathlon_score']} |\n" for r in results) + "".join(
        f"| {p['name']} (published, over decaNLP's ten tasks: not comparable) | {p['decathlon']} |\n" for p in PUBLISHED)
    if shot:
        extra += (f"\nZero-shot: {shot['domain']} reviews (held out), asked \"{shot['question']}\" "
                  f"(answer words never seen in training): {shot['accuracy']:.1f}% accuracy on {shot['examples']} "
                  f"test reviews; {shot['answered_with_new_words']} answers used the new words "
                  f"(most frequent answers: {shot['answers']}). Mean switches at the first answer word: "
                  f"γ (vocabulary) {shot['switches']['gamma_vocabulary']}, λ (context rather than question) "
                  f"{shot['switches']['lambda_context']}; under the training question \"{shot['trained_question']}\" on the "
                  f"same reviews, γ {shot['switches_trained_question']['gamma_vocabulary']}, "
                  f"λ {shot['switches_trained_question']['lambda_context']}.\n")
    batch = scaled.data.batch_size
    extra += "\n| run | training examples/s (batches of " + str(batch) + ") |\n|---|---|\n" + "".join(
        f"| {r['name']} | {r['steps'] * batch / r['train_s']:.1f} |\n" for r in results if r.get("train_s"))
    extra += targets(results, shot, baseline)
    report = write_report(args, "decanlp", "squad: F1; other tasks: exact match", results, PUBLISHED, None, extra,
                          baseline=baseline)
    report["zero_shot"] = shot
    (Path(args.results_dir) / "decanlp.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
