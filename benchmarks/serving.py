"""Load test of ``polytask serve`` on loopback: ``--clients`` concurrent clients each send
``--requests`` single-text ``POST /predict`` requests (tasks in turn, texts from the tasks' test
files), while a slow client keeps sending request headers and holding back the body; it reports
requests/s, latency percentiles, the error count, and the latency of ``GET /health`` during the
load and with only the slow client connected. Bounded: it stops after clients x requests.

    python benchmarks/serving.py --data-dir ../shared/data            # trains the FS-MTL BiLSTM for 50 steps first
    python benchmarks/serving.py runs/fdu-mtl/hard-sharing            # or serves a trained run

The default run is ``configs/fdu-mtl/hard-sharing.yaml`` trained for ``--steps`` steps into the work
directory (reused when present): latency does not depend on how well it learned. The server runs
as a subprocess with its default limits (5 ms batching window, 5 s body timeout).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, argv_command, run_polytask, write_report  # noqa: E402

CONFIG = "configs/fdu-mtl/hard-sharing.yaml"


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))] if ordered else float("nan")


def request_texts(run_dir: Path, data_dir: Path, per_task: int, seed: int) -> dict[str, list[str]]:
    """Up to ``per_task`` test texts of each single-text task of the run (the text after the first
    tab of its test file), else sentences of 20-60 words of the run's vocabulary."""
    sys.path.insert(0, str(ROOT / "src"))
    from polytask.config import load_config
    from polytask.data.vocab import load_vocab
    cfg = load_config(run_dir / "config.yaml")
    info = json.loads((run_dir / "tasks.json").read_text())
    rng = random.Random(seed)
    words = None
    out = {}
    for task in cfg.tasks:
        if info[task.name]["type"] not in ("classification", "regression", "tagging") or info[task.name].get("pair"):
            continue
        path = data_dir / task.test if task.test else None
        lines = []
        if path is not None and path.is_file():
            lines = [line.split("\t", 1)[1].strip() for line in path.read_text(errors="replace").splitlines()
                     if "\t" in line and line.split("\t", 1)[1].strip()]
        if not lines:
            words = words or [w for w in load_vocab(run_dir / "vocab.json").itos[2:] if w.isalpha()]
            lines = [" ".join(rng.choice(words) for _ in range(rng.randint(20, 60))) for _ in range(per_task)]
        out[task.name] = rng.sample(lines, min(per_task, len(lines)))
    if not out:
        raise SystemExit(f"{run_dir}: no single-text task to send requests to")
    return out


