"""Mini-decathlon benchmark (decaNLP, McCann et al. 2018) on the data in ../shared/data: SQuAD
(split by article), FDU-MTL books sentiment, RTE, MRPC, CoLA, SICK, all as question answering.
Runs: MQAN fully joint (one batch of every task in turn; seeds 1 and 2), MQAN with
anti-curriculum (SQuAD first), the seq2seq baseline fully joint, single-task MQAN per task, a
single-task BiLSTM classifier on CoLA and RTE (what the data allows a classifier), and probes
that change one thing of a single-task run (class balance, one fixed question, learning rate).
Per-task metric (SQuAD F1, CoLA MCC × 100, exact match elsewhere) and the decathlon score (their
sum).

Every classification task names its options in the question and is trained with several
templates and answer-word sets (configs/decanlp/mini-decathlon.yaml), so that answering means
pointing into the question. Zero-shot, on each joint run: reviews of the music domain (held out
of training) asked with answer words never answered with in training ("terrible or great",
"thumbs down or thumbs up") and, for reference, with the trained ones; and a task type never
trained, SICK relatedness (related: score >= 3), asked "{b} -- related or unrelated?". Every
question is asked with its options in both orders; the mean switches at the first answer word
(vocabulary / context / question) are reported.

    python benchmarks/decanlp.py --data-dir ../shared/data            # the reduced CPU scale
    python benchmarks/decanlp.py --data-dir ../shared/data --scale full   # the config as written

The config as written (200-d words, 200 hidden units, 20,000 steps) takes about 2 s per step on
this 2-core CPU, eleven hours per run. ``--scale cpu`` (the default) keeps every part of the model
and the data but makes it smaller and shorter: 100-d words, 64 hidden units, 2 attention heads,
contexts cut at 150 tokens, batches of 16, 12,000 joint steps and 2000 steps per single-task run;
about 0.25 s per step. Fully joint training is decaNLP's: one batch of every task in turn
(``trainer.schedule: cyclic``), so each of the six tasks gets 2000 batches in a joint run, as many
as its single-task run. ``--pretrained minilm`` adds a joint run whose words also read MiniLM-L6's
states (frozen), as decaNLP's CoVe. (A first CPU run used ``round_robin`` with exhaustion, 6000 steps, where a
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
import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import Optional

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
# the sentiment task's training answer words (its config's first set first) and words it never answers with
TRAINED_SENTIMENT = [("negative", "positive"), ("bad", "good"), ("poor", "excellent"), ("awful", "wonderful"),
                     ("disappointing", "enjoyable"), ("dislike", "like"), ("unhappy", "happy"), ("worse", "better")]
ZERO_SHOT_WORDS = [("terrible", "great"), ("thumbs down", "thumbs up")]
RELATED_AT = 3.0
SEEDS = (1, 2)              # the joint runs' seeds
JOINT_RUNS = ("mqan-joint", "mqan-joint-s2")
CLASSIFIER_TASKS = ("cola", "rte")
SCALES = {
    "cpu": {"model": ["model.embedding_dim=100", "model.encoder.hidden_dim=64", "model.encoder.num_heads=2",
                      "data.max_length=150", "data.batch_size=16"],
            "joint": ["trainer.max_steps=12000", "trainer.eval_every=1000"],
            "single": ["trainer.max_steps=2000", "trainer.eval_every=250"],
            "pretrain_steps": 1500},
    "full": {"model": [], "joint": [], "single": [], "pretrain_steps": 5000},
}


def single_task_configs(work: Path, overrides: list[str], only: tuple[str, ...] = (),
                        change: Optional[dict] = None, settings: Optional[dict] = None,
                        name: Optional[str] = None) -> dict:
    """One single-task MQAN config per task (``only``: these tasks), named ``single-<task>`` (or
    ``name``), each task's settings updated with ``change``."""
    raw = yaml.safe_load((ROOT / BASE).read_text())
    out = {}
    for task in raw["tasks"]:
        if only and task["name"] not in only:
            continue
        task = {**task, **(change or {})}
        run = name or f"single-{task['name']}"
        one = {**raw, "tasks": [task], "output_dir": f"runs/decanlp/{run}"}
        path = work / f"{run}.yaml"
        path.write_text(yaml.safe_dump(one, sort_keys=False))
        out[run] = (str(path), overrides, {"tasks": task["name"], **(settings or {})})
    return out


