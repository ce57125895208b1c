"""Experiment trackers: where each logged record goes besides ``metrics.jsonl``.

``trainer.report_to`` lists them (default ``[csv]``; ``[]`` for none):

- ``csv``: ``metrics.csv`` in the run directory, one row per record (:class:`CSVLog`);
- ``tensorboard``: event files under ``tensorboard/`` (:class:`TensorBoardLog`);
- ``mlflow``: an MLflow run with the config as parameters, the numbers of each record as metrics
  and ``config.yaml`` and ``results.json`` as artifacts (:class:`MLflowLog`), by default in a
  local file store, ``<output_dir>/mlruns``.

TensorBoard and MLflow are optional (``pip install 'polytask[track]'``); a run that lists one that
is not installed fails before it loads any data, naming the extra.
"""
from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
import re
import time
from pathlib import Path
from typing import Optional
from urllib.parse import urlparse

from ..config import ExperimentConfig, to_dict
from ..errors import PolytaskError
from .callbacks import Callback
from .checkpoint import writing

logger = logging.getLogger(__name__)

TRACKERS = ("csv", "tensorboard", "mlflow")
# the Python module each optional tracker needs, and its name for people
NEEDS = {"tensorboard": ("tensorboard", "TensorBoard"), "mlflow": ("mlflow", "MLflow")}


class TrackingError(PolytaskError):
    """A tracker that cannot run: its package is missing, or its store refuses the run."""


def require_trackers(names: list[str]) -> None:
    """Fail at once, naming the extra to install, when a tracker in ``names`` is not installed."""
    import importlib
    for name in names:
        if name not in NEEDS:
            continue
        module, what = NEEDS[name]
        try:
            importlib.import_module(module)
        except ImportError:
            raise TrackingError(f"trainer.report_to lists {name}, but {what} is not installed: "
                                "pip install 'polytask[track]' (or leave it out of trainer.report_to)") from None


def build_trackers(cfg: ExperimentConfig, run_dir: Path) -> list[Callback]:
    """The callbacks of ``cfg.trainer.report_to``, in the order listed (each at most once)."""
    names = list(dict.fromkeys(cfg.trainer.report_to))
    require_trackers(names)
    run_dir = Path(run_dir)
    logger.debug("trackers: %s", ", ".join(names) or "none (metrics.jsonl only)")
    builders = {"csv": lambda: CSVLog(run_dir / "metrics.csv"),
                "tensorboard": lambda: TensorBoardLog(run_dir / "tensorboard"),
                "mlflow": lambda: MLflowLog(cfg, run_dir)}
    return [builders[name]() for name in names]


def _numbers(record: dict) -> dict[str, float]:
    """The numbers of an evaluation record under the names every tracker uses: ``dev_mean``,
    ``lr``, ``tokens_per_s``, ``dev/<task>``, ``train_loss/<task>``, ``weight/<task>``."""
    out: dict[str, float] = {}
    for key in ("dev_mean", "lr", "tokens_per_s"):
        if isinstance(record.get(key), (int, float)):
            out[key] = float(record[key])
    for field, prefix in (("dev", "dev"), ("train_loss", "train_loss"), ("weights", "weight")):
        for task, value in (record.get(field) or {}).items():
            if isinstance(value, (int, float)):
                out[f"{prefix}/{task}"] = float(value)
    return out


# ----------------------------------------------------------------------------- csv


class CSVLog(Callback):
    """``metrics.csv``: one row per logged record, in a wide layout a spreadsheet or
    ``pandas.read_csv`` takes as it is.

    Columns: ``step``, ``event`` (eval, structure, nonfinite, resume), ``dev_mean``, ``lr``,
    ``tokens_per_s``, then for each task ``dev/<task>`` (its primary dev metric),
    ``train_loss/<task>`` (mean train loss since the evaluation before) and ``weight/<task>`` (the
    weighting's task weight), and last ``details``: whatever else the record holds, as compact
    JSON (e.g. ``{"what": "loss", "tasks": ["a"], "action": "skip_batch"}`` for a non-finite
    loss). A cell is empty where the record has no such value. Like ``metrics.jsonl``, a resumed
    run keeps the rows up to its checkpoint's step.
    """

    FIXED = ("step", "event", "dev_mean", "lr", "tokens_per_s")
    CONSUMED = ("step", "event", "dev_mean", "lr", "tokens_per_s", "dev", "train_loss", "weights")

    def __init__(self, path: Path):
        self.path = Path(path)
        self.columns: list[str] = []

    def on_setup(self, trainer, resume: bool) -> None:
        self.columns = [*self.FIXED, *(f"{kind}/{task}" for task in trainer.tasks
                                       for kind in ("dev", "train_loss", "weight")), "details"]
        kept = []
        if trainer.step > 0 and self.path.is_file():
            with self.path.open(encoding="utf-8", newline="") as f:
                kept = [row for row in csv.DictReader(f) if row.get("step", "").isdigit()
                        and int(row["step"]) <= trainer.step]
        with writing(self.path, "the metrics table"), self.path.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, self.columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(kept)

    def on_log(self, trainer, record: dict) -> None:
        row = {"step": record["step"], "event": record["event"], **_numbers(record)}
        details = {k: v for k, v in record.items() if k not in self.CONSUMED}
        extra = {k: v for k, v in row.items() if k not in self.columns}     # e.g. a task of no column
        if extra:
            details.update(extra)
        row["details"] = json.dumps(details, separators=(",", ":")) if details else ""
        with writing(self.path, "the metrics table"), self.path.open("a", encoding="utf-8", newline="") as f:
            csv.DictWriter(f, self.columns, extrasaction="ignore").writerow(row)


