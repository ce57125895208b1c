"""The HTTP server answers on loopback with the same predictions as the library."""
from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest

from polytask.config import load_config
from polytask.runner import load_run, predict, train
from polytask.serving import make_server


@pytest.fixture
def server(fdu_config):
    train(load_config(raw=fdu_config), quiet=True)
    run = load_run(fdu_config["output_dir"])
    srv = make_server(run, "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield run, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def call(url: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_predict_over_http_matches_the_library(server):
    run, url = server
    status, tasks = call(url + "/tasks")
    assert status == 200 and set(tasks["tasks"]) == {"a", "b"}
    texts = ["the movie was good", "it was bad"]
    status, answer = call(url + "/predict", {"task": "a", "texts": texts})
    assert status == 200
    assert answer["predictions"] == json.loads(json.dumps(predict(run, "a", texts)))


def test_bad_requests_get_400_with_a_message(server):
    _, url = server
    status, answer = call(url + "/predict", {"task": "nope", "texts": ["x"]})
    assert status == 400 and "unknown task" in answer["error"]
    status, answer = call(url + "/predict", {"texts": ["x"]})
    assert status == 400 and "task" in answer["error"]
    status, _ = call(url + "/elsewhere")
    assert status == 404
