"""Every command of the README runs (issue 23, item 8), so the README cannot drift from the code.

The commands are read from README.md itself: each line of a ``bash`` block and each inline
``polytask ...``/``python ...`` command. They run in the README's order, in a scratch directory
laid out as the README assumes (``configs/`` of this repository, tiny look-alike datasets in
``../shared/data``), in-process through :func:`polytask.cli.main` (``polytask serve`` as a
subprocess, ``curl`` through urllib). Training commands get a few steps of a tiny model (the
overrides in :data:`TINY`, placed before the README's own overrides so those still win);
placeholders (``RUN``, ``CONFIG``, ...) are filled in by :data:`PLACEHOLDERS`; commands that need
a run trained further down the README get it first (:data:`NEEDS`). A README command this file
does not know fails :func:`test_every_readme_command_is_known` (in the fast loop); running them is
the slow :func:`test_readme_commands_run`.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from polytask.cli import main
from polytask.data import download as dl

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# commands not run here, and why
NOT_RUN = {
    'python3 -m pip install torch==2.13.0 && python3 -m pip install -e ".[dev]"':
        "installs the packages (.ci/run does it on a clean clone)",
    "python3 -m pytest tests -q": "this suite itself",
    'python3 -m pytest tests -q -m "not slow"': "this suite itself",
    "python benchmarks/serving.py --data-dir ../shared/data":
        "a load test of minutes on FDU-MTL; tests/test_benchmark_scripts.py runs it on a tiny run",
    "python benchmarks/fdu_mtl.py --data-dir ../shared/data":
        "a benchmark of days on this CPU; tests/test_benchmark_scripts.py runs its seeds, the hand loop and the "
        "report on tiny FDU-like data",
    **{command: "MiniLM fine-tuning on GLUE, hours on a CPU; tests/test_glue_configs.py loads every GLUE config "
                "on the real data and tests/test_benchmark_scripts.py runs the benchmark for two steps"
       for command in ("polytask train configs/glue/rte.yaml --data-dir ../shared/data",
                       "polytask train configs/glue/mt-dnn.yaml --data-dir ../shared/data",
                       "python benchmarks/glue.py --data-dir ../shared/data")},
    **{command: "three seeds of 16 domains each; tests/test_seeds.py trains seeds, resumes them and reports "
                "their significance on toy data" for command in (
        "polytask train configs/fdu-mtl/hard-sharing.yaml --data-dir ../shared/data --seeds 1,2,3 --jobs 2 "
        "--output-dir runs/seeds/hard-sharing",
        "polytask train configs/fdu-mtl/single-task.yaml --data-dir ../shared/data --seeds 1,2,3 --jobs 2 "
        "--output-dir runs/seeds/single-task",
        "polytask report runs/seeds/hard-sharing runs/seeds/single-task --output report-seeds/",
        "polytask sweep sweep.yaml")},
    **{command: "needs several GPUs or machines; tests/test_distributed.py trains, kills and resumes 2 CPU "
                "processes under torchrun with gloo" for command in (
        "torchrun --nproc_per_node=4 -m polytask.cli train configs/fdu-mtl/hard-sharing.yaml --data-dir ../shared/data",
        *(f"torchrun --nnodes=2 --node_rank={rank} --nproc_per_node=8 --rdzv_backend c10d --rdzv_endpoint "
          "node0.example.org:29400 -m polytask.cli train configs/fdu-mtl/hard-sharing.yaml --data-dir ../shared/data"
          for rank in (0, 1)))},
    **{command: "a 20-trial search on 16 domains; tests/test_tune.py runs and resumes a 3-trial study on toy data"
       for command in ("polytask tune configs/fdu-mtl/hard-sharing.yaml --space space.yaml --trials 20 "
                       "--data-dir ../shared/data output_dir=runs/tune/fs-mtl trainer.max_steps=3000",)},
}

# placeholders in the README's prose, filled in
PLACEHOLDERS = {
    "polytask inspect RUN --task T --input texts.txt":
        "polytask inspect runs/fdu-mtl/arc2 --task books --input texts.txt",
    "polytask train CONFIG --resume": "polytask train configs/fdu-mtl/hard-sharing.yaml --resume",
    "polytask train cfg.yaml model.encoder.hidden_dim=64": "polytask train cfg.yaml model.encoder.hidden_dim=64",
    "polytask data vectors CONFIG --output vectors.txt":
        "polytask data vectors configs/fdu-mtl/hard-sharing.yaml --output vectors.txt",
    "polytask data download fdu-mtl --data-dir DIR": "polytask data download fdu-mtl --data-dir downloads",
    "polytask predict RUN --task books": "polytask predict runs/decanlp --task books",
}

# commands that need a run the README trains further down (or from one of its YAML examples)
NEEDS = {
    "polytask inspect runs/fdu-mtl/arc2 --task books --input texts.txt": [
        "polytask train configs/fdu-mtl/hard-sharing.yaml --data-dir ../shared/data "
        "model.architecture=shared_memory_arc2 --output-dir runs/fdu-mtl/arc2"],
    "polytask predict runs/decanlp --task books": ["decaNLP YAML example"],
}

# stdin of commands the README feeds by hand
STDIN = {"polytask predict runs/decanlp --task books": "a gripping read\tIs this review negative or positive?\n"}

TINY = ["trainer.max_steps=4", "trainer.eval_every=100", "trainer.progress=false", "model.embedding_dim=8",
        "model.encoder.hidden_dim=8", "data.eval_batch_size=512"]
TINY_META = ["model.meta_hidden_dim=8", "model.meta_dim=8", "model.meta_rank=8"]

DOMAINS = ["apparel", "baby", "books", "camera_photo", "dvd", "electronics", "health_personal_care", "imdb",
           "kitchen_housewares", "magazines", "MR", "music", "software", "sports_outdoors", "toys_games", "video"]


def readme_commands() -> list[str]:
    """Every command of the README, in order: the lines of ``bash`` blocks (without trailing
    comments) and the inline commands (whitespace normalised)."""
    text = README.read_text(encoding="utf-8")
    found: list[tuple[int, str]] = []
    for block in re.finditer(r"```bash\n(.*?)```", text, re.S):
        for offset, line in enumerate(block.group(1).splitlines()):
            line = re.sub(r"(^|\s+)#\s.*$", "", line).strip()          # comments
            if line:
                found.append((block.start() + offset, line))
    fenced = [(m.start(), m.end()) for m in re.finditer(r"```.*?```", text, re.S)]
    for match in re.finditer(r"`((?:polytask|python3?)\s[^`]+)`", text):
        words = match.group(1).split()
        if len(words) > 2 and not any(a <= match.start() < b for a, b in fenced):   # not a bare `polytask train`
            found.append((match.start(), " ".join(words)))
    return [command for _, command in sorted(found)]


# ----------------------------------------------------------------------------- tiny data


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(["the", "film", "plot", "a", "read", "story", "very", "was"]) for _ in range(n))


def write_tiny_data(data: Path) -> None:
    """Look-alikes of the datasets the README's configs read, a few kB each."""
    rng = random.Random(1)
    fdu = data / "fdu-mtl"
    fdu.mkdir(parents=True)
    for domain in DOMAINS:
        for split, n in (("train", 230), ("test", 20)):
            lines = []
            for i in range(n):
                label = i % 2
                lines.append(f"{label}\t{_words(rng, 3)} {'good' if label else 'bad'} {_words(rng, 2)}\n")
            (fdu / f"{domain}.task.{split}").write_text("".join(lines))
        (fdu / f"{domain}.task.unlabel").write_text("".join(f"{_words(rng, 6)}\n" for _ in range(20)))
    ud = data / "ud-en-ewt"
    ud.mkdir()
    for split, n in (("train", 30), ("dev", 10), ("test", 10)):
        (ud / f"en_ewt-ud-{split}.conllu").write_text("".join(
            f"# sent_id = {i}\n1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_\n2\tdog\tdog\tNOUN\tNN\t_\t3\tnsubj\t_\t_\n"
            f"3\tbarks\tbark\tVERB\tVBZ\t_\t0\troot\t_\t_\n\n" for i in range(n)))
    chunk = data / "conll2000"
    chunk.mkdir()
    for split, n in (("train", 1050), ("test", 20)):
        (chunk / f"{split}.txt").write_text("The DT B-NP\ndog NN I-NP\nbarks VBZ B-VP\n\n" * n)
    for task, n in (("STS-B", 520), ("CoLA", 520)):
        (data / "glue" / task).mkdir(parents=True)
        for split, rows in (("train", n), ("dev", 20)):
            if task == "STS-B":
                text = "sentence1\tsentence2\tscore\n" + "".join(
                    f"{_words(rng, 4)}\t{_words(rng, 4)}\t{rng.uniform(0, 5):.2f}\n" for _ in range(rows))
            else:
                text = "".join(f"src\t{i % 2}\t\t{_words(rng, 5)}\n" for i in range(rows))
            (data / "glue" / task / f"{split}.tsv").write_text(text)
    squad = data / "squad1.1"
    squad.mkdir()
    articles = [{"title": f"t{a}", "paragraphs": [{"context": "the film was good and the plot was bad", "qas": [
        {"id": f"{a}-{q}", "question": "what was good ?", "answers": [{"text": "the film", "answer_start": 0}]}
        for q in range(50)]}]} for a in range(10)]
    (squad / "dev-v1.1.json").write_text(json.dumps({"data": articles, "version": "1.1"}))