def start_server(run_dir: Path, workers: int, threads: int, log: Path) -> tuple[subprocess.Popen, int]:
    cmd = [sys.executable, "-m", "polytask.cli", "serve", str(run_dir), "--port", "0", "--workers", str(workers)]
    if threads:
        cmd += ["--threads", str(threads)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    lines, port, loaded = [], None, 0
    while port is None or (workers > 1 and loaded < workers):    # every worker has its model
        line = proc.stderr.readline()
        lines.append(line)
        if "ready" in line:
            port = int(re.search(r"http://[^:]+:(\d+)", line).group(1))
        loaded += "loaded" in line
        if proc.poll() is not None:
            raise SystemExit("polytask serve exited:\n" + "".join(lines))
    log.write_text("".join(lines))
    return proc, port


async def slow_client(port: int, stop: asyncio.Event, record: dict) -> None:
    """Sends headers and half a body, then holds the rest back; when the server gives up on it (408),
    it connects again, until ``stop``."""
    while not stop.is_set():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /predict HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 64\r\n\r\n{\"task\": ")
        await writer.drain()
        record["connections"] += 1
        t0 = time.perf_counter()
        read = asyncio.ensure_future(reader.read(200))
        done, _ = await asyncio.wait({read, asyncio.ensure_future(stop.wait())}, return_when=asyncio.FIRST_COMPLETED)
        if read in done:
            status = read.result().split(b"\r\n", 1)[0].decode(errors="replace")
            record["answers"].append({"status": status, "held_s": round(time.perf_counter() - t0, 2)})
        else:
            read.cancel()
        writer.close()


class Connection:
    """One keep-alive HTTP/1.1 connection over asyncio streams: a client light enough that 100 of
    them in one process measure the server, not the client library."""

    def __init__(self, port: int):
        self.port = port
        self.reader = self.writer = None

    async def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        data = json.dumps(body).encode() if body is not None else b""
        head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Length: {len(data)}\r\n"
        if data:
            head += "Content-Type: application/json\r\n"
        self.writer.write(head.encode() + b"\r\n" + data)
        await self.writer.drain()
        header = await self.reader.readuntil(b"\r\n\r\n")
        status = int(header.split(b" ", 2)[1])
        length = int(re.search(rb"(?i)content-length: *(\d+)", header).group(1))
        payload = await self.reader.readexactly(length)
        if re.search(rb"(?i)connection: *close", header):
            self.close()
        return status, payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


async def timed(conn: Connection, method: str, path: str, body: dict | None = None,
                timeout: float = 60.0) -> tuple[int, bytes, float]:
    t0 = time.perf_counter()
    status, payload = await asyncio.wait_for(conn.request(method, path, body), timeout)
    return status, payload, time.perf_counter() - t0


async def poll_health(port: int, stop: asyncio.Event, latencies: list[float], every: float = 0.1) -> None:
    conn = Connection(port)
    while not stop.is_set():
        status, _, seconds = await timed(conn, "GET", "/health")
        assert status == 200
        latencies.append(seconds)
        await asyncio.sleep(every)
    conn.close()


async def load_test(port: int, texts: dict[str, list[str]], clients: int, requests: int, timeout: float) -> dict:
    tasks = list(texts)
    latencies: list[float] = []
    errors: list[str] = []
    health_load: list[float] = []
    health_idle: list[float] = []
    slow = {"connections": 0, "answers": []}
    stop_slow, stop_health = asyncio.Event(), asyncio.Event()
    holder = asyncio.ensure_future(slow_client(port, stop_slow, slow))
    await asyncio.sleep(0.3)
    probe = Connection(port)
    for _ in range(20):                      # only the slow client is connected
        status, _, seconds = await timed(probe, "GET", "/health")
        assert status == 200
        health_idle.append(seconds)
        await asyncio.sleep(0.05)
    probe.close()

    async def client(c: int) -> None:
        conn = Connection(port)
        for i in range(requests):
            task = tasks[(c + i) % len(tasks)]
            text = texts[task][(c * requests + i) % len(texts[task])]
            t0 = time.perf_counter()
            try:
                status, payload, _ = await timed(conn, "POST", "/predict", {"task": task, "texts": [text]}, timeout)
                record = json.loads(payload)["predictions"][0] if status == 200 else {}
                if not {"label", "score", "tags"} & set(record):
                    errors.append(f"{status} {payload[:200]!r}")
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                conn.close()
            latencies.append(time.perf_counter() - t0)
        conn.close()

    poller = asyncio.ensure_future(poll_health(port, stop_health, health_load))
    t0 = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(clients)))
    wall = time.perf_counter() - t0
    stop_health.set()
    await poller
    stop_slow.set()
    await holder
    ms = lambda values, q: round(1000 * percentile(values, q), 1)   # noqa: E731
    return {"clients": clients, "requests_per_client": requests, "requests": len(latencies),
            "errors": len(errors), "error_samples": errors[:5], "wall_s": round(wall, 3),
            "requests_per_s": round(len(latencies) / wall, 1),
            "latency_ms": {"p50": ms(latencies, 50), "p90": ms(latencies, 90), "p99": ms(latencies, 99),
                           "max": round(1000 * max(latencies), 1)},
            "health_ms_slow_client_only": {"p50": ms(health_idle, 50), "max": round(1000 * max(health_idle), 1),
                                           "n": len(health_idle)},
            "health_ms_under_load": {"p50": ms(health_load, 50), "p99": ms(health_load, 99),
                                     "max": round(1000 * max(health_load), 1), "n": len(health_load)},
            "slow_client": {"connections": slow["connections"],
                            "answers": sorted({a["status"] for a in slow["answers"]}),
                            "held_s_max": max((a["held_s"] for a in slow["answers"]), default=None)}}


def screenshot(port: int, path: Path, text: str) -> None:
    """The page's *Compare tasks* tab after ``text`` was sent to every task, saved as PNG at ``path``
    (Debian's chromium, headless, through Selenium)."""
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=900,1000",
                 "--hide-scrollbars"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path="/usr/bin/chromedriver"), options=options)
    try:
        wait = WebDriverWait(driver, 60)
        driver.get(f"http://127.0.0.1:{port}/")
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "yes")
        driver.find_element(By.ID, "tab-all").click()
        driver.find_element(By.ID, "all-text").send_keys(text)
        driver.find_element(By.ID, "compare").click()
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#compare-table tbody").get_attribute("data-done") == "yes")
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",       # the whole page, not the window
                               {"width": 900, "height": height, "deviceScaleFactor": 1, "mobile": False})
        path.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(path))
    finally:
        driver.quit()


