"""Transitional: the output helpers of the first model contract, for architectures not yet moved
to :mod:`polytask.models.contract`. Removed once every architecture encodes through kinds."""
from __future__ import annotations

from typing import Callable, Optional

import torch

from ..kinds.base import TaskOutput, TaskSpec
from .contract import task_head


def classification_output(logits: torch.Tensor, labels: Optional[torch.Tensor]) -> TaskOutput:
    out = TaskOutput(logits=logits)
    if labels is not None:
        out.loss = torch.nn.functional.cross_entropy(logits, labels)
        out.parts["task"] = out.loss.detach()
    return out


def tagging_output(head: torch.nn.Module, states: torch.Tensor, mask: torch.Tensor,
                   labels: Optional[torch.Tensor]) -> TaskOutput:
    logits = head(states)                                               # (B, T, C)
    out = TaskOutput(logits=logits, predictions=head.decode(logits.detach(), mask))
    if labels is not None:
        out.loss = head.loss(logits, labels, mask)
        out.parts["task"] = out.loss.detach()
    return out


def head_output(spec: TaskSpec, head: torch.nn.Module, pool: torch.nn.Module, states: torch.Tensor, batch,
                second_text: Callable[[], torch.Tensor]) -> TaskOutput:
    if spec.tagging:
        return tagging_output(head, states, batch.mask, batch.labels)
    u = pool(states, batch.mask)
    if spec.pair:
        return classification_output(head(u, pool(second_text(), batch.mask_b)), batch.labels)
    return classification_output(head(u), batch.labels)


__all__ = ["TaskOutput", "TaskSpec", "classification_output", "tagging_output", "head_output", "task_head"]
