"""Pooling of encoder states (B, T, H) over time into one vector (B, H), padding ignored."""
from __future__ import annotations

import torch
from torch import nn


class Pooling(nn.Module):
    """``max``, ``mean`` or ``last``.

    ``last`` takes the state at the last real token; for a bidirectional encoder whose output is
    ``[forward; backward]`` it takes the forward half there and the backward half at step 0, the
    two states that have read the whole sentence.
    """

    def __init__(self, kind: str = "max", bidirectional: bool = False):
        super().__init__()
        if kind not in ("max", "mean", "last"):
            raise ValueError(f"unknown pooling {kind!r} (max, mean, last)")
        self.kind, self.bidirectional = kind, bidirectional

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.kind == "max":
            return states.masked_fill(~mask[..., None], float("-inf")).max(dim=1).values
        if self.kind == "mean":
            m = mask[..., None].to(states.dtype)
            return (states * m).sum(1) / m.sum(1).clamp_min(1.0)
        last = mask.long().sum(1).clamp_min(1) - 1                             # (B,)
        at_last = states[torch.arange(states.shape[0], device=states.device), last]  # (B, H)
        if not self.bidirectional:
            return at_last
        half = states.shape[-1] // 2
        return torch.cat([at_last[:, :half], states[:, 0, half:]], dim=-1)
