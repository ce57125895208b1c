"""The FastAPI app of ``polytask serve``: routes, limits, errors as JSON.

The model is loaded once per process (by the caller) and shared by every request; predictions run
under ``torch.inference_mode`` on one inference thread (never on the event loop, never two at
once), fed by a :class:`~polytask.serving.batching.MicroBatcher` per task. The event loop only
reads bodies, validates and answers, so a slow client never holds up another one.
"""
from __future__ import annotations

import asyncio
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib import metadata, resources

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from ..kinds import get_kind
from ..runner import LoadedRun, predict
from .batching import MicroBatcher
from .limits import ServeLimits
from .schemas import ErrorResponse, Health, TaskDescription, TasksResponse, TaskSchemas

logger = logging.getLogger(__name__)

STATIC = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}


class APIError(Exception):
    """An answer with a 4xx/5xx status and a JSON body ``{"error": message, "details": [...]}``."""

    def __init__(self, status: int, message: str, details: list | None = None):
        super().__init__(message)
        self.status, self.message, self.details = status, message, details


def _error(status: int, message: str, details: list | None = None) -> JSONResponse:
    body = {"error": message} if details is None else {"error": message, "details": details}
    return JSONResponse(body, status_code=status)


def _pydantic_details(errors) -> tuple[str, list]:
    """A one-line message and JSON-safe details (loc, msg, type) of pydantic errors."""
    details = [{"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]} for e in errors]
    where = lambda d: ".".join(d["loc"]) or "body"     # noqa: E731
    return "; ".join(f"{where(d)}: {d['msg']}" for d in details[:3]), details


def _blank(item) -> bool:
    """An input with an empty text in it (a blank string, a pair with a blank side, no tokens)."""
    if isinstance(item, str):
        return not item.strip()
    return not item or any(not part.strip() for part in item)


def create_app(run: LoadedRun, limits: ServeLimits) -> FastAPI:
    """The app answering for ``run`` within ``limits``."""
    configs = {t.name: t for t in run.cfg.tasks}
    kinds = {name: info["type"] for name, info in run.task_info.items()}
    schemas = TaskSchemas({name: (kind, configs[name]) for name, kind in kinds.items()}, limits.max_texts)
    descriptions = TasksResponse(tasks={
        name: TaskDescription(kind=kind, labels=list(run.task_info[name]["labels"]),
                              inputs=list(get_kind(kind).input_parts(configs[name])),
                              metrics=list(run.task_info[name].get("metrics", [])))
        for name, kind in kinds.items()})
    static = resources.files(__package__) / "static"
    page = (static / "index.html").read_text(encoding="utf-8")
    assets = {name: (static / name).read_bytes() for name in STATIC}
    batchers: dict[str, MicroBatcher] = {}

    def predictor(task: str):
        def call(inputs: list) -> list:
            with torch.inference_mode():
                return predict(run, task, inputs)
        return call

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # one inference thread per start of the app: the model never runs in two threads at once
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="polytask-inference")
        for name in kinds:
            batchers[name] = MicroBatcher(predictor(name), executor, limits.batch_wait_ms / 1000,
                                          limits.max_batch_texts)
            batchers[name].start()
        yield
        for batcher in batchers.values():
            await batcher.stop()
        executor.shutdown(wait=False)

    try:
        version = metadata.version("polytask")
    except metadata.PackageNotFoundError:       # run from a source tree
        version = "source"
    app = FastAPI(title="polytask", version=version, lifespan=lifespan,
                  description=f"Predictions of the run `{run.cfg.output_dir}` ({run.cfg.model.architecture}): "
                              f"{len(kinds)} tasks. Errors are JSON `{{\"error\": message}}` with a 4xx status.")
    app.state.batchers, app.state.limits, app.state.schemas = batchers, limits, schemas

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError):
        return _error(exc.status, exc.message, exc.details)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        message = exc.detail if exc.status_code != 404 else \
            f"no route {request.method} {request.url.path} (GET /, /health, /tasks, /docs; POST /predict)"
        return _error(exc.status_code, str(message))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        return _error(422, *_pydantic_details(exc.errors()))

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise APIError(400, f"bad Content-Length {declared!r}")
            if int(declared) > limits.max_body_bytes:
                raise APIError(413, f"the body has {declared} bytes; at most {limits.max_body_bytes} "
                                    "(--max-body-bytes)")
        body = bytearray()

        async def collect():
            async for chunk in request.stream():
                body.extend(chunk)
                if len(body) > limits.max_body_bytes:
                    raise APIError(413, f"the body is longer than {limits.max_body_bytes} bytes (--max-body-bytes)")
        try:
            await asyncio.wait_for(collect(), limits.body_timeout)
        except asyncio.TimeoutError:
            raise APIError(408, f"the body did not arrive within {limits.body_timeout:g} s (--body-timeout)") from None
        except ClientDisconnect:
            raise APIError(400, "the client went away before its body arrived") from None
        return bytes(body)

    def parse(raw: bytes) -> tuple[str, list]:
        """(task, inputs) of a /predict body, or the APIError that says what is wrong with it."""
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise APIError(400, f"the body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise APIError(422, 'the body must be a JSON object {"task": ..., "texts": [...]}')
        task = body.get("task")
        if not isinstance(task, str):
            raise APIError(422, "'task' (a string) is missing" if task is None else "'task' must be a string")
        if task not in schemas.adapters:
            raise APIError(404, f"unknown task {task!r}: this run has the tasks {', '.join(kinds)}")
        texts = body.get("texts")
        if isinstance(texts, list) and len(texts) > limits.max_texts:
            raise APIError(413, f"{len(texts)} texts in one request; at most {limits.max_texts} (--max-texts)")
        try:
            request = schemas.adapters[task].validate_python(body)
        except ValidationError as exc:
            raise APIError(422, *_pydantic_details(exc.errors())) from None
        texts = [list(t) if isinstance(t, tuple) else t for t in request.texts]
        for i, item in enumerate(texts):
            if _blank(item):
                raise APIError(422, f"input {i + 1}: empty text")
        try:
            get_kind(kinds[task]).parse_inputs(texts, configs[task])
        except ValueError as exc:
            raise APIError(422, str(exc)) from None
        return task, texts

    errors = {status: {"model": ErrorResponse} for status in (400, 404, 408, 413, 422, 500, 503)}

    @app.post("/predict", response_model=schemas.response, responses=errors,
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": {k: v for k, v in schemas.request_schema().items()
                                                  if k != "$defs"}}}}})
    async def predict_route(request: Request):
        """Predictions for `texts` of one `task`, as its kind writes them: a label with every label's
        probability, a score, one tag per token, or an answer."""
        task, texts = parse(await read_body(request))
        try:
            records = await asyncio.wait_for(batchers[task].submit(texts), limits.request_timeout)
        except asyncio.TimeoutError:
            raise APIError(503, f"no prediction within {limits.request_timeout:g} s (--request-timeout): "
                                "the server is busy; try again") from None
        except ValueError as exc:
            raise APIError(422, str(exc)) from None
        except Exception as exc:        # a failure of the model itself: logged once, answered as JSON
            logger.exception("prediction failed for task %s", task)
            raise APIError(500, f"the model failed on this request ({type(exc).__name__}: {exc}); "
                                "the server log has the details") from None
        # the records are the kind's own (its record_type, as response_model documents them): answered
        # as they are, without FastAPI validating them again on the event loop
        return JSONResponse({"task": task, "kind": kinds[task], "predictions": records})

    @app.get("/tasks", response_model=TasksResponse)
    async def tasks_route():
        """The run's tasks: kind, labels and the texts one input is made of."""
        return descriptions

    @app.get("/health", response_model=Health)
    async def health():
        """Answers as soon as the server listens (the model is loaded before it does)."""
        return {"status": "ok", "tasks": len(kinds)}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index():
        return page

    @app.get("/static/{name}", include_in_schema=False)
    async def asset(name: str):
        if name not in assets:
            raise APIError(404, f"no file {name}")
        return Response(assets[name], media_type=STATIC[name])

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            schema.setdefault("components", {}).setdefault("schemas", {}).update(
                schemas.request_schema().get("$defs", {}))
            app.openapi_schema = schema
        return app.openapi_schema
    app.openapi = openapi
    return app
