"""Embedding + encoder + pooling: token ids in, one vector per sentence out."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .pooling import Pooling


class SentenceEncoder(nn.Module):
    """ids (B, T), mask (B, T) -> sentence vectors (B, H).

    The embedding module is passed in, so several encoders can share one table. It reads each
    text of a pair on its own (``cross_encodes_pairs`` False).
    """

    cross_encodes_pairs = False

    def __init__(self, embedding: nn.Module, encoder: nn.Module, pooling: str = "max"):
        super().__init__()
        self.embedding = embedding
        self.encoder = encoder
        self.pool = Pooling(pooling, bidirectional=encoder.bidirectional)
        self.output_dim = encoder.output_dim

    def states(self, tokens: torch.Tensor, mask: torch.Tensor,
               chars: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Per-token states (B, T, H), for tagging."""
        x = self.embedding(tokens) if chars is None else self.embedding(tokens, chars)
        return self.encoder(x, mask)

    def text_states(self, text) -> torch.Tensor:
        """Per-word states (B, T, H) of a :class:`~polytask.data.batching.Text` (the encoder
        contract :class:`~polytask.modules.pretrained.PretrainedEncoder` also meets)."""
        return self.states(text.tokens, text.mask, text.chars)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor,
                chars: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.pool(self.states(tokens, mask, chars), mask)   # (B, H)