# ----------------------------------------------------------------------------- running a command


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Session:
    """The scratch directory the README's commands run in, and what they leave running."""

    def __init__(self, work: Path, port: int):
        self.work, self.port = work, port
        self.done: set[str] = set()
        self.server: subprocess.Popen | None = None

    def argv(self, tokens: list[str]) -> list[str]:
        """polytask's arguments, with :data:`TINY` after the config (train) or run (transfer)."""
        args = [t.replace("8080", str(self.port)) for t in tokens[1:]]
        if args[0] == "train":
            extra = TINY + (TINY_META if "meta-lstm" in args[1] else [])
            return [args[0], args[1], *extra, *args[2:]]
        if args[0] == "transfer":
            return [args[0], args[1], *[t for t in TINY if t.startswith("trainer.")], *args[2:]]
        return args

    def run(self, command: str, capsys, monkeypatch) -> None:
        command = PLACEHOLDERS.get(command, command)
        if command in self.done:                     # run earlier, for a command that needed it
            return
        for needed in NEEDS.get(command, []):
            self.run(needed, capsys, monkeypatch)
        if command == "decaNLP YAML example":
            self.train_decanlp_example(capsys)
        elif command.startswith("until curl"):
            self.wait_for_health()
        elif command.startswith("curl"):
            self.curl(shlex.split(command))
        elif command.endswith(" &"):
            self.serve(shlex.split(command[:-2]))
        else:
            stdin = STDIN.get(command)
            if command.startswith("echo "):
                text, command = command.split(" | ", 1)
                stdin = shlex.split(text)[1] + "\n"
            monkeypatch.setattr(sys, "stdin", io.StringIO(stdin or ""))
            rc = main(self.argv(shlex.split(command)))
            out, err = capsys.readouterr()
            assert rc == 0, f"{command}\n{err[-3000:]}"
            self.check(command, out)
        self.done.add(command)

    def check(self, command: str, out: str) -> None:
        """What a few commands must have produced, beyond exit 0."""
        if " predict " in command and "--output-format conll" not in command:
            record = json.loads(out.splitlines()[0])
            assert "label" in record or "answer" in record, record
        if command.startswith("polytask report"):
            assert (self.work / "report" / "report.md").is_file()
        if command.startswith("polytask inspect"):
            assert json.loads(out.splitlines()[0])["inspect"]
        if command.startswith("polytask export"):
            directory = self.work / shlex.split(command)[-1]
            spec = json.loads((directory / "model.json").read_text())
            assert (directory / spec["file"]).is_file() and spec["verified"]["max_abs_difference"] < 1e-4, spec
        if command.startswith("polytask data download"):
            assert len(list((self.work / "downloads" / "fdu-mtl").iterdir())) == 48

    def serve(self, tokens: list[str]) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
        self.server = subprocess.Popen([sys.executable, "-m", "polytask.cli", *self.argv(tokens)], cwd=self.work,
                                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait_for_health(self) -> None:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://localhost:{self.port}/health", timeout=5) as response:
                    assert response.status == 200
                    return
            except OSError:
                assert self.server.poll() is None, "polytask serve exited"
                assert time.monotonic() < deadline, "polytask serve never answered /health"
                time.sleep(0.5)

    def curl(self, tokens: list[str]) -> None:
        data = tokens[tokens.index("-d") + 1].encode() if "-d" in tokens else None
        url = "http://" + next(t for t in tokens if t.startswith("localhost:")).replace("8080", str(self.port))
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=30) as response:
            answer = json.loads(response.read())
        if url.endswith("/tasks"):
            assert answer["tasks"]["books"]["kind"] == "classification", answer
            return
        texts = json.loads(data)["texts"]
        assert len(answer["predictions"]) == len(texts), answer
        assert all(p["label"] in ("0", "1") for p in answer["predictions"]), answer

    def train_decanlp_example(self, capsys) -> None:
        """The README's decaNLP YAML, completed with an output directory and a tiny trainer."""
        text = README.read_text(encoding="utf-8")
        section = text[text.index("## Every task as question answering"):]
        raw = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))
        raw.update(output_dir="runs/decanlp", data_dir="../shared/data")
        (self.work / "decanlp.yaml").write_text(yaml.safe_dump(raw))
        rc = main(["train", "decanlp.yaml", *TINY])
        assert rc == 0, capsys.readouterr().err[-3000:]
        capsys.readouterr()

    def close(self) -> None:
        if self.server is not None:
            self.server.terminate()
            self.server.wait(timeout=30)


