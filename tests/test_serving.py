"""The inference server (FastAPI): each kind's request and response, every error as JSON with its
status, micro-batching, concurrent clients, and a client that holds back its body."""
from __future__ import annotations

import json
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient

from pydantic import TypeAdapter

from polytask.kinds import get_kind
from polytask.runner import load_run, predict
from conftest import live_server
from polytask.serving import ServeLimits, create_app

LIMITS = ServeLimits(max_texts=4, max_body_bytes=2000, body_timeout=1.0, request_timeout=10.0)


@pytest.fixture(scope="module")
def run(served_run):
    return load_run(served_run)


@pytest.fixture(scope="module")
def client(run):
    with TestClient(create_app(run, LIMITS)) as c:
        yield c


def same(records):          # what JSON makes of the library's records
    return json.loads(json.dumps(records))


# ----------------------------------------------------------------------------- every kind

def test_each_kind_answers_what_the_library_predicts(client, run):
    cases = {"a": ["the movie was good", "it was bad"],
             "p": [["the plot and the actors", "the plot indeed"], ["we saw it", "we never saw"]],
             "sim": [["the film", "same same same film"], ["a story", "a story"]],
             "chunk": ["the dog runs", ["a", "cat", "eats"]]}
    for task, texts in cases.items():
        r = client.post("/predict", json={"task": task, "texts": texts})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["task"] == task and body["kind"] == run.task_info[task]["type"]
        assert body["predictions"] == same(predict(run, task, texts))
        # each record is its kind's record_type, as /docs says (the app does not validate them again)
        client.app.state.schemas.response.model_validate(body)
        record_type = TypeAdapter(get_kind(body["kind"]).record_type)
        assert [record_type.validate_python(r, strict=True) for r in body["predictions"]] == body["predictions"]
    a = client.post("/predict", json={"task": "a", "texts": ["the movie was good"]}).json()["predictions"][0]
    assert a["label"] == "1" and a["probability"] > 0.5 and set(a["probabilities"]) == {"0", "1"}
    p = client.post("/predict", json={"task": "p", "texts": [["we saw it", "we never saw"]]}).json()
    assert p["predictions"][0]["label"] == "contradiction"
    sim = client.post("/predict", json={"task": "sim", "texts": [["a film", "same same same same"],
                                                                 ["a film", "the film"]]}).json()["predictions"]
    assert sim[0]["score"] > sim[1]["score"] + 1.0
    (chunk,) = client.post("/predict", json={"task": "chunk", "texts": ["the dog runs"]}).json()["predictions"]
    assert chunk == {"tokens": ["the", "dog", "runs"], "tags": ["B-NP", "I-NP", "B-VP"]}


def test_qa_takes_a_context_and_a_question(fdu_config):
    from test_decanlp import qa_config
    from polytask.config import load_config
    from polytask.runner import train
    raw = qa_config(fdu_config, "seq2seq")
    raw["trainer"]["max_steps"] = 40
    train(load_config(raw=raw), quiet=True)
    qa_run = load_run(raw["output_dir"])
    pair = ["the movie was good", "is it good or bad ?"]
    with TestClient(create_app(qa_run, LIMITS)) as c:
        assert c.get("/tasks").json()["tasks"]["a"]["inputs"] == ["context", "question"]
        r = c.post("/predict", json={"task": "a", "texts": [pair]})
        assert r.status_code == 200
        assert r.json() == {"task": "a", "kind": "qa", "predictions": same(predict(qa_run, "a", [pair]))}
        assert set(r.json()["predictions"][0]) == {"answer"}
        r = c.post("/predict", json={"task": "a", "texts": ["a context without a question"]})
        assert r.status_code == 422 and "texts.0: Input should be a valid" in r.json()["error"]


def test_tasks_health_page_and_docs(client):
    tasks = client.get("/tasks").json()["tasks"]
    assert tasks["a"] == {"kind": "classification", "labels": ["0", "1"], "inputs": ["text"], "metrics": ["accuracy"]}
    assert tasks["p"]["inputs"] == ["text", "text_b"] and tasks["sim"]["inputs"] == ["text", "text_b"]
    assert tasks["sim"]["labels"] == [] and tasks["chunk"]["inputs"] == ["tokens"]
    assert client.get("/health").json() == {"status": "ok", "tasks": 4}
    page = client.get("/")
    assert page.status_code == 200 and 'src="/static/app.js"' in page.text
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["discriminator"]["mapping"]) == {"a", "p", "sim", "chunk"}
    pair = schema["components"]["schemas"]["PRequest"]["properties"]["texts"]
    assert pair["maxItems"] == 4 and pair["items"]["prefixItems"] == [{"type": "string"}] * 2
    assert "TagsRecord" in schema["components"]["schemas"]


# ----------------------------------------------------------------------------- errors

