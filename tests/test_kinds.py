"""Task kinds end to end: pair regression (STS-B-like) with Pearson/Spearman, a headerless file
read by column numbers with Matthews correlation (CoLA-like), and the errors that come before any
data is read."""
from __future__ import annotations

import copy
import os
import json
import random
from pathlib import Path

import pytest

from conftest import FILLER, make_raw_config, write_yaml
from polytask.cli import main
from polytask.config import ConfigError, load_config
from polytask.runner import load_run, predict, train


def write_similarity(data_dir, n: int, seed: int, name: str) -> None:
    """sentence1, sentence2, score: the score is the number of times "same" occurs in sentence2
    (0-4), so it can be read off the second text; a header row, as STS-B has."""
    rng = random.Random(seed)
    rows = ["sentence1\tsentence2\tscore"]
    for _ in range(n):
        k = rng.randint(0, 4)
        a = " ".join(rng.choice(FILLER) for _ in range(rng.randint(3, 6)))
        words = [rng.choice(FILLER) for _ in range(rng.randint(2, 5))] + ["same"] * k
        rng.shuffle(words)
        rows.append(f"{a}\t{' '.join(words)}\t{k:.3f}")
    (data_dir / "sim").mkdir(exist_ok=True)
    (data_dir / "sim" / name).write_text("\n".join(rows) + "\n", encoding="utf-8")