# Why CoLA and RTE do not learn at this scale (issue "decaNLP that answers new questions"): each
# probe changes one thing of a single-task run; the report sets it beside the run it changes.
PROBES = [  # (run, task, task settings changed, overrides, the run it changes, what)
    ("probe-cola-balanced", "cola", {"balance_labels": True}, [], "single-cola",
     "single-task MQAN, rarer label repeated (balance_labels)"),
    ("probe-cola-one-question", "cola", {"question": "Is this sentence {labels}?",
                                         "answer_words": {"1": "acceptable", "0": "unacceptable"}}, [], "single-cola",
     "single-task MQAN, one question and one answer-word set"),
    ("probe-rte-lr", "rte", {}, ["trainer.lr=0.0003"], "single-rte", "single-task MQAN, learning rate 3e-4"),
    ("probe-rte-one-question", "rte", {"question": "{b} -- {labels}?", "answer_words": {
        "entailment": "entailment", "not_entailment": "not_entailment"}}, [], "single-rte",
     "single-task MQAN, one question and one answer-word set"),
]


# Does answer-word variety drive zero-shot answering? One joint run (seed 1) whose sentiment task
# trains with these sets beside the config's eight: more single words, and answers of two words
# (the held-out "thumbs down or thumbs up" needs one), none of them a held-out word.
WIDE_SENTIMENT = [("horrible", "fantastic"), ("boring", "exciting"), ("hate", "love"), ("lousy", "superb"),
                  ("dull", "brilliant"), ("mediocre", "outstanding"), ("weak", "strong"), ("sad", "glad"),
                  ("one star", "five stars"), ("not recommended", "recommended"), ("not good", "very good"),
                  ("bad book", "good book"), ("waste of money", "worth reading")]
WIDE_RUN = "mqan-joint-wide-answers"


def wide_answers_config(work: Path) -> str:
    """The base config, its sentiment task trained with :data:`WIDE_SENTIMENT` as well."""
    raw = yaml.safe_load((ROOT / BASE).read_text())
    for task in raw["tasks"]:
        if task["name"] == "sentiment":
            task["answer_words"] = [*task["answer_words"], *({"0": a, "1": b} for a, b in WIDE_SENTIMENT)]
    raw["output_dir"] = f"runs/decanlp/{WIDE_RUN}"
    path = work / f"{WIDE_RUN}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return str(path)


def probe_configs(work: Path, overrides: list[str]) -> dict:
    out = {}
    for name, task, change, extra, _, what in PROBES:
        out.update(single_task_configs(work, overrides + extra, (task,), change, {"probe": what}, name))
    return out


def probes_markdown(results: list[dict]) -> str:
    by = {r["name"]: r for r in results}
    rows = []
    for name, task, _, _, base, what in PROBES:
        if name in by:
            ref = f"{by[base]['test'][task]:.2f}" if base in by else "–"
            rows.append(f"| {task} | {what} | {by[name]['test'][task]:.2f} | {ref} ({base}) | "
                        f"{by[name]['dev'][task]:.2f} |")
    if not rows:
        return ""
    return ("\nProbes (one change each to a single-task run; test, CoLA MCC × 100; dev beside):\n\n"
            "| task | probe | test | without the change | dev |\n|---|---|---|---|---|\n" + "\n".join(rows) + "\n")


def answers_and_switches(run, task: str, pairs: list[tuple[str, str]]) -> tuple[list[str], dict]:
    """``predict`` on (context, question) pairs: the normalised answers and the mean switches at
    the first answer word, γ (vocabulary vs copying) and λ (copying from the context vs the question)."""
    from polytask.evaluation.qa_metrics import normalize_answer
    from polytask.models.mqan import first_answer_switches
    from polytask.runner import predict
    with first_answer_switches(run.model.net) as seen:
        answers = [normalize_answer(a["answer"]) for a in predict(run, task, pairs)]
    gamma, lam = torch.cat(seen).mean(0).tolist() if seen else (float("nan"), float("nan"))
    return answers, {"gamma_vocabulary": round(gamma, 3), "lambda_context": round(lam, 3),
                     "from_question": round((1 - gamma) * (1 - lam), 3)}


