"""Token-level heads: encoder states (B, T, H) -> tag logits (B, T, C), loss and predictions.

Two separate classes rather than a flag: a per-token softmax, and a linear-chain CRF on top of
per-token emission scores.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .crf import CRF, allowed_transitions


class SoftmaxTaggingHead(nn.Module):
    """Independent per-token classification; loss = mean cross-entropy over real tokens."""

    def __init__(self, input_dim: int, num_tags: int, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(input_dim, num_tags)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(states))                          # (B, T, C)

    def loss(self, logits: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits[mask], tags[mask])

    def decode(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return logits.argmax(-1) * mask.long()                           # (B, T)


class CRFTaggingHead(nn.Module):
    """Emission scores + a linear-chain CRF; with a ``scheme`` (BIO/BIOES) invalid transitions
    are excluded. Loss = mean negative log-likelihood per sentence."""

    def __init__(self, input_dim: int, num_tags: int, dropout: float = 0.0,
                 labels: Optional[list[str]] = None, scheme: Optional[str] = None):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(input_dim, num_tags)
        constraints = allowed_transitions(list(labels), scheme) if scheme and labels else None
        self.crf = CRF(num_tags, constraints)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(states))                          # (B, T, C)

    def loss(self, logits: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.crf.neg_log_likelihood(logits, tags, mask)

    def decode(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.crf.decode(logits, mask)


def build_tagging_head(input_dim: int, spec, dropout: float) -> nn.Module:
    if spec.head == "crf":
        return CRFTaggingHead(input_dim, spec.num_labels, dropout, list(spec.labels), spec.scheme)
    return SoftmaxTaggingHead(input_dim, spec.num_labels, dropout)
