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
    tagging: bool = False
    labels: tuple[str, ...] = ()
    scheme: Optional[str] = None      # BIO / BIOES, for CRF constraints
    head: str = "softmax"             # tagging head: softmax or crf


@dataclass
class TaskOutput:
    logits: torch.Tensor                                  # (B, C), or (B, T, C) for tagging
    loss: Optional[torch.Tensor] = None                   # task loss + the architecture's own terms
    parts: dict[str, torch.Tensor] = field(default_factory=dict)    # loss terms, for logging
    inspect: dict[str, torch.Tensor] = field(default_factory=dict)  # gates, mixing weights, ...
    predictions: Optional[torch.Tensor] = None            # (B, T) decoded tags, for tagging


def classification_output(logits: torch.Tensor, labels: Optional[torch.Tensor]) -> TaskOutput:
    """Wrap class logits (B, C); with labels, add the cross-entropy loss."""
    out = TaskOutput(logits=logits)
    if labels is not None:
        out.loss = torch.nn.functional.cross_entropy(logits, labels)
        out.parts["task"] = out.loss.detach()
    return out


def tagging_output(head: torch.nn.Module, states: torch.Tensor, mask: torch.Tensor,
                   labels: Optional[torch.Tensor]) -> TaskOutput:
    """Run a tagging head on states (B, T, H): logits, decoded tags and, with labels, the loss."""
    logits = head(states)                                               # (B, T, C)
    out = TaskOutput(logits=logits, predictions=head.decode(logits.detach(), mask))
    if labels is not None:
        out.loss = head.loss(logits, labels, mask)
        out.parts["task"] = out.loss.detach()
    return out


def task_head(spec: TaskSpec, input_dim: int, dropout: float) -> torch.nn.Module:
    """The output layer a task needs: sentence, sentence-pair or tagging head."""
    from ..modules import build_head
    from ..modules.tagging import build_tagging_head
    if spec.tagging:
        return build_tagging_head(input_dim, spec, dropout)
    return build_head(input_dim, spec.num_labels, spec.pair, dropout)