@pytest.mark.parametrize("body, status, message", [
    (b'{"task": "a", "texts": ["x"', 400, "not valid JSON"),
    (b'["a"]', 422, "must be a JSON object"),
    (b'{"texts": ["x"]}', 422, "'task' (a string) is missing"),
    (b'{"task": "nope", "texts": ["x"]}', 404, "unknown task 'nope': this run has the tasks a, p, sim, chunk"),
    (b'{"task": "a", "texts": ["x", "y", "z", "w", "v"]}', 413, "5 texts in one request; at most 4"),
    (b'{"task": "a", "texts": []}', 422, "texts: List should have at least 1 item"),
    (b'{"task": "a", "texts": ["fine", "  "]}', 422, "input 2: empty text"),
    (b'{"task": "p", "texts": [["a", ""]]}', 422, "input 1: empty text"),
    (b'{"task": "chunk", "texts": [[]]}', 422, "input 1: empty text"),
    (b'{"task": "a", "texts": [3]}', 422, "texts.0: Input should be a valid string"),
    (b'{"task": "a", "texts": "one text"}', 422, "texts: Input should be a valid list"),
    (b'{"task": "p", "texts": ["not a pair"]}', 422, "texts.0: Input should be a valid"),
    (b'{"task": "a", "texts": ["x"], "extra": 1}', 422, "extra: Extra inputs are not permitted"),
    (b'{"task": "a", "texts": ["' + b"x" * 3000 + b'"]}', 413, "at most 2000 (--max-body-bytes)"),
])
def test_errors_are_json_with_their_status(client, body, status, message):
    r = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert message in r.json()["error"]


def test_unknown_routes_and_methods_are_json(client):
    r = client.get("/elsewhere")
    assert r.status_code == 404 and "no route GET /elsewhere" in r.json()["error"]
    r = client.get("/predict")
    assert r.status_code == 405 and r.json()["error"] == "Method Not Allowed"


def test_a_body_sent_as_a_form_is_read_as_json(client):
    """``curl -d`` says application/x-www-form-urlencoded; the body is JSON all the same."""
    r = client.post("/predict", content=b'{"task": "a", "texts": ["good"]}',
                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and r.json()["predictions"][0]["label"] == "1"


def test_a_non_finite_output_is_an_error_record(run, served_run):
    import torch
    broken = load_run(served_run)
    with torch.no_grad():
        next(broken.model.parameters()).fill_(float("nan"))
    with TestClient(create_app(broken, LIMITS)) as c:
        r = c.post("/predict", json={"task": "a", "texts": ["good"]})
    assert r.status_code == 200 and "not finite" in r.json()["predictions"][0]["error"]


def test_a_slow_prediction_gets_a_503(run, monkeypatch):
    import polytask.serving.app as app_module
    monkeypatch.setattr(app_module, "predict", lambda *a: time.sleep(1.0) or [])
    with TestClient(create_app(run, ServeLimits(request_timeout=0.2))) as c:
        r = c.post("/predict", json={"task": "a", "texts": ["good"]})
    assert r.status_code == 503 and "no prediction within 0.2 s" in r.json()["error"]


# ----------------------------------------------------------------------------- concurrency

def test_concurrent_clients_get_their_own_answers_in_shared_batches(run):
    app = create_app(run, ServeLimits(batch_wait_ms=50))
    texts = [f"{'good' if i % 2 else 'bad'} {'the movie' * (i % 3)} {i}" for i in range(24)]
    expected = same(predict(run, "a", texts))
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        def ask(i):
            return http.post("/predict", json={"task": "a", "texts": [texts[i]]}).json()["predictions"][0]
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, range(len(texts))))
        for got, want in zip(answers, expected):
            assert got["label"] == want["label"]
            assert got["probability"] == pytest.approx(want["probability"], abs=1e-5)
        batches = app.state.batchers["a"].batches
    assert batches < len(texts), "no two requests shared a forward pass"


def test_one_failing_request_fails_alone_in_a_shared_batch():
    import asyncio
    from polytask.serving.batching import MicroBatcher
    calls = []

    def predict_fn(inputs):
        calls.append(list(inputs))
        if "bad" in inputs:
            raise ValueError("bad input")
        return [x.upper() for x in inputs]

    async def scenario():
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(predict_fn, pool, wait_s=0.05, max_items=10)
            batcher.start()
            results = await asyncio.gather(batcher.submit(["a", "b"]), batcher.submit(["bad"]),
                                           batcher.submit(["c"]), return_exceptions=True)
            await batcher.stop()
            return results
    results = asyncio.run(scenario())
    assert results[0] == ["A", "B"] and results[2] == ["C"]
    assert isinstance(results[1], ValueError)
    assert calls == [["a", "b", "bad", "c"], ["a", "b"], ["bad"], ["c"]]     # together, then each alone


