"""Word vectors: GloVe text, word2vec text and binary files, and word2vec trained on our text."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from polytask.data.readers import DataError
from polytask.data.vectors import read_vectors, train_word2vec, vectors_for_vocab
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