# ----------------------------------------------------------------------------- tensorboard


class TensorBoardLog(Callback):
    """Mirrors the numbers of each record to TensorBoard event files under ``log_dir``: per-task
    ``dev/<task>`` and ``train_loss/<task>``, and ``dev_mean``, ``lr``, ``tokens_per_s``. The
    writer opens at the first record and flushes after each."""

    SCALARS = ("dev_mean", "lr", "tokens_per_s")

    def __init__(self, log_dir: Path):
        self.log_dir = Path(log_dir)
        self._writer = None

    def on_log(self, trainer, record: dict) -> None:
        writer = self._open()
        step = record["step"]
        for task, value in record.get("dev", {}).items():
            writer.add_scalar(f"dev/{task}", value, step)
        for task, value in record.get("train_loss", {}).items():
            writer.add_scalar(f"train_loss/{task}", value, step)
        for key in self.SCALARS:
            if key in record:
                writer.add_scalar(key, record[key], step)
        writer.flush()

    def on_train_end(self, trainer, summary: dict) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _open(self):
        if self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise TrackingError("trainer.report_to lists tensorboard, but TensorBoard is not installed: "
                                    "pip install 'polytask[track]'") from None
            self._writer = SummaryWriter(str(self.log_dir))
        return self._writer


# ----------------------------------------------------------------------------- mlflow


def mlflow_uri(cfg: ExperimentConfig, run_dir: Path) -> str:
    """``trainer.mlflow_uri``, else ``$MLFLOW_TRACKING_URI``, else the file store
    ``<run_dir>/mlruns``."""
    return cfg.trainer.mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI") or \
        (Path(run_dir).resolve() / "mlruns").as_uri()


def flatten(value, prefix: str = "") -> dict[str, str]:
    """A nested config as ``{"trainer.lr": "0.001", "tasks.0.name": "books", ...}``."""
    if isinstance(value, dict) and value:
        out: dict[str, str] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and value and any(isinstance(v, (dict, list)) for v in value):
        out = {}
        for i, item in enumerate(value):
            out.update(flatten(item, f"{prefix}.{i}"))
        return out
    text = value if isinstance(value, str) else json.dumps(value)
    return {prefix: text}


_UNSAFE = re.compile(r"[^\w\-. /]")          # what MLflow takes in a metric or parameter name