# ----------------------------------------------------------------------------- the tests


def test_every_readme_command_is_known():
    """Each command is run below or said why not; the configs it names exist."""
    commands = readme_commands()
    assert len(commands) >= 25, commands
    for command in commands:
        if command in NOT_RUN:
            continue
        command = PLACEHOLDERS.get(command, command)
        assert not re.search(r"\b(RUN|CONFIG|DIR|T)\b", command), f"a placeholder to fill in: {command}"
        assert command.split()[0] in ("polytask", "curl", "until", "echo"), f"not a known command: {command}"
        for token in shlex.split(command):
            if token.startswith("configs/"):
                assert (ROOT / token).is_file(), f"{command}: {token} does not exist"
    for command in list(PLACEHOLDERS) + list(NOT_RUN):
        assert command in commands, f"no longer in the README: {command}"


@pytest.mark.slow
def test_readme_commands_run(tmp_path, capsys, monkeypatch):
    work = tmp_path / "polytask"
    work.mkdir()
    (work / "configs").symlink_to(ROOT / "configs")
    write_tiny_data(tmp_path / "shared" / "data")
    (work / "texts.txt").write_text("a gripping read\nthe plot was bad\n")
    cfg = yaml.safe_load((ROOT / "configs/fdu-mtl/hard-sharing.yaml").read_text())
    (work / "cfg.yaml").write_text(yaml.safe_dump({**cfg, "output_dir": "runs/cfg"}))
    monkeypatch.chdir(work)
    monkeypatch.setenv("POLYTASK_DATA", str(tmp_path / "shared" / "data"))   # commands without --data-dir
    mirror = tmp_path / "shared" / "data" / "fdu-mtl"                         # `data download` fetches from here
    monkeypatch.setattr(dl.DATASETS["fdu-mtl"], "base_url", str(mirror))
    monkeypatch.setattr(dl.DATASETS["fdu-mtl"], "sha256",
                        {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in mirror.iterdir()})
    session = Session(work, _free_port())
    try:
        for command in readme_commands():
            if command not in NOT_RUN:
                session.run(command, capsys, monkeypatch)
    finally:
        session.close()