def ask_both_orders(run, task: str, rows: list[tuple[int, str, str]], template: str, words: tuple[str, ...]) -> dict:
    """Accuracy of answers to ``template`` with the options ``words`` (label i -> words[i]) named
    in the order written and reversed, on ``rows`` (gold label index, context, second text or "");
    the mean switches at the first answer word; how often an answer was one of the options."""
    from polytask.data.qa import options_text
    out, right, options, switches = {}, 0, 0, []
    for order in (list(words), list(reversed(words))):
        question = template.replace("{labels}", options_text(order))
        answers, sw = answers_and_switches(run, task, [(c, question.replace("{b}", b)) for _, c, b in rows])
        right += sum(a == words[y] for (y, _, _), a in zip(rows, answers))
        options += sum(a in words for a in answers)
        switches.append(sw)
        out.setdefault("answers", Counter()).update(answers)
    n = 2 * max(1, len(rows))
    gold = [y for y, _, _ in rows]
    return {"question": template.replace("{labels}", options_text(words)), "words": list(words),
            "accuracy": round(100.0 * right / n, 2), "answered_with_an_option": round(100.0 * options / n, 2),
            "majority": round(100.0 * max(Counter(gold).values()) / max(1, len(gold)), 2),
            "switches": {k: round(sum(s[k] for s in switches) / 2, 3) for k in switches[0]},
            "answers": dict(out["answers"].most_common(5))}


def zero_shot(args, run_name: str) -> dict:
    """The zero-shot protocol on a joint run: reviews of a domain held out of training (music),
    asked with answer words never seen in training (and, for reference, with the trained ones);
    and a task type never trained, SICK relatedness (related when the score is at least
    :data:`RELATED_AT`, the middle of its 1-5 scale), asked "{b} -- related or unrelated?". Every
    question is asked with its options in both orders."""
    sys.path.insert(0, str(ROOT / "src"))
    from polytask.runner import load_run
    run_dir = Path(args.work_dir) / run_name
    if not (run_dir / "results.json").is_file():
        return {}
    # kept beside the run: asking thousands of questions takes minutes, and the run does not change
    cache = Path(args.work_dir) / f"{run_name}.zero-shot.json"
    key = {"examples": args.zero_shot_examples, "results": (run_dir / "results.json").read_text()}
    if cache.is_file():
        saved = json.loads(cache.read_text())
        if saved.get("key") == key:
            return saved["zero_shot"]
    out = ask_zero_shot(args, run_name, load_run(run_dir))
    cache.write_text(json.dumps({"key": key, "zero_shot": out}))
    return out


def ask_zero_shot(args, run_name: str, run) -> dict:
    lines = (Path(args.data_dir) / "fdu-mtl" / f"{ZERO_SHOT_DOMAIN}.task.test").read_text(errors="replace").splitlines()
    reviews = [(int(label), text, "") for label, text in (line.split("\t", 1) for line in lines if "\t" in line)]
    reviews = reviews[: args.zero_shot_examples]
    template = "Is this review {labels}?"           # the sentiment task's evaluation template
    sentiment = [{"kind": "held-out words" if words not in TRAINED_SENTIMENT else "trained words",
                  **ask_both_orders(run, "sentiment", reviews, template, words)}
                 for words in (*ZERO_SHOT_WORDS, TRAINED_SENTIMENT[0])]
    import csv
    with open(Path(args.data_dir) / "sick" / "SICK_test_annotated.txt", encoding="utf-8") as f:
        sick = [(0 if float(r["relatedness_score"]) >= RELATED_AT else 1, r["sentence_A"], r["sentence_B"])
                for r in csv.DictReader(f, delimiter="\t")][: args.zero_shot_examples]
    task = ask_both_orders(run, "sick", sick, "{b} -- {labels}?", ("related", "unrelated"))
    return {"run": run_name, "domain": ZERO_SHOT_DOMAIN, "examples": len(reviews), "sentiment": sentiment,
            "held_out_task": {"name": f"SICK relatedness (related: score >= {RELATED_AT})", "examples": len(sick),
                              **task}}


