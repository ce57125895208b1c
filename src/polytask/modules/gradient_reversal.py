"""Gradient reversal (Ganin & Lempitsky 2015): identity forward, -scale * gradient backward."""
from __future__ import annotations

import torch
from torch import nn


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.scale * grad, None


class GradientReversal(nn.Module):
    """Used by ASP-MTL so the shared encoder learns to fool the task discriminator."""

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _Reverse.apply(x, self.scale)