def markdown(report: dict) -> str:
    first = report["runs"][0]
    lines = [f"# {report['benchmark']}", "", f"Command: `{report['command']}`  ",
             f"Commit {report['git_commit']}, {report['device']}, {report['date']}. {report['note']}", "",
             f"Run: `{first['config']}` ({first['architecture']}, {first['settings']['encoder']}), "
             f"{first['settings']['tasks']} tasks, {first['settings']['steps']} training steps; `polytask serve` with "
             f"{first['settings']['workers']} worker(s) of {first['settings']['threads']} torch thread(s), default limits; "
             "single-text `POST /predict` requests, tasks in turn, texts from the test files; each client sends its "
             "requests one after the other on one keep-alive connection. The load tests run one after the other "
             "against the same server.", "",
             "| clients x requests | requests/s | p50 ms | p90 ms | p99 ms | max ms | errors | target met |",
             "|---|---|---|---|---|---|---|---|"]
    for run in report["runs"]:
        s, lat = run["serving"], run["serving"]["latency_ms"]
        lines.append(f"| {s['clients']} x {s['requests_per_client']} | {s['requests_per_s']} | {lat['p50']} | "
                     f"{lat['p90']} | {lat['p99']} | {lat['max']} | {s['errors']} | "
                     f"{'yes' if run['target_met'] else 'no'} |")
    lines += ["", "Target (issue 22): 0 errors and p99 under 1000 ms with 100 clients.", "",
              "A slow client sends its headers and half a body and holds the rest back during each test (the server "
              "answers it after its body timeout, and it connects again). `GET /health` meanwhile:", "",
              "| during | p50 ms | p99 ms | max ms | calls | slow client's answers |", "|---|---|---|---|---|---|"]
    for run in report["runs"]:
        s = run["serving"]
        hi, hl, slow = s["health_ms_slow_client_only"], s["health_ms_under_load"], s["slow_client"]
        answers = f"{', '.join(slow['answers']) or '–'} ({slow['connections']} connections)"
        lines.append(f"| only the slow client, before {s['clients']} clients | {hi['p50']} | – | {hi['max']} | "
                     f"{hi['n']} | |")
        lines.append(f"| the load of {s['clients']} clients | {hl['p50']} | {hl['p99']} | {hl['max']} | {hl['n']} | "
                     f"{answers} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", nargs="?", help="a trained run directory (default: train the FS-MTL BiLSTM briefly)")
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--work-dir", default=str(ROOT / "benchmarks/work/serving"), type=lambda p: str(Path(p).resolve()))
    ap.add_argument("--results-dir", default=str(ROOT / "benchmarks" / "results"), type=lambda p: str(Path(p).resolve()))
    ap.add_argument("--steps", type=int, default=50, help="training steps of the default run")
    ap.add_argument("--clients", default="100", help="concurrent clients; a comma list runs one test for each")
    ap.add_argument("--requests", type=int, default=20, help="requests per client")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch threads per server worker (default: polytask serve's, 1)")
    ap.add_argument("--timeout", type=float, default=60.0, help="client timeout per request, seconds")
    ap.add_argument("--screenshot", help="also save a screenshot of the page (compare tab) here, e.g. docs/serve-page.png")
    ap.add_argument("--screenshot-text", default="The pictures are sharp and the battery lasts for days, "
                    "but the manual is useless and the strap broke after a week.")
    args = ap.parse_args()
    data_dir = Path(args.data_dir).resolve()
    if args.run:
        run_dir = Path(args.run).resolve()
        name = run_dir.name
    else:
        name = "fs-mtl"
        run_polytask(name, CONFIG, [f"trainer.max_steps={args.steps}"], str(data_dir), args.work_dir, 1)
        run_dir = Path(args.work_dir) / name
    Path(args.work_dir).mkdir(parents=True, exist_ok=True)
    texts = request_texts(run_dir, data_dir, 200, seed=1)
    load_before = os.getloadavg()
    proc, port = start_server(run_dir, args.workers, args.threads, Path(args.work_dir) / "serve.log")
    try:
        tests = [asyncio.run(load_test(port, texts, int(n), args.requests, args.timeout))
                 for n in args.clients.split(",")]
        if args.screenshot:
            screenshot(port, Path(args.screenshot).resolve(), args.screenshot_text)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    import yaml
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    results = json.loads((run_dir / "results.json").read_text()) if (run_dir / "results.json").is_file() else {}
    rows = [{"name": f"{name}-serve-{serving['clients']}-clients", "architecture": cfg["model"]["architecture"],
             "config": CONFIG if not args.run else str(args.run),
             "settings": {"encoder": cfg["model"]["encoder"]["type"], "tasks": len(cfg["tasks"]),
                          "steps": results.get("steps"), "workers": args.workers, "threads": args.threads or 1},
             "serving": serving,
             "target_met": serving["errors"] == 0 and serving["latency_ms"]["p99"] < 1000}
            for serving in tests]
    busy = load_before[0] > 0.5 * (os.cpu_count() or 1)
    note = (f"Load average before the test {load_before[0]:.2f} (1 min, {os.cpu_count()} cores): "
            + ("the machine was busy with other work, so the figures are a lower bound of what an idle machine does."
               if busy else "the machine was otherwise idle (the client runs on the same machine)."))
    write_report(args, "serving", "requests/s", rows, [], markdown=markdown, command=argv_command(),
                 fields={"note": note, "load_average_before": [round(x, 2) for x in load_before]})
    for row in rows:
        if not row["target_met"]:
            print(f"[bench] {row['name']}: target not met (0 errors, p99 < 1 s)", file=sys.stderr)


if __name__ == "__main__":
    main()