def classifier_configs(work: Path, overrides: list[str]) -> dict:
    """CoLA and RTE as plain classification by a single-task BiLSTM (max pooling) on the same
    files, vectors and steps: what this data allows a classifier, beside what MQAN makes of it."""
    raw = yaml.safe_load((ROOT / BASE).read_text())
    out = {}
    for task in raw["tasks"]:
        if task["name"] not in CLASSIFIER_TASKS:
            continue
        plain = {k: v for k, v in task.items() if k not in ("question", "answer_words", "metric")}
        plain["type"] = "pair_classification" if "text_b_column" in task else "classification"
        plain["metric"] = ["mcc", "accuracy"] if task["name"] == "cola" else ["accuracy"]
        one = {"seed": raw["seed"], "output_dir": f"runs/decanlp/classifier-{task['name']}",
               "task_defaults": {k: v for k, v in raw["task_defaults"].items() if k != "type"}, "tasks": [plain],
               "data": {**raw["data"], "max_length": 150},
               "model": {"architecture": "single_task", "embedding_dim": 100, "dropout": 0.3, "pooling": "max",
                         "encoder": {"type": "bilstm", "hidden_dim": 64, "num_layers": 1}},
               "trainer": {**raw["trainer"], "schedule": "uniform"}}
        path = work / f"classifier-{task['name']}.yaml"
        path.write_text(yaml.safe_dump(one, sort_keys=False))
        out[f"classifier-{task['name']}"] = (str(path), overrides, {"tasks": task["name"], "model": "BiLSTM classifier"})
    return out


def mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
    return f"{mean:.2f} ± {std:.2f}" if len(values) > 1 else f"{mean:.2f} (one seed)"


def seeds_table(results: list[dict]) -> str:
    """The joint MQAN runs over seeds: per task and decathlon score, mean ± std (n - 1)."""
    joint = [r for r in results if r["name"] in JOINT_RUNS]
    if not joint:
        return ""
    tasks = list(joint[0]["test"])
    head = "| | " + " | ".join(tasks) + " | decathlon score |\n|" + "---|" * (len(tasks) + 2) + "\n"
    row = (f"| MQAN fully joint, seeds {', '.join(r['name'] for r in joint)} | "
           + " | ".join(mean_std([r["test"][t] for r in joint if t in r["test"]]) for t in tasks)
           + f" | {mean_std([r['decathlon_score'] for r in joint])} |\n")
    return "\nMQAN fully joint over seeds (mean ± std):\n\n" + head + row


def zero_shot_markdown(shots: list[dict]) -> str:
    if not shots:
        return ""
    lines = ["", f"Zero-shot ({shots[0]['examples']} test reviews of the held-out {shots[0]['domain']} domain; "
             "every question asked with its options in both orders; switches are means at the first answer "
             "word: γ vocabulary rather than copying, λ the context rather than the question, from question "
             "= (1 − γ)(1 − λ)):", "",
             "| run | question | words | accuracy | majority | answered with an option | γ | λ | from question |",
             "|---|---|---|---|---|---|---|---|---|"]
    for shot in shots:
        for row in [*shot["sentiment"], {"kind": shot["held_out_task"]["name"], **shot["held_out_task"]}]:
            sw = row["switches"]
            lines.append(f"| {shot['run']} | {row['question']} | {row['kind']} | {row['accuracy']:.2f} | "
                         f"{row['majority']:.2f} | {row['answered_with_an_option']:.2f} | {sw['gamma_vocabulary']} | "
                         f"{sw['lambda_context']} | {sw['from_question']} |")
    return "\n".join(lines) + "\n"


def wide_answers_markdown(wide: dict, shots: list[dict]) -> str:
    """The wider-answer-sets run's zero-shot rows beside the same questions to the joint runs (one
    seed against the spread of two: a difference inside that spread is not a result)."""
    if not wide:
        return ""
    lines = ["", f"More answer-word sets ({WIDE_RUN}, seed {SEEDS[0]}: sentiment trained with "
             f"{len(TRAINED_SENTIMENT) + len(WIDE_SENTIMENT)} sets, {len(WIDE_SENTIMENT)} of them beside the "
             f"config's {len(TRAINED_SENTIMENT)}), the same "
             "zero-shot questions; the joint runs' accuracies beside (seeds " + ", ".join(map(str, SEEDS)) + "):", "",
             "| question | accuracy | joint runs | answered with an option | from question | most frequent answers |",
             "|---|---|---|---|---|---|"]
    for row in [*wide["sentiment"], {"kind": wide["held_out_task"]["name"], **wide["held_out_task"]}]:
        same = [r["accuracy"] for s in shots
                for r in [*s["sentiment"], s["held_out_task"]]
                if r["question"] == row["question"]]
        top = "; ".join(f"{a[:30]} ({n})" for a, n in list(row["answers"].items())[:3])
        lines.append(f"| {row['question']} | {row['accuracy']:.2f} | {' / '.join(f'{v:.2f}' for v in same) or '–'} | "
                     f"{row['answered_with_an_option']:.2f} | {row['switches']['from_question']} | {top} |")
    return "\n".join(lines) + "\n"


