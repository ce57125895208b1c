"""Running the app on uvicorn: one process, or ``workers`` processes that each load the model once
and share the listening socket."""
from __future__ import annotations

import dataclasses
import json
import os
import sys

import uvicorn

from .app import create_app
from .limits import ServeLimits

ENV = "POLYTASK_SERVE"       # how the worker processes learn the run and the limits


class ReadyServer(uvicorn.Server):
    """A uvicorn server that says ``[polytask] ready: ...`` once its socket listens (a script may
    wait for that line, or poll ``GET /health``)."""

    def __init__(self, config: uvicorn.Config, name: str):
        super().__init__(config)
        self.name = name

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        if self.started:
            print(f"[polytask] ready: serving {self.name} on http://{self.config.host}:{self.port} "
                  "(page /, API docs /docs, GET /health, GET /tasks, POST /predict)", file=sys.stderr, flush=True)

    @property
    def port(self) -> int:
        """The port it listens on (the one the system chose for port 0)."""
        return self.servers[0].sockets[0].getsockname()[1] if self.servers else self.config.port


def uvicorn_config(app, host: str, port: int, **kw) -> uvicorn.Config:
    """uvicorn's settings for the app: quiet, and idle keep-alive connections closed after 5 s."""
    return uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_keep_alive=5,
                          h11_max_incomplete_event_size=64 * 1024, **kw)


def load(run_dir, threads: int):
    from ..runner import load_run
    import torch
    if threads:
        torch.set_num_threads(threads)
    return load_run(run_dir)


def worker_app():
    """The app of one worker process (``uvicorn --factory``), from the settings in ``$POLYTASK_SERVE``."""
    settings = json.loads(os.environ[ENV])
    run = load(settings["run_dir"], settings["threads"])
    print(f"[polytask] worker {os.getpid()} loaded {settings['run_dir']}", file=sys.stderr, flush=True)
    return create_app(run, ServeLimits(**settings["limits"]))


def serve(run_dir, host: str, port: int, workers: int, limits: ServeLimits, threads: int) -> None:
    """Serve ``run_dir`` until Ctrl-C. With ``workers`` > 1, uvicorn starts that many processes on one
    socket, each loading the model. Each runs ``threads`` torch threads (default 1: a forward pass
    over a few short texts gains little from intra-op threads, and spinning threads cost a lot on a
    busy machine; measured with the FS-MTL BiLSTM on the shared 2-core CPU, one text took 22 ms with
    one thread and 207 ms with two). Scale with workers."""
    if workers < 1:
        raise ValueError(f"--workers: at least 1, not {workers}")
    threads = threads or 1
    print(f"[polytask] loading {run_dir} ...", file=sys.stderr, flush=True)
    if workers == 1:
        app = create_app(load(run_dir, threads), limits)
        ReadyServer(uvicorn_config(app, host, port), str(run_dir)).run()
        return
    load(run_dir, threads)                     # a broken run directory fails here, once, with its message
    os.environ[ENV] = json.dumps({"run_dir": str(run_dir), "threads": threads,
                                  "limits": dataclasses.asdict(limits)})
    from uvicorn.supervisors import Multiprocess
    config = uvicorn_config("polytask.serving.server:worker_app", host, port, factory=True, workers=workers)
    sock = config.bind_socket()
    sock.listen(config.backlog)               # listening from here: early requests wait for a worker
    print(f"[polytask] ready: serving {run_dir} on http://{host}:{sock.getsockname()[1]} with {workers} workers "
          "(requests wait until a worker has loaded the model)", file=sys.stderr, flush=True)
    Multiprocess(config, sockets=[sock]).run()
