"""Character-level word features, so unknown words still get a meaningful vector."""
from __future__ import annotations

import torch
from torch import nn


class CharCNNEncoder(nn.Module):
    """Characters (B, T, L) -> one vector per word (B, T, H): embed, convolve (width 3), max over L
    (Ma & Hovy 2016)."""

    def __init__(self, num_chars: int, embedding_dim: int, hidden_dim: int, kernel_size: int = 3):
        super().__init__()
        self.embedding = nn.Embedding(num_chars, embedding_dim, padding_idx=0)
        self.conv = nn.Conv1d(embedding_dim, hidden_dim, kernel_size, padding=kernel_size // 2)
        self.output_dim = hidden_dim

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        B, T, L = chars.shape
        flat = chars.view(B * T, L)
        x = self.embedding(flat).transpose(1, 2)                      # (B*T, E, L)
        h = self.conv(x)[:, :, :L]                                    # (B*T, H, L)
        h = h.masked_fill((flat == 0)[:, None, :], float("-inf")).max(dim=2).values
        h = torch.where(torch.isfinite(h), h, torch.zeros_like(h))    # all-padding words -> 0
        return h.view(B, T, -1)


class CharLSTMEncoder(nn.Module):
    """Characters (B, T, L) -> (B, T, 2H): the last forward and first backward states of a BiLSTM
    over each word's characters (Lample et al. 2016)."""

    def __init__(self, num_chars: int, embedding_dim: int, hidden_dim: int):
        super().__init__()
        from .encoders import LSTMEncoder
        self.embedding = nn.Embedding(num_chars, embedding_dim, padding_idx=0)
        self.lstm = LSTMEncoder(embedding_dim, hidden_dim, bidirectional=True)
        self.output_dim = 2 * hidden_dim

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        B, T, L = chars.shape
        flat = chars.view(B * T, L)
        mask = flat != 0
        states = self.lstm(self.embedding(flat), mask)                # (B*T, L, 2H)
        last = (mask.long().sum(1) - 1).clamp_min(0)
        half = states.shape[-1] // 2
        fwd = states[torch.arange(B * T), last, :half]
        bwd = states[:, 0, half:]
        return torch.cat([fwd, bwd], dim=-1).view(B, T, -1)


class CharNgramEmbedding(nn.Module):
    """Characters (B, T, L) -> (B, T, D): the mean of the embeddings of the word's character n-grams
    (n = 1..4, with begin and end markers), as in Hashimoto et al. 2017 and decaNLP.

    The n-grams are hashed into ``buckets`` rows, so no n-gram vocabulary is needed and a word never
    seen in training still gets the vectors of the n-grams it shares with seen words ("unseeable"
    -> "^un", "see", "able$", ...). Padding words (no characters) get zeros.
    """

    def __init__(self, embedding_dim: int, buckets: int = 100_000, orders: tuple[int, ...] = (1, 2, 3, 4)):
        super().__init__()
        self.embedding = nn.EmbeddingBag(buckets, embedding_dim, mode="mean")
        nn.init.normal_(self.embedding.weight, std=0.1)
        self.buckets, self.orders = buckets, orders
        self.output_dim = embedding_dim

    def ngram_ids(self, chars: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, L) character ids -> hashed n-gram ids of every word, flat, and each word's count
        (B·T,). Codes: 0 padding, 1 begin, 2 end, character id c -> c + 3."""
        B, T, L = chars.shape
        flat = chars.reshape(B * T, L)
        lengths = (flat > 0).sum(1)
        seq = torch.zeros(B * T, L + 2, dtype=torch.long, device=chars.device)
        seq[:, 0] = 1
        seq[:, 1:L + 1] = torch.where(flat > 0, flat + 3, 0)
        seq.scatter_(1, (lengths + 1)[:, None], 2)
        seq[lengths == 0] = 0                                         # padding words: no n-grams
        ids, keep = [], []
        for n in self.orders:
            if n > L + 2:
                continue
            windows = seq.unfold(1, n, 1)                             # (B·T, L + 3 - n, n)
            h = torch.full(windows.shape[:2], n, dtype=torch.long, device=chars.device)
            for k in range(n):                 # polynomial hash modulo the prime 2^31 - 1 (products < 2^62)
                h = (h * 1_103_515_245 + windows[..., k]) % 2_147_483_647
            ids.append(h % self.buckets)
            keep.append((windows > 0).all(-1))
        ids, keep = torch.cat(ids, 1), torch.cat(keep, 1)             # (B·T, W)
        return ids[keep], keep.sum(1)

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        B, T, _ = chars.shape
        ids, counts = self.ngram_ids(chars)
        offsets = torch.cumsum(counts, 0) - counts
        return self.embedding(ids, offsets).view(B, T, -1)          # empty bags -> zeros


class WordCharEmbedding(nn.Module):
    """``[word vector; character encoding]`` per token: (B, T) and (B, T, L) -> (B, T, D + H)."""

    def __init__(self, words: nn.Module, chars: nn.Module, dropout: float = 0.0):
        super().__init__()
        self.words, self.chars = words, chars
        self.dropout = nn.Dropout(dropout)
        self.output_dim = words.output_dim + chars.output_dim

    def forward(self, tokens: torch.Tensor, chars: torch.Tensor | None = None) -> torch.Tensor:
        if chars is None:
            raise ValueError("this model reads characters, but the batch has none")
        return torch.cat([self.words(tokens), self.dropout(self.chars(chars))], dim=-1)