def targets(runs: list[dict], shots: list[dict], single: str) -> str:
    """The issue's targets on the seed means, each met or missed."""
    by = {r["name"]: r for r in runs}
    joint = [by[n] for n in JOINT_RUNS if n in by]
    lines = ["", "Targets (means over the joint MQAN seeds):"]

    def mean(xs):
        return sum(xs) / len(xs) if xs else float("nan")
    if shots:
        held = mean([r["accuracy"] for s in shots for r in s["sentiment"] if r["kind"] == "held-out words"])
        lines.append(f"- zero-shot sentiment on held-out words and a held-out domain at least 75%: "
                     f"{'met' if held >= 75 else 'missed'} ({held:.2f}%)")
        task = mean([s["held_out_task"]["accuracy"] for s in shots])
        major = shots[0]["held_out_task"]["majority"]
        lines.append(f"- held-out task (SICK relatedness) above the majority class: "
                     f"{'met' if task > major else 'missed'} ({task:.2f}% vs {major:.2f}%)")
    if joint:
        cola, rte = mean([r["test"]["cola"] for r in joint]), mean([r["test"]["rte"] for r in joint])
        lines.append(f"- CoLA above the majority class (MCC > 0): {'met' if cola > 0 else 'missed'} (MCC {cola / 100:.3f})")
        lines.append(f"- RTE at least 55: {'met' if rte >= 55 else 'missed'} ({rte:.2f})")
        score = mean([r["decathlon_score"] for r in joint])
        if "seq2seq-joint" in by:
            s2s = by["seq2seq-joint"]["decathlon_score"]
            scores = [r["decathlon_score"] for r in joint]
            spread = statistics.stdev(scores) if len(scores) > 1 else None
            said = "" if spread is None else (
                f"; MQAN's seeds spread ± {spread:.2f}, seq2seq one seed: "
                + ("not distinguishable at this sample size" if abs(score - s2s) < 2 * spread
                   else "more than twice the seeds' spread"))
            lines.append(f"- MQAN's decathlon score above seq2seq's: {'met' if score > s2s else 'missed'} "
                         f"({score:.2f} vs {s2s:.2f}){said}")
        if single in by:
            ref = by[single]["decathlon_score"]
            lines.append(f"- MQAN's decathlon score within 5% of the single-task runs' sum: "
                         f"{'met' if score >= 0.95 * ref else 'missed'} ({score:.2f} vs {ref:.2f}, "
                         f"{100 * (score / ref - 1):+.1f}%)")
    return "\n".join(lines) + "\n" if len(lines) > 2 else ""


