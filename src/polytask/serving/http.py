"""A small JSON-over-HTTP prediction server on the standard library (no extra dependency).

    polytask serve RUN_DIR --port 8080
    curl -s localhost:8080/tasks
    curl -s -X POST localhost:8080/predict -d '{"task": "books", "texts": ["a great read"]}'

``GET /tasks`` lists the tasks with their type and labels; ``POST /predict`` takes ``task`` and
``texts`` as the task's kind reads them (strings; ``[a, b]`` pairs for pair tasks and pair
regression; whitespace-tokenised sentences or token lists for tagging; ``[context, question]``
for qa) and answers ``{"predictions": [...]}``. Bad requests get a 400 with a message.
Requests are served one at a time: the model is not shared across threads.
"""
from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler, HTTPServer

from ..runner import LoadedRun, predict

MAX_BODY = 10 * 1024 * 1024


def make_server(run: LoadedRun, host: str = "127.0.0.1", port: int = 8080) -> HTTPServer:
    """An ``HTTPServer`` answering for ``run``; call ``serve_forever()`` (``port=0``: any free port)."""

    class Handler(BaseHTTPRequestHandler):
        def _send(self, code: int, payload: dict) -> None:
            # a NaN is not JSON: predict() answers a non-finite output with an error for that input
            body = json.dumps(payload, ensure_ascii=False, allow_nan=False).encode("utf-8")
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path == "/tasks":
                self._send(200, {"tasks": run.task_info})
            elif self.path == "/health":
                self._send(200, {"status": "ok"})
            else:
                self._send(404, {"error": f"no route {self.path} (GET /tasks, /health; POST /predict)"})

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/predict":
                self._send(404, {"error": f"no route {self.path} (POST /predict)"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length <= 0 or length > MAX_BODY:
                self._send(400, {"error": f"the body must be JSON of 1 to {MAX_BODY} bytes"})
                return
            try:
                request = json.loads(self.rfile.read(length))
                task, texts = request["task"], request["texts"]
                if not isinstance(texts, list):
                    raise ValueError("'texts' must be a list")
                self._send(200, {"task": task, "predictions": predict(run, task, texts)})
            except (KeyError, ValueError, TypeError, json.JSONDecodeError) as exc:
                message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
                self._send(400, {"error": f"bad request: {message}"})

        def log_message(self, fmt: str, *args) -> None:   # quiet by default
            pass

    return HTTPServer((host, port), Handler)
