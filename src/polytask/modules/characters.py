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
