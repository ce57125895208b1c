"""Hyper-parameter search with Optuna: ``polytask tune CONFIG --space space.yaml --trials N``.

The search space maps dotted config keys (as on the command line) to distributions::

    trainer.lr: {low: 1.0e-4, high: 1.0e-2, log: true}     # float, sampled on a log scale
    trainer.eval_every: {low: 100, high: 500, step: 100}    # int when both bounds are integers
    model.dropout: {choices: [0.1, 0.3, 0.5]}               # categorical

Optuna's TPE sampler proposes each trial's values; each trial is an ordinary run directory
(``<output_dir>/trial-000``, ...) trained by :func:`polytask.runner.train`, and its objective is the
mean dev metric of the selected weights (``dev_avg``; the test split is never looked at). Every
evaluation reports the mean dev metric to the trial, and Optuna's median pruner stops a trial whose
curve falls below the median of earlier trials at the same step (the run keeps its checkpoint and
logs; the trial is recorded as pruned).

The study lives in a database: a SQLite file (``<output_dir>/study.db``) by default, so running the
same command again continues the search up to ``--trials`` finished trials, and a trial stopped by
Ctrl-C resumes from its run's checkpoint. Any database URL Optuna accepts (``--storage
postgresql://...``) lets processes on several machines share one study (Optuna's distributed mode:
start ``polytask tune`` with the same ``--storage`` and ``--study`` on each); a trial whose process
died without a word is retried from its checkpoint once its heartbeat is older than three minutes.

Needs ``pip install 'polytask[tune]'`` (Optuna).
"""
from __future__ import annotations

import json
import logging
import math
import warnings
from pathlib import Path
from typing import Any, Optional

import yaml

from .config import ConfigError, load_config
from .training.callbacks import Callback

logger = logging.getLogger(__name__)

HEARTBEAT_S, GRACE_S = 60, 180


def require_optuna():
    try:
        import optuna
    except ImportError:
        raise ImportError("polytask tune needs Optuna: pip install 'polytask[tune]'") from None
    return optuna


# ----------------------------------------------------------------------------- the search space

def _number(value: Any, where: str) -> float | int:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):               # YAML reads 1e-4 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    raise ConfigError(f"{where}: expected a number, got {value!r}")


def override_text(key: str, value: Any) -> str:
    """``key=value`` with the value written as YAML reads it back (1e-05 -> 1.0e-05)."""
    text = yaml.safe_dump(value, default_flow_style=True).strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")]
    return f"{key}={text}"


def parse_space(raw: Any, source: str = "<space>") -> dict:
    """``{key: optuna distribution}`` from a space mapping; errors name the key."""
    optuna = require_optuna()
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{source}: expected a mapping of dotted config keys to distributions")
    space = {}
    for key, spec in raw.items():
        where = f"{source}: {key}"
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: expected {{low, high[, log][, step]}} or {{choices: [...]}}, got {spec!r}")
        if "choices" in spec:
            unknown = [k for k in spec if k != "choices"]
            if unknown:
                raise ConfigError(f"{where}.{unknown[0]}: not allowed beside choices")
            choices = spec["choices"]
            if not isinstance(choices, list) or not choices:
                raise ConfigError(f"{where}.choices: expected a non-empty list")
            bad = [c for c in choices if c is not None and not isinstance(c, (bool, int, float, str))]
            if bad:
                raise ConfigError(f"{where}.choices: each choice must be a number, string, boolean or "
                                  f"null, not {bad[0]!r}")
            space[key] = optuna.distributions.CategoricalDistribution(choices)
            continue
        unknown = [k for k in spec if k not in ("low", "high", "log", "step")]
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}: unknown field (known: low, high, log, step, choices)")
        if "low" not in spec or "high" not in spec:
            raise ConfigError(f"{where}: needs low and high (or choices)")
        low, high = _number(spec["low"], f"{where}.low"), _number(spec["high"], f"{where}.high")
        step = _number(spec["step"], f"{where}.step") if spec.get("step") is not None else None
        log = spec.get("log", False)
        if not isinstance(log, bool):
            raise ConfigError(f"{where}.log: expected true or false")
        if not low < high:
            raise ConfigError(f"{where}: low ({low}) must be below high ({high})")
        if log and low <= 0:
            raise ConfigError(f"{where}.log: a log scale needs low > 0, got {low}")
        if log and step is not None:
            raise ConfigError(f"{where}: step and log cannot be combined")
        if step is not None and step <= 0:
            raise ConfigError(f"{where}.step: must be positive, got {step}")
        if all(isinstance(v, int) for v in (spec["low"], spec["high"])) and isinstance(spec.get("step", 1), int):
            space[key] = optuna.distributions.IntDistribution(low, high, log=log, step=step or 1)
        else:
            space[key] = optuna.distributions.FloatDistribution(float(low), float(high), log=log, step=step)
    return space