class MLflowLog(Callback):
    """Logs the run to MLflow: the flattened config as parameters at the start, the numbers of
    each evaluation as metrics at its step (``dev_mean``, ``lr``, ``tokens_per_s``,
    ``dev/<task>``, ``dev_metrics/<task>/<metric>`` for every dev metric, ``train_loss/<task>``,
    ``weight/<task>``), other records (structure, nonfinite, resume) as tags ``event.<step>.<event>``,
    the summary's numbers as ``summary/<key>`` at the end, then ``config.yaml`` and ``results.json``
    as artifacts and the test metrics as ``test/<task>``.

    The store is :func:`mlflow_uri`; the experiment is ``trainer.mlflow_experiment`` or the name of
    the run directory. The MLflow run's id is kept in ``<run_dir>/mlflow.json``, so a resumed run
    logs into the same MLflow run (the steps between its checkpoint and the interruption are logged
    a second time, as they are in ``metrics.jsonl`` before it is trimmed). A ``file:`` store is
    MLflow's maintenance-mode backend: polytask sets ``MLFLOW_ALLOW_FILE_STORE=true`` for it unless
    the environment already says otherwise.
    """

    BATCH = 100                                # MLflow takes at most 100 parameters per call

    def __init__(self, cfg: ExperimentConfig, run_dir: Path):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.uri = mlflow_uri(cfg, run_dir)
        self.experiment = cfg.trainer.mlflow_experiment or self.run_dir.resolve().name
        self.client = None
        self.run_id: Optional[str] = None

    @property
    def id_file(self) -> Path:
        return self.run_dir / "mlflow.json"

    @contextlib.contextmanager
    def _errors(self):
        """MLflow's own errors (a store that refuses a write, a server that does not answer) as
        one :class:`TrackingError` naming the store."""
        from mlflow.exceptions import MlflowException
        try:
            yield
        except (MlflowException, OSError) as exc:
            raise TrackingError(f"trainer.report_to: mlflow: the store {self.uri} refused the run "
                                f"({type(exc).__name__}: {getattr(exc, 'message', exc)}); set trainer.mlflow_uri "
                                "or leave mlflow out of trainer.report_to") from exc

    def on_setup(self, trainer, resume: bool) -> None:
        if urlparse(self.uri).scheme in ("", "file"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        from mlflow.tracking import MlflowClient
        with self._errors():
            self.client = MlflowClient(tracking_uri=self.uri)
            earlier = self._earlier_run() if trainer.step > 0 else None
            if earlier is not None:
                self.run_id = earlier
                self.client.update_run(self.run_id, status="RUNNING")
                logged = set(self.client.get_run(self.run_id).data.params)
            else:
                found = self.client.get_experiment_by_name(self.experiment)
                experiment_id = found.experiment_id if found is not None else \
                    self.client.create_experiment(self.experiment)
                run = self.client.create_run(experiment_id, run_name=self.run_dir.resolve().name,
                                             tags={"polytask.run_dir": str(self.run_dir.resolve())})
                self.run_id, logged = run.info.run_id, set()
            self._log_params({k: v for k, v in self._params().items() if k not in logged})
        with writing(self.id_file, "the MLflow run id"):
            self.id_file.write_text(json.dumps({"tracking_uri": self.uri, "experiment": self.experiment,
                                                "run_id": self.run_id}, indent=1) + "\n", encoding="utf-8")
        logger.info("MLflow run %s in %s (experiment %s)", self.run_id, self.uri, self.experiment)

    def _earlier_run(self) -> Optional[str]:
        """The MLflow run this run directory logged to before, when it is in the same store."""
        if not self.id_file.is_file():
            return None
        try:
            saved = json.loads(self.id_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(saved, dict) or saved.get("tracking_uri") != self.uri:
            return None
        from mlflow.exceptions import MlflowException
        try:
            return self.client.get_run(saved["run_id"]).info.run_id
        except (MlflowException, KeyError, TypeError):
            return None

    def _params(self) -> dict[str, str]:
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH
        return {_UNSAFE.sub("_", key): value[:MAX_PARAM_VAL_LENGTH]
                for key, value in flatten(to_dict(self.cfg)).items()}

    def _log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param
        items = [Param(k, v) for k, v in params.items()]
        for start in range(0, len(items), self.BATCH):
            self.client.log_batch(self.run_id, params=items[start:start + self.BATCH])

    def _log_metrics(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric
        now = int(time.time() * 1000)
        metrics = [Metric(_UNSAFE.sub("_", key), value, now, step) for key, value in values.items()]
        for start in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[start:start + 1000])

    def on_log(self, trainer, record: dict) -> None:
        with self._errors():
            self._log_record(trainer, record)

    def _log_record(self, trainer, record: dict) -> None:
        step = record["step"]
        if record["event"] != "eval":
            details = json.dumps({k: v for k, v in record.items() if k not in ("step", "event")},
                                 separators=(",", ":"))
            self.client.set_tag(self.run_id, f"event.{step}.{record['event']}", details[:5000])
            return
        values = _numbers(record)
        for task, metrics in (getattr(trainer, "last_dev_metrics", None) or {}).items():
            for name, value in metrics.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    values[f"dev_metrics/{task}/{name}"] = float(value)
        self._log_metrics(values, step)

    def on_interrupt(self, trainer) -> None:
        with self._errors():
            self.client.set_terminated(self.run_id, status="KILLED")

    def on_train_end(self, trainer, summary: dict) -> None:
        with self._errors():
            self._end(trainer, summary)

    def _end(self, trainer, summary: dict) -> None:
        self._log_metrics({f"summary/{key}": float(value) for key, value in summary.items()
                           if isinstance(value, (int, float)) and not isinstance(value, bool)
                           and math.isfinite(value)}, trainer.step)
        config = self.run_dir / "config.yaml"
        if config.is_file():
            self.client.log_artifact(self.run_id, str(config))
        self.client.set_terminated(self.run_id, status="FINISHED")

    def on_results(self, trainer, results: dict) -> None:
        with self._errors():
            self._results(trainer, results)

    def _results(self, trainer, results: dict) -> None:
        values = {f"test/{task}": value for task, value in (results.get("test") or {}).items()}
        if isinstance(results.get("test_avg"), (int, float)):
            values["test_avg"] = results["test_avg"]
        self._log_metrics(values, trainer.step)
        path = self.run_dir / "results.json"
        if path.is_file():
            self.client.log_artifact(self.run_id, str(path))