def write_acceptability(data_dir, n: int, seed: int, name: str) -> None:
    """CoLA's layout, no header: source, label, mark, sentence (label 1 when "fine" occurs)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = i % 2
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 6))] + ["fine" if label else "odd"]
        rng.shuffle(words)
        rows.append(f"src{i % 3}\t{label}\t{'' if label else '*'}\t{' '.join(words)}")
    (data_dir / "acc").mkdir(exist_ok=True)
    (data_dir / "acc" / name).write_text("\n".join(rows) + "\n", encoding="utf-8")


@pytest.fixture
def glue_like(tmp_path, data_dir) -> dict:
    write_similarity(data_dir, 120, 1, "train.tsv")
    write_similarity(data_dir, 40, 2, "test.tsv")
    write_acceptability(data_dir, 120, 3, "train.tsv")
    write_acceptability(data_dir, 40, 4, "test.tsv")
    raw = make_raw_config(data_dir, tmp_path / "glue-run", max_steps=240, eval_every=80)
    raw["task_defaults"] = {"format": "tsv", "dev_split": {"policy": "random", "size": 20}}
    raw["tasks"] = [
        {"name": "sim", "type": "regression", "train": "sim/train.tsv", "test": "sim/test.tsv",
         "text_column": "sentence1", "text_b_column": "sentence2", "label_column": "score"},
        {"name": "acc", "type": "classification", "train": "acc/train.tsv", "test": "acc/test.tsv",
         "header": False, "text_column": 3, "label_column": 1, "metric": ["mcc", "accuracy"]},
    ]
    return raw


def test_pair_regression_and_mcc_train_and_report_every_metric(glue_like, capsys):
    results = train(load_config(raw=glue_like))
    out = capsys.readouterr().out
    assert "sim pearson, acc mcc" in out and "test spearman" in out and "test accuracy" in out
    saved = json.loads((Path(glue_like["output_dir"]) / "results.json").read_text())
    assert saved["metrics"] == {"sim": ["pearson", "spearman"], "acc": ["mcc", "accuracy"]}
    assert set(saved["test_metrics"]["sim"]) == {"pearson", "spearman"}
    assert saved["test"]["sim"] == saved["test_metrics"]["sim"]["pearson"]      # the first metric selects
    assert saved["test"]["acc"] == saved["test_metrics"]["acc"]["mcc"]
    assert results["test_metrics"]["sim"]["pearson"] > 80, results["test_metrics"]   # it learned to count
    assert results["test_metrics"]["acc"]["mcc"] > 80, results["test_metrics"]
    run = load_run(glue_like["output_dir"])
    [low, high] = predict(run, "sim", [["the movie", "a plot"], ["the movie", "same same same same"]])
    assert set(low) == {"score"} and high["score"] > low["score"] + 1.5
    with pytest.raises(ValueError, match="sentence pairs"):
        predict(run, "sim", ["one text only"])


def test_regression_target_that_is_not_a_number_names_file_and_line(glue_like, data_dir):
    path = data_dir / "sim" / "train.tsv"
    lines = path.read_text().splitlines()
    lines[5] = lines[5].rsplit("\t", 1)[0] + "\thigh"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"train\.tsv:6: target 'high' in column 'score' is not a finite number"):
        train(load_config(raw=glue_like), quiet=True)


def test_a_column_number_beyond_the_line_is_an_error(glue_like):
    raw = copy.deepcopy(glue_like)
    raw["tasks"][1]["text_column"] = 7
    with pytest.raises(ValueError, match=r"train\.tsv:1: no column number 7 \(the line has 4 columns"):
        train(load_config(raw=raw), quiet=True)


@pytest.mark.parametrize("change, message", [
    ({"model": {"memory_slots": 7}}, r"model\.memory_slots: the architecture 'hard_sharing' does not take this key "
                                     r"\(it takes: .*embedding_dim"),
    ({"model": {"architecture": "meta_lstm", "encoder": {"type": "transformer"}}},
     r"model\.encoder\.type: meta_lstm builds on bilstm encoders, not 'transformer'"),
    ({"model": {"architecture": "regularized_heads"}},
     r"tasks\[0\]\.type: the architecture 'regularized_heads' cannot serve regression tasks \(sim\)"),
    ({"model": {"architecture": "low_supervision"}},
     r"tasks\[0\]\.text_b_column: the architecture 'low_supervision' reads single texts"),
    ({"tasks": {1: {"metric": "pearson"}}}, r"tasks\[1\]\.metric: 'pearson' is not a metric of classification"),
    ({"tasks": {0: {"type": "ranking"}}}, r"tasks\[0\]\.type: unknown task type 'ranking'"),
])
def test_bad_combinations_fail_before_any_data_is_read(glue_like, tmp_path, capsys, change, message):
    raw = copy.deepcopy(glue_like)
    raw["data_dir"] = str(tmp_path / "no-such-dir")                  # reading any data would fail
    for key, value in change.items():
        if key == "model":
            raw["model"].update(value)
        else:
            for i, fields in value.items():
                raw["tasks"][i].update(fields)
    with pytest.raises(ConfigError, match=message):
        load_config(raw=raw)
    path = write_yaml(raw, tmp_path / "bad.yaml")
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("polytask: error:") == 1 and "Traceback" not in err and "no-such-dir" not in err


def glue_data() -> Path:
    root = Path(__file__).resolve().parents[1]
    for candidate in (os.environ.get("POLYTASK_DATA"), root.parent / "shared" / "data"):
        if candidate and (Path(candidate) / "glue" / "STS-B" / "train.tsv").is_file():
            return Path(candidate)
    pytest.skip("GLUE data not found (set $POLYTASK_DATA)")


@pytest.mark.data
@pytest.mark.slow
def test_stsb_cola_config_on_real_glue_data(tmp_path):
    """configs/glue/stsb-cola.yaml reads STS-B (5749 train rows, dev file of 1500 as test) and CoLA
    (8551 headerless rows, 1043 in its dev file); a short run's Pearson and MCC in results.json are
    what SciPy and scikit-learn give on the run's own predictions of the test files."""
    from scipy.stats import pearsonr
    from sklearn.metrics import matthews_corrcoef
    from polytask.experiment import load_tasks
    data = glue_data()
    cfg = load_config("configs/glue/stsb-cola.yaml", overrides=[
        f"output_dir={tmp_path / 'run'}", "trainer.max_steps=40", "trainer.eval_every=20", "trainer.progress=false",
        "model.embedding_dim=16", "model.encoder.hidden_dim=16", "data.batch_size=16"])
    tasks = load_tasks(cfg, data)
    assert [(len(t.train), len(t.dev), len(t.test)) for t in tasks.values()] == [(5249, 500, 1500), (8051, 500, 1043)]
    assert tasks["stsb"].test[0].label == "5.000" and tasks["stsb"].pair
    assert tasks["cola"].labels == ["0", "1"] and tasks["cola"].metrics == ("mcc", "accuracy")
    results = train(cfg, data_dir=data, quiet=True)
    run = load_run(tmp_path / "run")
    stsb, cola = tasks["stsb"].test, tasks["cola"].test
    scores = [p["score"] for p in predict(run, "stsb", [[" ".join(e.tokens), " ".join(e.tokens_b)] for e in stsb])]
    assert results["test_metrics"]["stsb"]["pearson"] == pytest.approx(
        100 * pearsonr([float(e.label) for e in stsb], scores)[0], abs=1e-3)
    labels = [p["label"] for p in predict(run, "cola", [" ".join(e.tokens) for e in cola])]
    assert results["test_metrics"]["cola"]["mcc"] == pytest.approx(
        100 * matthews_corrcoef([e.label for e in cola], labels), abs=1e-6)


def test_a_task_key_its_kind_does_not_read_is_refused_unless_inherited(glue_like, tmp_path):
    raw = copy.deepcopy(glue_like)
    raw["tasks"][1]["tag_scheme"] = "BIO"                       # a tagging option on a classification task
    with pytest.raises(ConfigError, match=r"tasks\[1\]\.tag_scheme: classification tasks do not read this key"):
        load_config(raw=raw)
    raw = copy.deepcopy(glue_like)
    raw["task_defaults"]["tag_column"] = 2                      # inherited from task_defaults: not the task's own
    cfg = load_config(raw=raw)
    from polytask.config import save_config
    save_config(cfg, tmp_path / "config.yaml")                  # the run's record keeps only what each kind reads
    import yaml
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert "tag_column" not in saved["tasks"][0] and "text_b_column" in saved["tasks"][0]
    assert "text_b_column" not in saved["tasks"][1]
    from dataclasses import replace
    from polytask.config import TaskConfig
    reloaded = load_config(tmp_path / "config.yaml").tasks     # it loads again, as the run used it
    assert reloaded == [replace(t, tag_column=TaskConfig().tag_column) for t in cfg.tasks]
