"""Seeds as an axis: one ordinary run directory per (system, seed), trained in parallel processes.

``polytask train CONFIG --seeds 1,2,3 --jobs 2`` trains ``<output_dir>/seed-1``, ``seed-2``, ... and
``polytask sweep SWEEP.yaml`` does the same for several systems (a config and overrides each)::

    seeds: [1, 2, 3]
    output_dir: runs/ablation            # each system in <output_dir>/<name>/seed-<n>
    systems:
      fs-mtl: {config: configs/fdu-mtl/hard-sharing.yaml}
      fs-mtl-no-clip:
        config: configs/fdu-mtl/hard-sharing.yaml
        overrides: [trainer.clip_norm=null]

Each seed is a separate ``polytask train`` process (``trainer.num_threads`` threads, 1 by default,
so ``--jobs`` processes share the cores without oversubscribing them), logging to its run
directory's ``train.log``. Running the same command again skips the seeds that finished (after
checking that they were trained with the same settings) and resumes the interrupted ones from their
``last/`` checkpoint, so an interrupted sweep ends as an uninterrupted one. Ctrl-C (or SIGTERM)
stops every running seed at a checkpoint. Each system's aggregate, mean ± standard deviation over
the finished seeds, goes to ``seeds.json`` and ``seeds.md`` beside its seed directories.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import yaml

from .config import ConfigError, ExperimentConfig, config_differences, load_config, save_config, to_dict
from .evaluation.aggregate import format_aggregate, read_results, seed_dir, write_aggregate

logger = logging.getLogger(__name__)


def parse_seeds(text: str) -> list[int]:
    """``"1,2,3"`` -> ``[1, 2, 3]``; every seed an integer, none twice."""
    try:
        seeds = [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--seeds: expected comma-separated integers such as 1,2,3, got {text!r}") from None
    if not seeds:
        raise ConfigError("--seeds: no seed given")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds: a seed is given twice in {text!r}")
    return seeds


@dataclass
class SeedJob:
    """One seed of one system: the base config file, the seed, its run directory and what to do."""

    system: str
    seed: int
    config: Path             # the system's resolved config (<system dir>/config.yaml)
    run_dir: Path
    action: str              # "done", "resume" or "fresh"


def plan_system(cfg: ExperimentConfig, seeds: list[int], system_dir: Path, name: str) -> list[SeedJob]:
    """Write the system's resolved config and decide, per seed, whether to skip, resume or start.

    A finished seed (``results.json``) trained with settings other than ``cfg``'s is an error: its
    scores would be aggregated under a config that did not produce them.
    """
    system_dir = Path(system_dir)
    jobs = []
    for seed in seeds:
        run_dir = seed_dir(system_dir, seed)
        seed_cfg = to_dict(dataclasses.replace(cfg, seed=seed, output_dir=str(run_dir)))
        if (run_dir / "results.json").is_file() and (run_dir / "config.yaml").is_file():
            saved = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
            changed = config_differences(saved, seed_cfg)
            if changed:
                raise ConfigError(f"{run_dir} finished with other settings ({'; '.join(changed)}); "
                                  "choose another output_dir, or remove that run to retrain it")
            action = "done"
        elif (run_dir / "last" / "state.json").is_file() or (run_dir / "last.old" / "state.json").is_file():
            action = "resume"
        else:
            action = "fresh"
        jobs.append(SeedJob(name, seed, system_dir / "config.yaml", run_dir, action))
    system_dir.mkdir(parents=True, exist_ok=True)
    save_config(dataclasses.replace(cfg, output_dir=str(system_dir)), system_dir / "config.yaml")
    return jobs


def _command(job: SeedJob, threads: int, data_dir: Optional[Path]) -> list[str]:
    # not --quiet: the job's train.log keeps its information lines (a resume, one line per evaluation)
    cmd = [sys.executable, "-m", "polytask.cli", "train", str(job.config),
           f"seed={job.seed}", f"output_dir={job.run_dir}", f"trainer.num_threads={threads}"]
    if job.action == "resume":
        cmd.append("--resume")
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    return cmd


def _environment(threads: int) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    package_root = str(Path(__file__).resolve().parents[1])     # the child imports this polytask
    env["PYTHONPATH"] = os.pathsep.join([package_root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def run_jobs(jobs: list[SeedJob], parallel: int = 1, threads: int = 1, data_dir: Optional[Path] = None,
             say: Callable[[str], None] = logger.info) -> dict[tuple[str, int], int]:
    """Train the jobs that are not done, ``parallel`` processes at a time; returns each job's exit
    status (0 for a job that was already done). On Ctrl-C or SIGTERM every running job is sent
    SIGTERM, which makes it save a checkpoint and stop; the KeyboardInterrupt is re-raised after."""
    if parallel < 1 or threads < 1:
        raise ConfigError(f"--jobs and --threads must be at least 1 (got {parallel}, {threads})")
    status = {(j.system, j.seed): 0 for j in jobs if j.action == "done"}
    for job in jobs:
        if job.action == "done":
            say(f"{job.run_dir}: finished before, skipped")
    queue = [j for j in jobs if j.action != "done"]
    running: dict[subprocess.Popen, tuple[SeedJob, float]] = {}
    env = _environment(threads)
    main_thread = threading.current_thread() is threading.main_thread()   # signals are for the main thread
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if main_thread else None
    try:
        while queue or running:
            while queue and len(running) < parallel:
                job = queue.pop(0)
                job.run_dir.mkdir(parents=True, exist_ok=True)
                with (job.run_dir / "train.log").open("a", encoding="utf-8") as log:
                    # a session of its own: a Ctrl-C meant for this process is forwarded as SIGTERM,
                    # so a job is never interrupted twice while it saves its checkpoint
                    proc = subprocess.Popen(_command(job, threads, data_dir), stdout=log, stderr=subprocess.STDOUT,
                                            env=env, start_new_session=True)
                running[proc] = (job, time.perf_counter())
                say(f"{job.run_dir}: {'resuming' if job.action == 'resume' else 'training'} "
                    f"(log: {job.run_dir / 'train.log'})")
            time.sleep(0.2)
            for proc in [p for p in running if p.poll() is not None]:
                job, start = running.pop(proc)
                status[(job.system, job.seed)] = proc.returncode
                say(_finished_line(job, proc.returncode, time.perf_counter() - start))
    except KeyboardInterrupt:
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        for proc, (job, _) in running.items():
            proc.wait()
            say(f"{job.run_dir}: stopped at a checkpoint; run the same command again to resume")
        raise
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    return status


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _finished_line(job: SeedJob, returncode: int, seconds: float) -> str:
    if returncode != 0:
        tail = (job.run_dir / "train.log").read_text(encoding="utf-8", errors="replace").splitlines()[-5:]
        return (f"{job.run_dir}: failed (exit status {returncode}) after {seconds:.0f} s; "
                f"the end of its train.log:\n    " + "\n    ".join(tail))
    results = read_results(job.run_dir) or {}
    avg = results.get("test_avg")
    return (f"{job.run_dir}: finished in {seconds:.0f} s"
            + (f", test average {avg:.2f}" if avg is not None else ""))


def train_seeds(cfg: ExperimentConfig, seeds: list[int], jobs: int = 1, threads: int = 1,
                data_dir: Optional[Path] = None, quiet: bool = False) -> tuple[Optional[dict], bool]:
    """Train ``cfg`` once per seed into ``<cfg.output_dir>/seed-<n>`` and aggregate the seeds.

    Returns the aggregate (None when no seed finished) and whether every seed finished.
    """
    say = (lambda msg: None) if quiet else logger.info
    system_dir = Path(cfg.output_dir)
    plan = plan_system(cfg, seeds, system_dir, system_dir.name)
    status = run_jobs(plan, jobs, threads, data_dir, say)
    agg = write_aggregate(system_dir, seeds)
    if agg is not None and not quiet:
        print(format_aggregate(agg))
        logger.info("aggregate: %s, %s", system_dir / "seeds.json", system_dir / "seeds.md")
    return agg, all(rc == 0 for rc in status.values())


# ----------------------------------------------------------------------------- sweeps

SWEEP_KEYS = ("seeds", "output_dir", "systems")
SYSTEM_KEYS = ("config", "overrides")


@dataclass
class SweepSpec:
    seeds: list[int]
    output_dir: Path
    systems: dict[str, ExperimentConfig]


def load_sweep(path: Path, seeds: Optional[list[int]] = None, overrides: Optional[list[str]] = None) -> SweepSpec:
    """Read and check a sweep file; every system's config is loaded (and so validated) here, so a
    typo fails before anything trains. ``overrides`` apply to every system, after its own."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: sweep file not found")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping with {', '.join(SWEEP_KEYS)}")
    unknown = [k for k in raw if k not in SWEEP_KEYS]
    if unknown:
        raise ConfigError(f"{path}: {unknown[0]}: unknown key (known: {', '.join(SWEEP_KEYS)})")
    if seeds is None:
        if not isinstance(raw.get("seeds"), list) or not all(isinstance(s, int) for s in raw["seeds"]):
            raise ConfigError(f"{path}: seeds: expected a list of integers (or pass --seeds)")
        seeds = parse_seeds(",".join(map(str, raw["seeds"])))
    if not isinstance(raw.get("output_dir"), str):
        raise ConfigError(f"{path}: output_dir: expected a directory path")
    systems_raw = raw.get("systems")
    if not isinstance(systems_raw, dict) or not systems_raw:
        raise ConfigError(f"{path}: systems: expected a mapping of names to {{config, overrides}}")
    systems = {}
    for name, entry in systems_raw.items():
        where = f"{path}: systems.{name}"
        if not isinstance(entry, dict) or not isinstance(entry.get("config"), str):
            raise ConfigError(f"{where}.config: expected the path of an experiment YAML")
        unknown = [k for k in entry if k not in SYSTEM_KEYS]
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(SYSTEM_KEYS)})")
        own = entry.get("overrides") or []
        if not isinstance(own, list) or not all(isinstance(o, str) for o in own):
            raise ConfigError(f"{where}.overrides: expected a list of KEY=VALUE strings")
        system_dir = Path(raw["output_dir"]) / str(name)
        try:
            cfg = load_config(entry["config"], own + list(overrides or []) + [f"output_dir={system_dir}"])
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        systems[str(name)] = cfg
    return SweepSpec(seeds, Path(raw["output_dir"]), systems)


def run_sweep(spec: SweepSpec, jobs: int = 1, threads: int = 1, data_dir: Optional[Path] = None,
              quiet: bool = False) -> tuple[dict[str, Optional[dict]], bool]:
    """Every system × seed, ``jobs`` processes at a time over the whole sweep; then each system's
    aggregate and a report of all systems (``<output_dir>/report``)."""
    say = (lambda msg: None) if quiet else logger.info
    plan = [job for name, cfg in spec.systems.items()
            for job in plan_system(cfg, spec.seeds, spec.output_dir / name, name)]
    status = run_jobs(plan, jobs, threads, data_dir, say)
    aggregates = {name: write_aggregate(spec.output_dir / name, spec.seeds) for name in spec.systems}
    finished = [spec.output_dir / name for name, agg in aggregates.items() if agg is not None]
    if finished:
        from .evaluation.report import build_report
        build_report(finished, spec.output_dir / "report")
        if not quiet:
            print((spec.output_dir / "report" / "report.md").read_text(encoding="utf-8"))
    return aggregates, all(rc == 0 for rc in status.values())
