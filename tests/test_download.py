"""Tests of ``polytask data download`` against a loopback HTTP server and local mirrors."""
from __future__ import annotations

import functools
import hashlib
import http.server
import logging
import os
import socket
import threading
from pathlib import Path

import pytest

from polytask.cli import main
from polytask.data import download as dl
from polytask.data.readers import DataError

FILES = {"one.task.train": b"1\tgood\n0\tbad\n", "one.task.test": b"1\tfine\n",
         "two.task.unlabel": "caf\u00e9 text\n".encode("utf-8")}


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(dl, "TIMEOUT_S", 5.0)


@pytest.fixture
def mirror(tmp_path, monkeypatch) -> Path:
    """A directory of fake files; the fdu-mtl hash table is replaced by their hashes."""
    root = tmp_path / "mirror"
    root.mkdir()
    for name, data in FILES.items():
        (root / name).write_bytes(data)
    hashes = {name: hashlib.sha256(data).hexdigest() for name, data in FILES.items()}
    monkeypatch.setattr(dl.DATASETS["fdu-mtl"], "sha256", hashes)
    return root


@pytest.fixture
def server(mirror):
    """Serve the mirror on 127.0.0.1; yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(mirror))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def _dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # closed again: connections are refused


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_download_over_http(server, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="polytask")
    paths = dl.download("fdu-mtl", tmp_path / "data", base_url=server)
    folder = tmp_path / "data" / "fdu-mtl"
    assert paths == [folder / name for name in sorted(FILES)]
    for name, data in FILES.items():
        assert (folder / name).read_bytes() == data
    assert _leftovers(folder) == []
    err = caplog.text
    assert "fdu-mtl/one.task.test (1/3): downloaded" in err and "3 files verified" in err


def test_skip_if_present_and_force(server, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="polytask")
    dl.download("fdu-mtl", tmp_path, base_url=server)
    caplog.clear()
    dead = _dead_url()
    assert len(dl.download("fdu-mtl", tmp_path, base_url=dead)) == 3  # nothing fetched
    assert caplog.text.count("present, checksum ok") == 3
    with pytest.raises(dl.DownloadError):
        dl.download("fdu-mtl", tmp_path, base_url=dead, force=True)
    assert (tmp_path / "fdu-mtl" / "one.task.test").read_bytes() == FILES["one.task.test"]


def test_corrupt_local_file_is_replaced(server, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="polytask")
    folder = tmp_path / "fdu-mtl"
    folder.mkdir()
    (folder / "one.task.test").write_bytes(b"truncated")
    dl.download("fdu-mtl", tmp_path, base_url=server)
    assert (folder / "one.task.test").read_bytes() == FILES["one.task.test"]
    assert "present but its checksum differs" in caplog.text


def test_hash_mismatch(server, mirror, tmp_path):
    (mirror / "one.task.test").write_bytes(b"tampered\n")
    with pytest.raises(dl.DownloadError) as info:
        dl.download("fdu-mtl", tmp_path, base_url=server)
    message = str(info.value)
    assert "one.task.test" in message
    assert hashlib.sha256(FILES["one.task.test"]).hexdigest() in message  # expected
    assert hashlib.sha256(b"tampered\n").hexdigest() in message  # actual
    folder = tmp_path / "fdu-mtl"
    assert not (folder / "one.task.test").exists() and _leftovers(folder) == []


def test_no_network_message(mirror, tmp_path):
    with pytest.raises(dl.DownloadError) as info:
        dl.download("fdu-mtl", tmp_path, base_url=_dead_url())
    assert isinstance(info.value, DataError)
    message = str(info.value)
    assert "failed" in message and "--data-dir" in message and "$POLYTASK_DATA" in message
    assert "--base-url" in message
    assert _leftovers(tmp_path / "fdu-mtl") == []


def test_http_404_names_the_file(server, mirror, tmp_path):
    (mirror / "two.task.unlabel").unlink()
    with pytest.raises(dl.DownloadError, match=r"two\.task\.unlabel.*HTTP 404"):
        dl.download("fdu-mtl", tmp_path, base_url=server)


@pytest.mark.parametrize("form", ["path", "file-url", "data-dir-layout"])
def test_local_mirror(mirror, tmp_path, form):
    base = str(mirror)
    if form == "file-url":
        base = mirror.as_uri()
    elif form == "data-dir-layout":  # a data directory: the files are in <dir>/fdu-mtl/
        os.rename(mirror, tmp_path / "fdu-mtl-copy")
        (tmp_path / "mirror").mkdir()
        os.rename(tmp_path / "fdu-mtl-copy", mirror / "fdu-mtl")
    paths = dl.download("fdu-mtl", tmp_path / "out", base_url=base)
    assert [p.read_bytes() for p in paths] == [FILES[name] for name in sorted(FILES)]


def test_local_mirror_errors(mirror, tmp_path):
    with pytest.raises(dl.DownloadError, match="not found"):
        dl.download("fdu-mtl", tmp_path, base_url=str(tmp_path / "nowhere"))
    (mirror / "one.task.test").unlink()
    with pytest.raises(dl.DownloadError, match=r"one\.task\.test not found"):
        dl.download("fdu-mtl", tmp_path / "out", base_url=str(mirror))


def test_unknown_dataset_lists_known(tmp_path):
    with pytest.raises(dl.DownloadError, match=r"unknown dataset 'nope' \(known: fdu-mtl\)"):
        dl.download("nope", tmp_path)


def test_cli_download(server, tmp_path, capsys):
    assert main(["data", "download", "fdu-mtl", "--data-dir", str(tmp_path), "--base-url", server]) == 0
    assert "3 files verified" in capsys.readouterr().err
    assert main(["data", "download", "fdu-mtl", "--data-dir", str(tmp_path / "x"),
                 "--base-url", _dead_url()]) == 2
    err = capsys.readouterr().err
    assert err.startswith("polytask: error: fdu-mtl: download of") and "--data-dir" in err
    assert main(["data", "download", "nope", "--data-dir", str(tmp_path)]) == 2
    assert "known: fdu-mtl" in capsys.readouterr().err


def test_embedded_hash_table():
    table = dl.FDU_MTL_SHA256
    assert len(table) == 48
    domains = {name.split(".")[0] for name in table}
    assert len(domains) == 16
    assert set(table) == {f"{d}.task.{s}" for d in domains for s in ("train", "test", "unlabel")}
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in table.values())


@pytest.mark.data
def test_embedded_hashes_match_shared_sums():
    sums = Path(__file__).parents[1].parent / "shared" / "data" / "SHA256SUMS"
    if not sums.is_file():
        pytest.skip("shared/data/SHA256SUMS not found")
    listed = {}
    for line in sums.read_text(encoding="utf-8").splitlines():
        digest, _, name = line.partition("  ")
        if name.startswith("fdu-mtl/"):
            listed[name[len("fdu-mtl/"):]] = digest
    assert listed == dl.FDU_MTL_SHA256