def test_a_shared_batch_never_exceeds_max_items():
    """A request that would overflow the forward pass opens the next one instead."""
    import asyncio
    from polytask.serving.batching import MicroBatcher
    calls = []

    def predict_fn(inputs):
        calls.append(list(inputs))
        return [x.upper() for x in inputs]

    async def scenario():
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(predict_fn, pool, wait_s=0.05, max_items=4)
            batcher.start()
            results = await asyncio.gather(batcher.submit(["a", "b", "c"]), batcher.submit(["d", "e", "f"]),
                                           batcher.submit(["g"]))
            await batcher.stop()
            return results
    assert asyncio.run(scenario()) == [["A", "B", "C"], ["D", "E", "F"], ["G"]]
    assert calls == [["a", "b", "c"], ["d", "e", "f", "g"]]


def _read_reply(sock: socket.socket) -> str:
    """One whole HTTP reply: its head and a body of Content-Length bytes (they may come in
    separate segments), or what came before the server closed the connection."""
    data = b""
    while True:
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            length = re.search(rb"content-length: *(\d+)", head, re.I)
            if length and len(body) >= int(length.group(1)):
                return data.decode()
        chunk = sock.recv(4096)
        if not chunk:
            return data.decode()
        data += chunk


def test_health_answers_while_a_client_holds_back_its_body(run):
    with live_server(create_app(run, ServeLimits(body_timeout=3.0))) as url:
        port = int(url.rsplit(":", 1)[1])
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 40\r\n\r\n{\"task\": ")
        time.sleep(0.2)
        t0 = time.perf_counter()
        health = httpx.get(url + "/health", timeout=2)
        waited = time.perf_counter() - t0
        answer = httpx.post(url + "/predict", json={"task": "a", "texts": ["good"]}, timeout=2)
        assert health.status_code == 200 and waited < 0.5, waited
        assert answer.status_code == 200
        slow.settimeout(10)
        reply = _read_reply(slow)                  # after --body-timeout, the slow client gets a 408
        slow.close()
    assert reply.startswith("HTTP/1.1 408") and "did not arrive within 3 s" in reply


# ----------------------------------------------------------------------------- the command

def test_without_the_extra_the_message_names_it(monkeypatch, served_run, capsys):
    import sys
    from polytask.cli import main
    monkeypatch.setitem(sys.modules, "fastapi", None)           # as if it were not installed
    assert main(["serve", str(served_run)]) == 2
    assert "polytask serve needs fastapi: pip install 'polytask[serve]'" in capsys.readouterr().err


def test_a_bad_limit_names_its_option(served_run, capsys):
    from polytask.cli import main
    assert main(["serve", str(served_run), "--max-texts", "0"]) == 2
    assert "--max-texts: must be positive, not 0" in capsys.readouterr().err


def test_serve_with_two_workers(served_run):
    """``polytask serve --workers 2``: two processes on one socket, each with the model."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path
    src = str(Path(__file__).resolve().parents[1] / "src")
    proc = subprocess.Popen([sys.executable, "-m", "polytask.cli", "serve", str(served_run), "--port", "0",
                             "--workers", "2"], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": src})
    try:
        lines = []
        while not any("ready" in line for line in lines):
            lines.append(proc.stderr.readline())
            assert proc.poll() is None, "".join(lines)
        port = re.search(r"http://127\.0\.0\.1:(\d+) with 2 workers", lines[-1]).group(1)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            answers = [http.post("/predict", json={"task": "a", "texts": ["good"]}).json() for _ in range(6)]
        assert all(a["predictions"][0]["label"] == "1" for a in answers)
        pids = set()
        while len(pids) < 2:
            line = proc.stderr.readline()
            pids.update(re.findall(r"worker (\d+) loaded", line))
        assert len(pids) == 2
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0


def test_the_page_files_are_package_data():
    """pyproject.toml ships every file of serving/static (a wheel without them serves no page)."""
    import fnmatch
    from pathlib import Path
    tomllib = pytest.importorskip("tomllib")
    root = Path(__file__).resolve().parents[1]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "polytask.serving"]
    files = [p.relative_to(root / "src/polytask/serving").as_posix()
             for p in (root / "src/polytask/serving/static").iterdir()]
    assert sorted(files) == ["static/app.js", "static/index.html", "static/style.css"]
    assert all(any(fnmatch.fnmatch(f, pattern) for pattern in patterns) for f in files)


def test_a_failure_of_the_model_is_a_json_500_not_a_plain_text_page(run, monkeypatch):
    import polytask.serving.app as app_module

    def broken(run, task, inputs):
        raise RuntimeError("out of memory")
    monkeypatch.setattr(app_module, "predict", broken)
    with TestClient(create_app(run, LIMITS)) as c:
        task = next(iter(run.task_info))
        answer = c.post("/predict", json={"task": task, "texts": ["good"]})
    assert answer.status_code == 500
    assert "RuntimeError: out of memory" in answer.json()["error"]
