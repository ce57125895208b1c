"""Running the app on uvicorn: one process, or ``workers`` processes that each load the model once
and share the listening socket."""
from __future__ import annotations

import dataclasses
import json
import logging
import os

import uvicorn

from .app import create_app
from .limits import ServeLimits

ENV = "POLYTASK_SERVE"       # how the worker processes learn the run and the limits
logger = logging.getLogger("polytask.serving")


class ReadyServer(uvicorn.Server):
    """A uvicorn server that says ``[polytask] ready: ...`` once its socket listens (a script may
    wait for that line, or poll ``GET /health``)."""

    def __init__(self, config: uvicorn.Config, name: str):
        super().__init__(config)
        self.name = name

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        if self.started:
            logger.info("ready: serving %s on http://%s:%s (page /, API docs /docs, GET /health, GET /tasks, "
                        "POST /predict)", self.name, self.config.host, self.port)

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
    root = logging.getLogger("polytask")
    if not root.handlers:                     # a process of its own: the command line's handler is not here
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[polytask] %(message)s"))
        root.addHandler(handler)
        root.setLevel(settings.get("log_level", logging.INFO))
    run = load(settings["run_dir"], settings["threads"])
    logger.info("worker %d loaded %s", os.getpid(), settings["run_dir"])
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
    logger.info("loading %s ...", run_dir)
    if workers == 1:
        app = create_app(load(run_dir, threads), limits)
        ReadyServer(uvicorn_config(app, host, port), str(run_dir)).run()
        return
    load(run_dir, threads)                     # a broken run directory fails here, once, with its message
    os.environ[ENV] = json.dumps({"run_dir": str(run_dir), "threads": threads, "limits": dataclasses.asdict(limits),
                                  "log_level": logging.getLogger("polytask").getEffectiveLevel()})
    from uvicorn.supervisors import Multiprocess
    config = uvicorn_config("polytask.serving.server:worker_app", host, port, factory=True, workers=workers)
    sock = config.bind_socket()
    sock.listen(config.backlog)               # listening from here: early requests wait for a worker
    logger.info("ready: serving %s on http://%s:%s with %d workers (requests wait until a worker has loaded the "
                "model)", run_dir, host, sock.getsockname()[1], workers)
    Multiprocess(config, sockets=[sock]).run()