def main() -> None:
    ap = suite_argument_parser(__doc__, "benchmarks/work/decanlp")
    ap.add_argument("--scale", choices=sorted(SCALES), default="cpu",
                    help="cpu: the reduced CPU setting (default); full: the config as written")
    ap.add_argument("--pretrain-steps", type=int, default=0,
                    help="anti-curriculum: SQuAD-only steps (default: 1500 at cpu scale, 5000 at full)")
    ap.add_argument("--zero-shot-examples", type=int, default=400)
    ap.add_argument("--vector-epochs", type=int, default=10, help="word2vec epochs over the training text")
    ap.add_argument("--pretrained", default="",
                    help="also a fully joint MQAN run reading this pretrained encoder's word states, frozen "
                         "(e.g. minilm; model.pretrained): mqan-joint-pretrained")
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
        **{name: (BASE, [*joint, f"seed={seed}"], {"model": "mqan", "schedule": "cyclic (one batch per task in turn)",
                                                  "seed": seed, **label})
           for name, seed in zip(JOINT_RUNS, SEEDS)},
        "mqan-anti-curriculum": (BASE, [*joint, "trainer.pretrain_tasks=[squad]", f"trainer.pretrain_steps={pretrain}"],
                                 {"model": "mqan", "schedule": f"SQuAD only for {pretrain} steps, then cyclic",
                                  **label}),
        WIDE_RUN: (wide_answers_config(Path(args.work_dir)), [*joint, f"seed={SEEDS[0]}"],
                   {"model": "mqan", "schedule": "cyclic (one batch per task in turn)", "seed": SEEDS[0],
                    "answer_words": f"sentiment: {len(TRAINED_SENTIMENT) + len(WIDE_SENTIMENT)} sets (the "
                                    f"config's {len(TRAINED_SENTIMENT)} and {len(WIDE_SENTIMENT)} more, "
                                    f"{sum(' ' in a + b for a, b in WIDE_SENTIMENT)} of them two or more words)",
                    **label}),
        "seq2seq-joint": (BASE, [*joint, "model.architecture=seq2seq"], {"model": "seq2seq", **label}),
        **({"mqan-joint-pretrained": (BASE, [*joint, f"model.pretrained={args.pretrained}", "model.freeze=all"],
                                      {"model": f"mqan + {args.pretrained} (frozen)", **label})}
           if args.pretrained else {}),
        **single_task_configs(Path(args.work_dir), [*scale["model"], *vectors, *scale["single"]]),
        **classifier_configs(Path(args.work_dir), [*vectors, *scale["single"]]),
        **probe_configs(Path(args.work_dir), [*scale["model"], *vectors, *scale["single"]]),
    }
    results = run_suite(args, runs)
    for r in results:   # the report names the vectors file by its place, not this machine's path
        r["overrides"] = [f"data.vectors=<work-dir>/{name}" if o == vectors[0] else o for o in r["overrides"]]
    for r in results:
        r["decathlon_score"] = round(sum(r["test"].values()), 2)
        if r["name"] in JOINT_RUNS:
            r["seeds"] = [r["settings"]["seed"]]
    classifiers = [r for r in results if r["name"].startswith("classifier-")]
    probes = [r for r in results if r["name"].startswith("probe-")]
    results = [r for r in results if not r["name"].startswith(("classifier-", "probe-"))]
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
    shots = [shot for shot in (zero_shot(args, n) for n in JOINT_RUNS) if shot]
    wide = zero_shot(args, WIDE_RUN)
    if args.scale == "cpu":
        what = (f"the reduced CPU setting: {', '.join(scale['model'] + scale['joint'])}; "
                f"single-task runs {', '.join(scale['single'])}")
    else:
        what = f"the config as written, {BASE}"
    extra = f"\nScale: **{args.scale}** ({what}). CoLA: Matthews correlation × 100 (GLUE's metric).\n"
    extra += "\n| run | decathlon score (sum of task metrics) |\n|---|---|\n" + "".join(
        f"| {r['name']} | {r['decathlon_score']} |\n" for r in results) + "".join(
        f"| {p['name']} (published, over decaNLP's ten tasks: not comparable) | {p['decathlon']} |\n" for p in PUBLISHED)
    extra += seeds_table(results)
    if classifiers:
        extra += ("\nWhat the data allows a plain classifier (a single-task BiLSTM with max pooling, the same "
                  "vectors, files and steps), beside MQAN's single-task and joint runs (test; CoLA MCC × 100):\n\n"
                  "| task | BiLSTM classifier | single-task MQAN | MQAN joint (mean over seeds) |\n|---|---|---|---|\n")
        for r in classifiers:
            t = next(iter(r["test"]))
            st = next((x["test"][t] for x in results if x["name"] == f"single-{t}"), None)
            jt = [x["test"][t] for x in results if x["name"] in JOINT_RUNS and t in x["test"]]
            extra += (f"| {t} | {r['test'][t]:.2f} | {'–' if st is None else f'{st:.2f}'} | "
                      f"{mean_std(jt)} |\n")
    extra += probes_markdown(results + probes)
    extra += zero_shot_markdown(shots)
    extra += wide_answers_markdown(wide, shots)
    batch = scaled.data.batch_size
    extra += "\n| run | training examples/s (batches of " + str(batch) + ") |\n|---|---|\n" + "".join(
        f"| {r['name']} | {r['steps'] * batch / r['train_s']:.1f} |\n" for r in results if r.get("train_s"))
    extra += targets(results, shots, baseline)
    report = write_report(args, "decanlp", "squad: F1; other tasks: exact match", results, PUBLISHED, None, extra,
                          baseline=baseline)
    report["zero_shot"] = shots
    report["zero_shot_wide_answers"] = wide
    report["classifiers"] = classifiers
    report["probes"] = probes
    (Path(args.results_dir) / "decanlp.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
