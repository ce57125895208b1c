"""Embedding + encoder + pooling: token ids in, one vector per sentence out."""
from __future__ import annotations

import torch
from torch import nn

from .pooling import Pooling


class SentenceEncoder(nn.Module):
    """ids (B, T), mask (B, T) -> sentence vectors (B, H).

    The embedding module is passed in, so several encoders can share one table.
    """

    def __init__(self, embedding: nn.Module, encoder: nn.Module, pooling: str = "max"):
        super().__init__()
        self.embedding = embedding
        self.encoder = encoder
        self.pool = Pooling(pooling, bidirectional=encoder.bidirectional)
        self.output_dim = encoder.output_dim

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        states = self.encoder(self.embedding(tokens), mask)   # (B, T, H)
        return self.pool(states, mask)                        # (B, H)
