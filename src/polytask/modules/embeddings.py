"""Word embeddings, randomly initialised or loaded from pretrained vectors."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn


class WordEmbedding(nn.Module):
    """Token ids (B, T) -> vectors (B, T, D). Id 0 (padding) maps to zeros.

    Args:
        vocab_size: number of rows.
        embedding_dim: D.
        vectors: optional (vocab_size, D) initial values (e.g. GloVe or word2vec rows).
        freeze: keep the vectors fixed during training.
        dropout: dropout on the output vectors.
        word_dropout: in training, each word id is replaced by <unk> (id 1) with this probability,
            so the model learns to do without a word's own vector (and leans on its characters).
    """

    def __init__(self, vocab_size: int, embedding_dim: int, vectors: Optional[torch.Tensor] = None,
                 freeze: bool = False, dropout: float = 0.0, init_std: float = 0.1,
                 word_dropout: float = 0.0):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        nn.init.normal_(self.embedding.weight, std=init_std)
        if vectors is not None:
            if tuple(vectors.shape) != (vocab_size, embedding_dim):
                raise ValueError(f"vectors have shape {tuple(vectors.shape)}, "
                                 f"expected ({vocab_size}, {embedding_dim})")
            with torch.no_grad():
                self.embedding.weight.copy_(vectors)
        with torch.no_grad():
            self.embedding.weight[0].zero_()
        self.embedding.weight.requires_grad_(not freeze)
        self.dropout = nn.Dropout(dropout)
        self.output_dim = embedding_dim
        self.word_dropout = word_dropout

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.training and self.word_dropout > 0:
            drop = (torch.rand(tokens.shape, device=tokens.device) < self.word_dropout) & (tokens > 1)
            tokens = tokens.masked_fill(drop, 1)                              # 1 = <unk>
        return self.dropout(self.embedding(tokens))


def build_char_encoder(model_cfg, num_chars: int) -> nn.Module:
    """The character encoder ``model.char_encoder`` names: ``cnn``, ``bilstm`` or ``ngram``."""
    from .characters import CharCNNEncoder, CharLSTMEncoder, CharNgramEmbedding
    m = model_cfg
    if num_chars <= 2:
        raise ValueError("model.char_embedding_dim is set but no character vocabulary was built")
    if m.char_encoder == "cnn":
        return CharCNNEncoder(num_chars, m.char_embedding_dim, m.char_hidden_dim)
    if m.char_encoder == "ngram":
        return CharNgramEmbedding(m.char_embedding_dim)
    return CharLSTMEncoder(num_chars, m.char_embedding_dim, m.char_hidden_dim)


def build_embedding(model_cfg, vocab_size: int, vectors: Optional[torch.Tensor] = None,
                    num_chars: int = 0) -> nn.Module:
    """Word vectors, plus a character encoder when ``model.char_embedding_dim > 0``."""
    from .characters import WordCharEmbedding
    m = model_cfg
    words = WordEmbedding(vocab_size, m.embedding_dim, vectors, m.freeze_embeddings, m.dropout,
                          m.embedding_init_std, m.word_dropout)
    if m.char_embedding_dim <= 0:
        return words
    return WordCharEmbedding(words, build_char_encoder(m, num_chars), m.dropout)
