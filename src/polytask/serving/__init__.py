"""An inference server for a trained run: FastAPI on uvicorn, with a page to try it at ``/``.

    polytask serve RUN_DIR --port 8080 [--workers 2]

``POST /predict`` takes ``{"task": T, "texts": [...]}`` with inputs as the task's kind reads them,
``GET /tasks`` lists the tasks, ``GET /health`` says the server is up, ``/docs`` shows the API.
FastAPI and uvicorn are the ``serve`` extra: this module imports them only when a server is made.
"""
from __future__ import annotations

from .limits import ServeLimits

EXTRA = "pip install 'polytask[serve]'"


def require_serve() -> None:
    """Raise a PolytaskError naming the extra when FastAPI or uvicorn is missing."""
    from ..errors import PolytaskError
    missing = []
    for module in ("fastapi", "uvicorn", "pydantic"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise PolytaskError(f"polytask serve needs {', '.join(missing)}: {EXTRA}")


def create_app(run, limits: ServeLimits | None = None):
    """The FastAPI app answering for ``run`` (a :class:`~polytask.runner.LoadedRun`)."""
    require_serve()
    from .app import create_app as make
    return make(run, limits or ServeLimits())


def serve(run_dir, host: str = "127.0.0.1", port: int = 8080, workers: int = 1,
          limits: ServeLimits | None = None, threads: int = 0) -> None:
    """Serve ``run_dir`` until interrupted (see :func:`polytask.serving.server.serve`)."""
    require_serve()
    from .server import serve as run_server
    run_server(run_dir, host, port, workers, limits or ServeLimits(), threads)


__all__ = ["EXTRA", "ServeLimits", "create_app", "require_serve", "serve"]
