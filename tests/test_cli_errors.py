"""User errors through ``polytask.cli.main``: a non-zero exit code and one line on stderr,
``polytask: error: ...``, naming the file and line or the config key path."""
from __future__ import annotations

import pytest

from polytask.cli import main

from conftest import write_yaml


def run_cli(argv, capsys) -> tuple[int, str]:
    rc = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return rc, captured.err


def assert_error(rc: int, err: str, *needles: str) -> None:
    assert rc != 0
    assert err.startswith("polytask: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)


@pytest.fixture
def train_file(data_dir):
    return data_dir / "fdu" / "a.task.train"


@pytest.fixture
def test_file(data_dir):
    return data_dir / "fdu" / "b.task.test"


def train_cli(fdu_config, tmp_path, capsys, *extra):
    config = write_yaml(fdu_config, tmp_path / "exp.yaml")
    return run_cli(["train", config, "--quiet", *extra], capsys)


# ----------------------------------------------------------------------------- data errors


def test_data_line_without_a_label(fdu_config, tmp_path, capsys, train_file):
    lines = train_file.read_text(encoding="utf-8").splitlines()
    lines[6] = "this line has no tab and so no label"
    train_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rc, err = train_cli(fdu_config, tmp_path, capsys)
    assert_error(rc, err, f"{train_file}:7", "no label column")
    assert not (tmp_path / "run" / "last").exists()


def test_unknown_label_in_a_test_file(fdu_config, tmp_path, capsys, test_file):
    lines = test_file.read_text(encoding="utf-8").splitlines()
    lines[12] = "neutral\tsome text"
    test_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rc, err = train_cli(fdu_config, tmp_path, capsys)
    assert_error(rc, err, f"{test_file}:13", "unknown label 'neutral'", "'b'")


def test_unknown_label_in_train_with_fixed_labels(fdu_config, tmp_path, capsys, train_file):
    with train_file.open("a", encoding="utf-8") as f:
        f.write("\n5\tanother class\n")     # a blank line first: still line 62
    rc, err = train_cli(fdu_config, tmp_path, capsys)
    assert_error(rc, err, f"{train_file}:62", "unknown label '5'")


def test_empty_data_file(fdu_config, tmp_path, capsys, train_file):
    train_file.write_text("", encoding="utf-8")
    rc, err = train_cli(fdu_config, tmp_path, capsys)
    assert_error(rc, err, str(train_file), "empty")


def test_missing_data_file(fdu_config, tmp_path, capsys, test_file):
    test_file.unlink()
    rc, err = train_cli(fdu_config, tmp_path, capsys)
    assert_error(rc, err, str(test_file), "not found")


def test_data_dir_from_the_command_line_is_used(fdu_config, tmp_path, capsys):
    fdu_config["data_dir"] = str(tmp_path / "nowhere")
    rc, err = train_cli(fdu_config, tmp_path, capsys)
    assert_error(rc, err, str(tmp_path / "nowhere" / "fdu" / "a.task.train"), "not found")


def test_bad_table_line(fdu_config, tmp_path, capsys, data_dir):
    (data_dir / "t.tsv").write_text("text\tlabel\ngood\t1\nbad\t0\tx\n" + "ok\t0\n" * 20,
                                    encoding="utf-8")
    fdu_config["tasks"][1] = {"name": "b", "format": "tsv", "train": "t.tsv", "test": None}
    rc, err = train_cli(fdu_config, tmp_path, capsys)
    assert_error(rc, err, f"{data_dir / 't.tsv'}:3", "expected 2 columns, found 3")


# ----------------------------------------------------------------------------- config errors


def test_config_with_an_unknown_key(fdu_config, tmp_path, capsys):
    fdu_config["model"]["encoder"]["hiden_dim"] = 8
    rc, err = train_cli(fdu_config, tmp_path, capsys)
    assert_error(rc, err, str(tmp_path / "exp.yaml"), "model.encoder.hiden_dim", "unknown key")


def test_config_with_a_wrong_type(fdu_config, tmp_path, capsys):
    fdu_config["trainer"]["max_steps"] = "abc"
    rc, err = train_cli(fdu_config, tmp_path, capsys)
    assert_error(rc, err, str(tmp_path / "exp.yaml"), "trainer.max_steps", "expected an integer")


def test_config_with_a_value_outside_its_choices(fdu_config, tmp_path, capsys):
    fdu_config["trainer"]["schedule"] = "zigzag"
    rc, err = train_cli(fdu_config, tmp_path, capsys)
    assert_error(rc, err, "trainer.schedule", "'zigzag'", "round_robin")


def test_override_with_an_unknown_key(fdu_config, tmp_path, capsys):
    rc, err = train_cli(fdu_config, tmp_path, capsys, "model.encoder.hidden_dimm=8")
    assert_error(rc, err, "model.encoder.hidden_dimm", "unknown key")


def test_override_with_a_wrong_type(fdu_config, tmp_path, capsys):
    rc, err = train_cli(fdu_config, tmp_path, capsys, "trainer.eval_every=often")
    assert_error(rc, err, "trainer.eval_every", "expected an integer")


def test_override_with_an_index_out_of_range(fdu_config, tmp_path, capsys):
    rc, err = train_cli(fdu_config, tmp_path, capsys, "tasks.7.train=x")
    assert_error(rc, err, "tasks.7.train")


def test_unknown_architecture(fdu_config, tmp_path, capsys):
    fdu_config["model"]["architecture"] = "hard_shareing"
    rc, err = train_cli(fdu_config, tmp_path, capsys)
    assert_error(rc, err, "model.architecture", "'hard_shareing'", "hard_sharing", "shared_private",
                 "adversarial_shared_private", "single_task")


def test_missing_config_file(tmp_path, capsys):
    rc, err = run_cli(["train", tmp_path / "nope.yaml"], capsys)
    assert_error(rc, err, str(tmp_path / "nope.yaml"), "not found")


def test_config_that_is_not_yaml(tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text("model: {encoder: [\n", encoding="utf-8")
    rc, err = run_cli(["train", path], capsys)
    assert_error(rc, err, str(path), "not valid YAML")


def test_stray_option_is_a_usage_error(fdu_config, tmp_path, capsys):
    config = write_yaml(fdu_config, tmp_path / "exp.yaml")
    with pytest.raises(SystemExit) as info:
        main(["train", str(config), "--no-such-flag"])
    assert info.value.code != 0
    assert "--no-such-flag" in capsys.readouterr().err


# ----------------------------------------------------------------------------- predict errors


@pytest.fixture
def tiny_run(fdu_config, tmp_path, capsys):
    fdu_config["trainer"].update(max_steps=4, eval_every=4)
    rc, err = train_cli(fdu_config, tmp_path, capsys)
    assert rc == 0, err
    return tmp_path / "run"


def test_predict_with_an_unknown_task(tiny_run, tmp_path, capsys):
    path = tmp_path / "in.txt"
    path.write_text("good\n", encoding="utf-8")
    rc, err = run_cli(["predict", tiny_run, "--task", "zzz", "--input", path], capsys)
    assert_error(rc, err, "unknown task 'zzz'", "a, b")


def test_predict_with_a_missing_input_file(tiny_run, tmp_path, capsys):
    rc, err = run_cli(["predict", tiny_run, "--task", "a", "--input", tmp_path / "gone.txt"], capsys)
    assert_error(rc, err, str(tmp_path / "gone.txt"))


def test_evaluate_with_data_whose_labels_changed(tiny_run, tmp_path, capsys, data_dir):
    # the saved config fixes labels ["0", "1"]; a test file with a third label is named by line
    test_file = data_dir / "fdu" / "a.task.test"
    with test_file.open("a", encoding="utf-8") as f:
        f.write("9\tnew label\n")
    rc, err = run_cli(["evaluate", tiny_run, "--data-dir", data_dir], capsys)
    assert_error(rc, err, f"{test_file}:21", "unknown label '9'")
