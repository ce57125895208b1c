"""What the benchmark scripts share: running ``polytask train`` as a resumable subprocess, and the
provenance fields of a results file (../shared/benchmarks.md)."""
from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_polytask(name: str, config: str, overrides: list[str], data_dir: str, work_dir: str,
                 threads: int) -> dict:
    """Train ``config`` into ``work_dir/name`` (resuming an interrupted run; reusing a finished one)
    and return its ``results.json``."""
    out = Path(work_dir) / name
    results = out / "results.json"
    if results.is_file():
        print(f"[bench] {name}: reusing {results}", flush=True)
        return json.loads(results.read_text())
    cmd = [sys.executable, "-m", "polytask.cli", "train", config, "--data-dir", data_dir,
           "--output-dir", str(out), "--quiet", "--resume", f"trainer.num_threads={threads}", *overrides]
    print(f"[bench] {name}: {' '.join(cmd)}", flush=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    t0 = time.perf_counter()
    with (Path(work_dir) / f"{name}.log").open("a") as log:
        subprocess.run(cmd, check=True, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    print(f"[bench] {name}: done in {time.perf_counter() - t0:.0f} s", flush=True)
    return json.loads(results.read_text())


def provenance(benchmark: str, command: str, metric: str) -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {"benchmark": benchmark, "command": command, "git_commit": commit,
            "device": f"cpu: {os.cpu_count()} cores ({platform.processor() or platform.machine()})",
            "date": datetime.date.today().isoformat(), "metric": metric}
