"""Task output layers."""
from __future__ import annotations

import torch
from torch import nn


class ClassificationHead(nn.Module):
    """Sentence vector (B, D) -> class logits (B, C)."""

    def __init__(self, input_dim: int, num_labels: int, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(input_dim, num_labels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(features))


class PairClassificationHead(nn.Module):
    """Two sentence vectors u, v (B, D) -> logits (B, C) from ``[u; v; |u - v|; u * v]``
    (the matching features of Conneau et al. 2017, InferSent)."""

    def __init__(self, input_dim: int, num_labels: int, dropout: float = 0.0, hidden_dim: int = 0):
        super().__init__()
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        width = 4 * input_dim
        if hidden_dim:
            layers += [nn.Linear(width, hidden_dim), nn.Tanh(), nn.Dropout(dropout)]
            width = hidden_dim
        layers.append(nn.Linear(width, num_labels))
        self.mlp = nn.Sequential(*layers)

    def forward(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([u, v, (u - v).abs(), u * v], dim=-1))


def build_head(input_dim: int, num_labels: int, pair: bool, dropout: float) -> nn.Module:
    if pair:
        return PairClassificationHead(input_dim, num_labels, dropout)
    return ClassificationHead(input_dim, num_labels, dropout)
