"""The README's commands on the real FDU-MTL data: train (a few steps), evaluate, predict,
and word vectors trained on the tasks' own text."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from polytask.cli import main

ROOT = Path(__file__).parents[1]


def real_data() -> Path:
    for candidate in (os.environ.get("POLYTASK_DATA"), ROOT.parent / "shared" / "data"):
        if candidate and (Path(candidate) / "fdu-mtl" / "books.task.train").is_file():
            return Path(candidate)
    pytest.skip("FDU-MTL data not found (set $POLYTASK_DATA)")


@pytest.mark.data
@pytest.mark.slow
def test_readme_train_evaluate_predict_on_fdu_mtl(tmp_path: Path, capsys):
    data = real_data()
    run = tmp_path / "run"
    code = main(["train", "configs/fdu-mtl/hard-sharing.yaml", "--data-dir", str(data), "--output-dir",
                 str(run), "trainer.max_steps=24", "trainer.eval_every=12", "trainer.progress=false",
                 "model.encoder.hidden_dim=16", "model.embedding_dim=16", "data.max_length=60"])
    assert code == 0
    out = capsys.readouterr().out
    for domain in ("books", "magazines", "MR", "average"):   # the per-task dev/test table
        assert domain in out
    results = json.loads((run / "results.json").read_text())
    assert len(results["test"]) == 16 and results["steps"] == 24
    assert all(0.0 <= v <= 100.0 for v in results["test"].values())
    log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [12, 24] and len(log[0]["dev"]) == 16

    assert main(["evaluate", str(run), "--split", "test", "--data-dir", str(data)]) == 0
    table = capsys.readouterr().out
    avg = float(next(line for line in table.splitlines() if line.startswith("average")).split()[1])
    assert avg == pytest.approx(results["test_avg"], abs=0.01)

    texts = tmp_path / "reviews.txt"
    texts.write_text("this blender broke after a week , awful\nworks great , love it\n")
    preds = tmp_path / "preds.jsonl"
    assert main(["predict", str(run), "--task", "kitchen_housewares", "--input", str(texts),
                 "--output", str(preds)]) == 0
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    assert len(rows) == 2 and all(r["label"] in ("0", "1") and 0.5 <= r["probability"] <= 1 for r in rows)


@pytest.mark.data
def test_data_vectors_command_uses_train_and_unlabeled_text(tmp_path: Path):
    pytest.importorskip("gensim")
    data = real_data()
    raw = yaml.safe_load((ROOT / "configs/fdu-mtl/hard-sharing.yaml").read_text())
    raw["tasks"] = [{"name": "MR"}]                       # the smallest domain keeps this quick
    cfg = tmp_path / "mr.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    out = tmp_path / "vectors.txt"
    assert main(["data", "vectors", str(cfg), "--data-dir", str(data), "--output", str(out),
                 "--dim", "8", "--epochs", "1"]) == 0
    header = out.read_text(encoding="utf-8").split("\n", 1)[0].split()
    assert int(header[1]) == 8 and int(header[0]) > 1000
