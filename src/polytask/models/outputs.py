"""What every architecture takes and returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch


@dataclass(frozen=True)
class TaskSpec:
    """What a model needs to know about a task to build its head."""

    name: str
    num_labels: int
    pair: bool = False


@dataclass
class TaskOutput:
    logits: torch.Tensor                                  # (B, C)
    loss: Optional[torch.Tensor] = None                   # task loss + the architecture's own terms
    parts: dict[str, torch.Tensor] = field(default_factory=dict)    # loss terms, for logging
    inspect: dict[str, torch.Tensor] = field(default_factory=dict)  # gates, mixing weights, ...


def classification_output(logits: torch.Tensor, labels: Optional[torch.Tensor]) -> TaskOutput:
    """Wrap class logits (B, C); with labels, add the cross-entropy loss."""
    out = TaskOutput(logits=logits)
    if labels is not None:
        out.loss = torch.nn.functional.cross_entropy(logits, labels)
        out.parts["task"] = out.loss.detach()
    return out
