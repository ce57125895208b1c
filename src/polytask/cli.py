"""``polytask`` command line: train | sweep | tune | evaluate | predict | serve | export | report | data {check,
vectors, download}."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
import warnings
from pathlib import Path

from .config import ConfigError, load_config
from .data.readers import DataError
from .errors import PolytaskError, PolytaskWarning

logger = logging.getLogger("polytask")


def _config(args) -> "ExperimentConfig":  # noqa: F821
    overrides = list(args.overrides)
    if getattr(args, "output_dir", None):
        overrides.append(f"output_dir={args.output_dir}")
    return load_config(args.config, overrides)


def _one_process(what: str) -> None:
    """Refuse ``what`` (a command that starts trainings of its own) under torchrun."""
    from .training.distributed import launched_world_size
    if launched_world_size() > 1:
        raise PolytaskError(f"{what} runs several trainings of its own and cannot run under torchrun; "
                            "launch `polytask train CONFIG` with torchrun once per run")


def cmd_train(args) -> int:
    cfg = _config(args)
    data_dir = Path(args.data_dir) if args.data_dir else None
    if args.seeds:
        _one_process("polytask train --seeds")
        from .sweep import parse_seeds, train_seeds
        _, complete = train_seeds(cfg, parse_seeds(args.seeds), args.jobs, args.threads, data_dir, args.quiet)
        return 0 if complete else 1
    from .runner import train
    train(cfg, data_dir, resume=args.resume, quiet=args.quiet)
    return 0


def cmd_sweep(args) -> int:
    _one_process("polytask sweep")
    from .sweep import load_sweep, parse_seeds, run_sweep
    spec = load_sweep(Path(args.sweep), parse_seeds(args.seeds) if args.seeds else None, args.overrides)
    _, complete = run_sweep(spec, args.jobs, args.threads, Path(args.data_dir) if args.data_dir else None,
                            args.quiet)
    return 0 if complete else 1


def cmd_tune(args) -> int:
    _one_process("polytask tune")
    import torch
    from .tune import format_trials, require_optuna, tune
    try:
        require_optuna()
    except ImportError as exc:
        logger.error("%s", exc)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    summary = tune(Path(args.config), Path(args.space), args.trials, list(args.overrides), args.storage,
                   args.study, Path(args.data_dir) if args.data_dir else None, args.seed)
    print(format_trials(summary))
    return 0


def cmd_transfer(args) -> int:
    from .runner import train, transfer_config
    overrides = list(args.overrides) + ([f"output_dir={args.output_dir}"] if args.output_dir else [])
    cfg = transfer_config(args.run_dir, args.task, overrides)
    train(cfg, Path(args.data_dir) if args.data_dir else None, resume=args.resume, quiet=args.quiet,
          transfer_from=Path(args.run_dir))
    return 0


def cmd_serve(args) -> int:
    from .serving import ServeLimits, require_serve, serve
    require_serve()
    limits = ServeLimits(max_body_bytes=args.max_body_bytes, max_texts=args.max_texts,
                         request_timeout=args.request_timeout, body_timeout=args.body_timeout,
                         batch_wait_ms=args.batch_wait_ms, max_batch_texts=args.max_batch_texts)
    try:
        serve(args.run_dir, args.host, args.port, args.workers, limits, args.threads)
    except KeyboardInterrupt:
        pass
    return 0


def cmd_export(args) -> int:
    from .export import export_task
    doc = export_task(args.run_dir, args.task, args.format, args.output)
    checked = doc["verified"]
    tags = "; tags identical" if doc["kind"] == "tagging" else ""
    if "crf" in doc and not doc["crf"]["decoded_in_graph"]:
        tags += " (decoded outside the graph with the CRF scores of model.json)"
    logger.info("wrote %s and %s; checked on %d examples against polytask: max abs difference %.2e%s",
                Path(args.output) / doc["file"], Path(args.output) / "model.json", checked["examples"],
                checked["max_abs_difference"], tags)
    return 0


def cmd_inspect(args) -> int:
    from .runner import inspect_examples, load_run
    run = load_run(args.run_dir)
    source = open(args.input, encoding="utf-8") if args.input else sys.stdin
    with source:
        texts = [line.rstrip("\n") for line in source if line.strip()][: args.limit]
    records = inspect_examples(run, args.task, texts)       # before opening --output: an error leaves no file
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    for record in records:
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
    if args.output:
        out.close()
    return 0


def cmd_report(args) -> int:
    from .evaluation.report import build_report
    from .runner import missing_run
    for run_dir in [*args.run_dirs, *([args.baseline] if args.baseline else [])]:
        if not Path(run_dir).is_dir():
            raise missing_run(run_dir)
    out = Path(args.output)
    build_report([Path(d) for d in args.run_dirs], out, Path(args.baseline) if args.baseline else None,
                 alpha=args.alpha, n_resamples=args.resamples)
    logger.info("wrote %s and %s", out / "report.md", out / "report.html")
    return 0


def cmd_evaluate(args) -> int:
    from .evaluation.tables import format_metric_table
    from .runner import evaluate
    scores = evaluate(args.run_dir, args.split, Path(args.data_dir) if args.data_dir else None)
    print(format_metric_table({args.split: scores}, list(scores)))
    if args.json:
        Path(args.json).write_text(json.dumps(scores, indent=1), encoding="utf-8")
    return 0


def _write_tagging(args, run) -> int:
    """Tagging: raw sentences (whitespace tokens, one per line) or CoNLL in; JSON lines or CoNLL out."""
    from .data.conll import read_conll
    from .runner import predict_tagging
    if args.input_format == "conll":
        if not args.input:
            raise ValueError("--input-format conll needs --input FILE")
        sentences = [ex.tokens for ex in read_conll(args.input, label_column=0)[0]]
    else:
        source = open(args.input, encoding="utf-8") if args.input else sys.stdin
        with source:
            sentences = [line.split() for line in source if line.strip()]
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    for pred in predict_tagging(run, args.task, sentences):
        if args.output_format == "conll":
            out.write("".join(f"{tok}\t{tag}\n" for tok, tag in zip(pred["tokens"], pred["tags"])) + "\n")
        else:
            out.write(json.dumps(pred, ensure_ascii=False) + "\n")
    if args.output:
        out.close()
    return 0


def cmd_predict(args) -> int:
    from .runner import load_run, predict
    run = load_run(args.run_dir)
    kind = run.task_info.get(args.task, {}).get("type")
    if kind == "tagging":
        return _write_tagging(args, run)
    source = open(args.input, encoding="utf-8") if args.input else sys.stdin
    two_texts = kind == "qa" or run.task_info.get(args.task, {}).get("pair", kind == "pair_classification")
    texts = []
    with source:
        for line in source:
            line = line.rstrip("\n")
            if not line.strip():
                continue
            texts.append(tuple(line.split("\t", 1)) if two_texts else line)
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    failed = 0
    for text, pred in zip(texts, predict(run, args.task, texts)):
        failed += "error" in pred                   # e.g. a non-finite output: never written as NaN
        record = {"text": list(text) if two_texts else text,
                  **{k: pred[k] for k in ("label", "probability", "score", "answer", "error") if k in pred}}
        out.write(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n")
    if args.output:
        out.close()
    if failed:
        from .runner import RunError
        raise RunError(f"{failed} of {len(texts)} inputs got no prediction (their lines say why, under \"error\")")
    return 0


def cmd_data_check(args) -> int:
    from .data_check import check_tasks, format_report
    from .experiment import resolve_data_dir
    cfg = _config(args)
    report = check_tasks(cfg, resolve_data_dir(args.data_dir, cfg))
    print(format_report(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 0


def cmd_data_vectors(args) -> int:
    from .tasks import load_task, load_unlabeled
    from .data.vectors import train_word2vec
    from .experiment import resolve_data_dir
    cfg = _config(args)
    data_dir = resolve_data_dir(args.data_dir, cfg)
    sentences = []
    for tc in cfg.tasks:
        task = load_task(tc, data_dir, cfg.seed)
        sentences += [ex.tokens for ex in task.train]
        sentences += [ex.tokens_b for ex in task.train if ex.tokens_b]
        if not args.no_unlabeled:
            sentences += load_unlabeled(tc, data_dir)
    logger.info("training word2vec (%dd, %d epochs) on %d sentences of train + unlabeled text (no dev, no test)",
                args.dim, args.epochs, len(sentences))
    n = train_word2vec(sentences, args.output, dim=args.dim, epochs=args.epochs, seed=cfg.seed,
                       min_count=args.min_count)
    logger.info("wrote %d vectors to %s", n, args.output)
    return 0


def cmd_data_download(args) -> int:
    from .data.download import download
    from .experiment import resolve_data_dir
    download(args.dataset, resolve_data_dir(args.data_dir), base_url=args.base_url, force=args.force)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="polytask", description="Multi-task learning for NLP.")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    parser.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    # --debug, --quiet and --verbose are also taken after the command (`polytask train cfg.yaml --debug`)
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the traceback of an error")
    debug.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help=QUIET_HELP)
    debug.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)

    def with_config(p):
        p.add_argument("config", help="experiment YAML")
        p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. trainer.max_steps=200")
        p.add_argument("--data-dir", help="data directory (default: config data_dir, $POLYTASK_DATA, cache)")

    p = sub.add_parser("train", parents=[debug], help="train a multi-task model from a YAML config")
    with_config(p)
    p.add_argument("--output-dir", help="run directory (overrides output_dir)")
    p.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    p.add_argument("--seeds", help="e.g. 1,2,3: one run per seed in OUTPUT_DIR/seed-N, then their mean ± std "
                                   "(finished seeds are skipped, interrupted ones resumed)")
    p.add_argument("--jobs", type=int, default=1, help="with --seeds: runs trained at once (processes)")
    p.add_argument("--threads", type=int, default=1, help="with --seeds: torch threads per run")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sweep", parents=[debug], help="train several systems (config + overrides) over several seeds")
    p.add_argument("sweep", help="sweep YAML: seeds, output_dir, systems: {name: {config, overrides}}")
    p.add_argument("overrides", nargs="*", help="dotted overrides applied to every system")
    p.add_argument("--seeds", help="instead of the sweep file's seeds, e.g. 1,2,3")
    p.add_argument("--jobs", type=int, default=1, help="runs trained at once (processes)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--data-dir")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("tune", parents=[debug], help="hyper-parameter search with Optuna (TPE, median pruning)")
    with_config(p)
    p.add_argument("--space", required=True, help="YAML: dotted config key -> {low, high[, log][, step]} "
                                                   "or {choices: [...]}")
    p.add_argument("--trials", type=int, required=True, help="finished trials the study should hold")
    p.add_argument("--storage", help="Optuna database URL (default: sqlite file OUTPUT_DIR/study.db)")
    p.add_argument("--study", help="study name (default: the name of OUTPUT_DIR)")
    p.add_argument("--seed", type=int, help="sampler seed (default: the config's seed)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("transfer", parents=[debug], help="train new tasks on a trained run's frozen shared parameters")
    p.add_argument("run_dir", help="the trained run directory")
    p.add_argument("--task", required=True, help="YAML with the new task(s), trainer and output_dir")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. trainer.max_steps=200")
    p.add_argument("--data-dir")
    p.add_argument("--output-dir")
    p.add_argument("--resume", action="store_true")
    p.set_defaults(func=cmd_transfer)

    p = sub.add_parser("evaluate", parents=[debug], help="evaluate a trained run on a split")
    p.add_argument("run_dir")
    p.add_argument("--split", default="test", choices=["train", "dev", "test"])
    p.add_argument("--data-dir")
    p.add_argument("--json", help="also write the scores to this JSON file")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", parents=[debug], help="label texts (one per line; pairs tab-separated) as JSON lines")
    p.add_argument("run_dir")
    p.add_argument("--task", required=True)
    p.add_argument("--input", help="input file (default: stdin)")
    p.add_argument("--output", help="output file (default: stdout)")
    p.add_argument("--input-format", choices=["text", "conll"], default="text",
                   help="tagging tasks: whitespace-tokenised sentences, or a CoNLL file (first column)")
    p.add_argument("--output-format", choices=["json", "conll"], default="json",
                   help="tagging tasks: JSON lines with tokens and tags, or CoNLL token<TAB>tag")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", parents=[debug], help="one task as an ONNX or TorchScript model of plain tensors "
                                                       "plus a JSON of its vocabulary, labels and pre-processing")
    p.add_argument("run_dir")
    p.add_argument("--task", required=True)
    p.add_argument("--format", required=True, choices=["onnx", "torchscript"])
    p.add_argument("--output", required=True, help="directory for model.onnx / model.pt and model.json")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("inspect", parents=[debug], help="dump what the model exposes per example (fusion gates, ...)")
    p.add_argument("run_dir")
    p.add_argument("--task", required=True)
    p.add_argument("--input", help="texts, one per line (default: stdin)")
    p.add_argument("--output", help="JSON lines out (default: stdout)")
    p.add_argument("--limit", type=int, default=20, help="at most this many texts")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("report", parents=[debug], help="Markdown/HTML report of one or several runs side by side")
    p.add_argument("run_dirs", nargs="+")
    p.add_argument("--output", default="report", help="directory for report.md/.html/.json and plots")
    p.add_argument("--baseline", help="single-task run for Δm (default: a single_task run among them)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level of the paired tests")
    p.add_argument("--resamples", type=int, default=10000, help="shuffles of the approximate randomisation test")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("serve", parents=[debug], help="serve predictions of a trained run over HTTP (JSON API and a page)")
    p.add_argument("run_dir")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--workers", type=int, default=1, help="processes, each with its own copy of the model")
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    from .serving.limits import ServeLimits
    limits = ServeLimits()
    p.add_argument("--max-texts", type=int, default=limits.max_texts, help="inputs per request at most")
    p.add_argument("--max-body-bytes", type=int, default=limits.max_body_bytes, help="request body size at most")
    p.add_argument("--request-timeout", type=float, default=limits.request_timeout,
                   help="seconds for a prediction before a 503")
    p.add_argument("--body-timeout", type=float, default=limits.body_timeout,
                   help="seconds for a request body to arrive before a 408")
    p.add_argument("--batch-wait-ms", type=float, default=limits.batch_wait_ms,
                   help="how long a request waits for others of its task to share a forward pass (0: none)")
    p.add_argument("--max-batch-texts", type=int, default=limits.max_batch_texts,
                   help="inputs in one forward pass at most")
    p.set_defaults(func=cmd_serve)

    data = sub.add_parser("data", parents=[debug], help="inspect, download or embed data").add_subparsers(
        dest="data_command", required=True)
    p = data.add_parser("check", parents=[debug], help="counts, labels, lengths, unknown words, duplicates")
    with_config(p)
    p.add_argument("--json", help="also write the report to this JSON file")
    p.set_defaults(func=cmd_data_check)
    p = data.add_parser("vectors", parents=[debug], help="train word2vec on the tasks' train + unlabeled text")
    with_config(p)
    p.add_argument("--output", required=True, help="vectors file to write (word2vec text format)")
    p.add_argument("--dim", type=int, default=200)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--min-count", type=int, default=2)
    p.add_argument("--no-unlabeled", action="store_true", help="use train text only")
    p.set_defaults(func=cmd_data_vectors)
    p = data.add_parser("download", parents=[debug], help="fetch a dataset and verify its checksums")
    p.add_argument("dataset", help="dataset name, e.g. fdu-mtl")
    p.add_argument("--data-dir")
    p.add_argument("--base-url", help="fetch from this mirror instead of the pinned public location")
    p.add_argument("--force", action="store_true", help="download even files that are present and valid")
    p.set_defaults(func=cmd_data_download)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None, _default=warnings.showwarning):
    """polytask's own warnings as one line, ``polytask: warning: ...`` (through the ``polytask``
    logger); others as Python shows them."""
    if issubclass(category, PolytaskWarning):
        logger.warning("%s", message)
    else:
        _default(message, category, filename, lineno, file, line)


QUIET_HELP = "only warnings and errors on stderr (train, transfer, sweep: no progress bar or tables either)"
VERBOSE_HELP = "debug messages too"


class _ConsoleHandler(logging.Handler):
    """The ``polytask`` logger's messages on stderr, one line each, as the command line has always
    written them: ``[polytask] ...`` (info, debug), ``polytask: warning: ...``, ``polytask:
    error: ...``; through ``tqdm.write`` so that a progress bar on the terminal is redrawn below a
    message instead of being cut by it."""

    PREFIX = {logging.WARNING: "polytask: warning: ", logging.ERROR: "polytask: error: ",
              logging.CRITICAL: "polytask: error: "}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.PREFIX.get(record.levelno, "[polytask] ") + record.getMessage()
            try:
                from tqdm import tqdm
                tqdm.write(text, file=sys.stderr)
            except ImportError:  # pragma: no cover
                sys.stderr.write(text + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 (logging's own contract: report, never raise)
            self.handleError(record)


# the errors a user can fix, printed as one line (--debug: with the traceback)
USER_ERRORS = (PolytaskError, ConfigError, DataError, FileNotFoundError, FileExistsError, KeyError, ValueError)


def main(argv: list[str] | None = None) -> int:
    code = _main(argv)
    if argv is None and os.environ.get("WORLD_SIZE", "1") not in ("", "0", "1"):
        # A torchrun rank has written everything and left its process group: end it here. The
        # interpreter's own teardown can abort a rank (SIGABRT, "terminate called without an
        # active exception") when a native library's thread outlives it, after a complete run.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # overrides may come after options: `train cfg.yaml --data-dir d trainer.max_steps=200`
    stray = [e for e in extra if e.startswith("-") or "=" not in e or not hasattr(args, "overrides")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    console = _ConsoleHandler()
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    previous_level = logger.level
    logger.addHandler(console)
    logger.setLevel(level)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return args.func(args)
    except USER_ERRORS as exc:
        if args.debug:
            traceback.print_exc()
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        logger.error("%s", msg)
        return 2
    except KeyboardInterrupt as exc:          # 128 + the signal: 130 for Ctrl-C, 143 for SIGTERM
        return 128 + getattr(exc, "signum", 2)
    finally:
        logger.removeHandler(console)
        logger.setLevel(previous_level)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
