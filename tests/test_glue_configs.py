"""configs/glue/*.yaml on the real GLUE and SICK files (../shared/data): every task's split counts
against the files, GLUE's own metrics, and a few steps of the MT-DNN config on a tiny encoder."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from polytask.config import load_config
from polytask.tasks import load_task

ROOT = Path(__file__).resolve().parents[1]
NEW = ("rte", "mrpc", "cola", "stsb", "wnli", "sick", "mt-dnn")

# per task: (file under glue/ or sick/, whether it has a header row, dev_split size carved from train)
FILES = {"rte": ("glue/RTE", True, 250), "mrpc": ("glue/MRPC", True, 400), "cola": ("glue/CoLA", False, 500),
         "stsb": ("glue/STS-B", True, 500), "wnli": ("glue/WNLI", True, 64)}
METRICS = {"rte": ("accuracy",), "mrpc": ("f1", "accuracy"), "cola": ("mcc", "accuracy"),
           "stsb": ("pearson", "spearman"), "wnli": ("accuracy",), "sick_relatedness": ("pearson", "spearman"),
           "sick_entailment": ("accuracy",)}
# the official counts (../shared/data/PROVENANCE.md): train file rows, GLUE dev file rows
OFFICIAL = {"rte": (2490, 277), "mrpc": (3668, 408), "cola": (8551, 1043), "stsb": (5749, 1500), "wnli": (635, 71)}


def glue_data() -> Path:
    for candidate in (os.environ.get("POLYTASK_DATA"), ROOT.parent / "shared" / "data"):
        if candidate and (Path(candidate) / "glue" / "RTE" / "train.tsv").is_file() \
                and (Path(candidate) / "sick" / "SICK_train.txt").is_file():
            return Path(candidate)
    pytest.skip("GLUE/SICK data not found (set $POLYTASK_DATA)")


def rows(path: Path, header: bool) -> int:
    """Data rows of a GLUE/SICK file: its non-blank lines split on \\n only, less the header."""
    lines = [line for line in path.read_bytes().split(b"\n") if line.strip()]
    return len(lines) - header


@pytest.mark.data
@pytest.mark.parametrize("name", NEW)
def test_glue_config_splits_match_the_files(name):
    data = glue_data()
    cfg = load_config(ROOT / "configs" / "glue" / f"{name}.yaml")
    assert cfg.model.pretrained == "minilm"
    assert cfg.model.architecture == ("hard_sharing" if name == "mt-dnn" else "single_task")
    for task_cfg in cfg.tasks:
        task = load_task(task_cfg, data, cfg.seed)
        assert task.metrics == METRICS[task.name]
        counts = (len(task.train), len(task.dev), len(task.test))
        if task.name.startswith("sick_"):          # SICK's own splits: train, trial (dev), annotated test
            assert counts == (rows(data / "sick/SICK_train.txt", True), rows(data / "sick/SICK_trial.txt", True),
                              rows(data / "sick/SICK_test_annotated.txt", True)) == (4500, 500, 4927)
            continue
        folder, header, dev = FILES[task.name]
        train_rows, dev_rows = rows(data / folder / "train.tsv", header), rows(data / folder / "dev.tsv", header)
        assert (train_rows, dev_rows) == OFFICIAL[task.name]
        assert counts == (train_rows - dev, dev, dev_rows)      # GLUE dev = test; dev drawn from train
        assert {ex.line for ex in task.train}.isdisjoint(ex.line for ex in task.dev)


@pytest.mark.data
def test_glue_labels_are_the_files_labels():
    data = glue_data()
    cfg = load_config(ROOT / "configs" / "glue" / "mt-dnn.yaml")
    tasks = {t.name: load_task(t, data, cfg.seed) for t in cfg.tasks}
    assert tasks["rte"].labels == ["entailment", "not_entailment"]
    assert tasks["sick_entailment"].labels == ["CONTRADICTION", "ENTAILMENT", "NEUTRAL"]
    assert tasks["mrpc"].labels[-1] == "1"                   # F1's positive class: a paraphrase
    assert tasks["stsb"].test[0].label == "5.000" and tasks["sick_relatedness"].test[0].label == "3.3"
    assert tasks["rte"].test[0].text.startswith("Dana Reeve")     # raw text, case kept, for the tokenizer