def _extremes(distribution) -> list:
    if hasattr(distribution, "choices"):
        return list(distribution.choices)
    return [distribution.low, distribution.high]


def suggest(trial, key: str, distribution) -> Any:
    """The trial's value for ``key`` (the fixed one of a queued trial)."""
    optuna = require_optuna()
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return trial.suggest_categorical(key, distribution.choices)
    if isinstance(distribution, optuna.distributions.IntDistribution):
        return trial.suggest_int(key, distribution.low, distribution.high, step=distribution.step,
                                 log=distribution.log)
    return trial.suggest_float(key, distribution.low, distribution.high, step=distribution.step,
                               log=distribution.log)


def load_space(path: Path, config: Path, overrides: Optional[list[str]] = None) -> dict:
    """Read ``path`` and check every key and value against ``config``: the config must load with
    each bound and each choice in place (unknown keys and wrong types fail here, naming the key)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: search space file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    space = parse_space(raw, str(path))
    for key, distribution in space.items():
        for value in _extremes(distribution):
            try:
                load_config(config, list(overrides or []) + [override_text(key, value)])
            except ConfigError as exc:
                raise ConfigError(f"{path}: {key}: the value {value!r} does not fit the config ({exc})") from None
    return space


# ----------------------------------------------------------------------------- pruning

class OptunaPruning(Callback):
    """Reports each evaluation's mean dev metric to an Optuna trial and stops the run, as a pruned
    trial (``optuna.TrialPruned``), when the trial's pruner says so. The run is stopped after the
    evaluation's record is logged and its checkpoint saved. A resumed run first reports the
    evaluations its log already holds, so the pruner sees the whole curve."""

    def __init__(self, trial):
        self.trial = trial
        self.pruned_at: Optional[tuple[int, float]] = None

    def on_train_start(self, trainer) -> None:
        log = trainer.run_dir / "metrics.jsonl"
        if trainer.step and log.is_file():
            for line in log.read_text(encoding="utf-8").splitlines():
                record = json.loads(line) if line else {}
                if record.get("event") == "eval" and record["step"] <= trainer.step:
                    self._report(record["dev_mean"], record["step"])

    def on_evaluate(self, trainer, record: dict) -> None:
        self._report(record["dev_mean"], trainer.step)
        if self.trial.should_prune():
            self.pruned_at = (trainer.step, record["dev_mean"])
            record["pruned"] = True

    def on_checkpoint(self, trainer) -> None:
        if self.pruned_at is not None:
            step, dev = self.pruned_at
            raise require_optuna().TrialPruned(f"pruned at step {step}: mean dev {dev:.2f}")

    def _report(self, value: float, step: int) -> None:
        if value is not None and not math.isnan(value):
            self.trial.report(value, step)


# ----------------------------------------------------------------------------- the study

def default_storage(output_dir: Path) -> str:
    return f"sqlite:///{(Path(output_dir) / 'study.db').resolve()}"


def _retry_callback():
    """Optuna's callback that queues a failed trial again with its values and user attributes
    (our ``run_dir``), its number in ``retry_history`` (marked experimental by Optuna)."""
    optuna = require_optuna()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback()


def _retry_interrupted(study) -> list[int]:
    """Queue again, with the same values and run directory, every trial stopped by Ctrl-C that
    has not been queued again yet; returns their numbers."""
    optuna = require_optuna()
    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    queued = []
    for trial in trials:
        if (trial.state == optuna.trial.TrialState.FAIL and trial.user_attrs.get("interrupted")
                and trial.number not in retried):
            _retry_callback()(study, trial)
            queued.append(trial.number)
    return queued


def tune(config: Path, space_path: Path, n_trials: int, overrides: Optional[list[str]] = None,
         storage: Optional[str] = None, study_name: Optional[str] = None, data_dir: Optional[Path] = None,
         sampler_seed: Optional[int] = None, pruner=None, callbacks: Optional[list[Callback]] = None,
         quiet: bool = False) -> dict:
    """Run (or continue) the study until it holds ``n_trials`` finished (complete or pruned) trials.

    Args:
        config / overrides: the experiment every trial starts from.
        space_path: the search space file (see the module docstring).
        storage: an Optuna database URL; default a SQLite file in the config's ``output_dir``.
        study_name: default the name of ``output_dir``.
        sampler_seed: seeds TPE (default the config's seed; offset by the trials already run, so a
            continued search does not propose the first values again).
        pruner: default ``MedianPruner()``.
        callbacks: trainer callbacks added to every trial's run.

    Returns ``tune.json``'s content: the best trial's number, value, parameters and run directory,
    and every trial's state, value, parameters, run directory and last reported step.
    """
    optuna = require_optuna()
    from optuna.storages import RDBStorage
    say = (lambda msg: None) if quiet else logger.info
    overrides = list(overrides or [])
    base = load_config(config, overrides)
    space = load_space(space_path, config, overrides)
    out = Path(base.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():          # Optuna marks its heartbeat experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        store = RDBStorage(storage or default_storage(out), heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                           heartbeat_stale_trial_callback=_retry_callback())
    name = study_name or out.name
    try:
        earlier = len(optuna.load_study(study_name=name, storage=store).trials)
    except KeyError:                                         # a new study
        earlier = 0
    sampler = optuna.samplers.TPESampler(seed=(base.seed if sampler_seed is None else sampler_seed) + earlier)
    study = optuna.create_study(study_name=name, storage=store, direction="maximize", load_if_exists=True,
                                sampler=sampler, pruner=pruner or optuna.pruners.MedianPruner())
    for number in _retry_interrupted(study):
        say(f"trial {number} was interrupted; it runs again from its checkpoint")
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)

    def objective(trial) -> float:
        from .runner import train
        run_dir = Path(trial.user_attrs.get("run_dir") or out / f"trial-{trial.number:03d}")
        trial.set_user_attr("run_dir", str(run_dir))
        values = {key: suggest(trial, key, distribution) for key, distribution in space.items()}
        cfg = load_config(config, overrides + [override_text(k, v) for k, v in values.items()]
                          + [f"output_dir={run_dir}"])
        resume = (run_dir / "last" / "state.json").is_file()
        say(f"trial {trial.number}: {'resuming ' if resume else ''}"
            + " ".join(override_text(k, v) for k, v in values.items()) + f" -> {run_dir}")
        try:
            results = train(cfg, data_dir, resume=resume, quiet=True,
                            callbacks=[OptunaPruning(trial)] + list(callbacks or []))
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)
            raise
        return results["dev_avg"]

    def report_trial(study, trial) -> None:
        if trial.state == optuna.trial.TrialState.COMPLETE:
            say(f"trial {trial.number}: mean dev {trial.value:.2f}")
        elif trial.state == optuna.trial.TrialState.PRUNED:
            step = max(trial.intermediate_values, default=None)
            say(f"trial {trial.number}: pruned at step {step}")

    done = len(study.get_trials(deepcopy=False, states=finished))
    if done < n_trials:
        study.optimize(objective, n_trials=None, gc_after_trial=False,
                       callbacks=[report_trial, optuna.study.MaxTrialsCallback(n_trials, states=finished)])
    else:
        say(f"the study {name!r} already holds {done} finished trials (--trials {n_trials})")
    summary = study_summary(study)
    (out / "tune.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return summary


def study_summary(study) -> dict:
    optuna = require_optuna()
    trials = [{"number": t.number, "state": t.state.name.lower(), "value": t.value, "params": t.params,
               "run_dir": t.user_attrs.get("run_dir"),
               "last_step": max(t.intermediate_values, default=None)} for t in study.get_trials(deepcopy=False)]
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    best = max(complete, key=lambda t: t.value) if complete else None
    return {"study": study.study_name, "direction": "maximize", "objective": "dev_avg",
            "best": None if best is None else {"number": best.number, "value": best.value, "params": best.params,
                                               "run_dir": best.user_attrs.get("run_dir")},
            "trials": trials}


def format_trials(summary: dict) -> str:
    keys = list(dict.fromkeys(k for t in summary["trials"] for k in t["params"]))
    header = ["trial", "state", "mean dev", "last step"] + keys + ["run directory"]
    rows = [[str(t["number"]), t["state"], f"{t['value']:.2f}" if t["value"] is not None else "–",
             str(t["last_step"]) if t["last_step"] is not None else "–"]
            + [f"{t['params'][k]:.4g}" if isinstance(t["params"].get(k), float) else str(t["params"].get(k, "–"))
               for k in keys] + [t["run_dir"] or "–"] for t in summary["trials"]]
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    text = "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows])
    best = summary["best"]
    if best is not None:
        text += (f"\n\nbest: trial {best['number']}, mean dev {best['value']:.2f}: "
                 + " ".join(override_text(k, v) for k, v in best["params"].items()) + f" ({best['run_dir']})")
    return text
