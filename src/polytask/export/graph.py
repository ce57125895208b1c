"""One task of a trained model as a module of plain tensors, for ``torch.jit.trace`` and
``torch.onnx.export``.

``MultiTaskModel.forward`` takes a :class:`~polytask.data.batching.Batch` dataclass, which neither
tracer can take as an input. Each class here takes the tensors of one task's batch in a fixed
order and calls the model contract (``model.encode(task, text)`` and ``model.head(task)``) the
way the task's kind does, so the exported graph computes exactly what ``polytask predict`` does.
B batch, T words, T2 words of the second text, L characters per word, C classes or tags.

Inputs (in this order):
    tokens (B, T) int64 word ids, 0 = padding; mask (B, T) bool, True at real words;
    chars (B, T, L) int64 character ids, only for models with a character encoder;
    tokens_b (B, T2), mask_b (B, T2), only for tasks that read two texts.
"""
from __future__ import annotations

import functools
import warnings
from typing import Optional

import torch
from torch import nn

from ..kinds import Text
from ..modules.crf import viterbi


class _TaskInputs(nn.Module):
    """What every exported task shares: the model, the task, and how its inputs are laid out."""

    def __init__(self, model: nn.Module, task: str, reads_chars: bool, pair: bool):
        super().__init__()
        self.model, self.task = model, task
        self.reads_chars, self.pair = reads_chars, pair

    def input_names(self) -> list[str]:
        return ["tokens", "mask"] + (["chars"] if self.reads_chars else []) + \
               (["tokens_b", "mask_b"] if self.pair else [])

    def texts(self, inputs: tuple[torch.Tensor, ...]) -> tuple[Text, Optional[Text]]:
        tokens, mask = inputs[0], inputs[1]
        chars = inputs[2] if self.reads_chars else None
        first = Text(tokens, mask, chars)
        if not self.pair:
            return first, None
        rest = inputs[3:] if self.reads_chars else inputs[2:]
        return first, Text(rest[0], rest[1])


class ExportedClassifier(_TaskInputs):
    """Classification and pair classification -> ``logits`` (B, C), ``probabilities`` (B, C)."""

    output_names = ("logits", "probabilities")

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        first, second = self.texts(inputs)
        u = self.model.encode(self.task, first).sentence()                     # (B, H)
        if second is None:
            logits = self.model.head(self.task)(u)                             # (B, C)
        else:
            v = self.model.encode(self.task, second).sentence()                # (B, H)
            logits = self.model.head(self.task)(u, v)                          # (B, C)
        return logits, torch.softmax(logits, dim=-1)


class ExportedRegressor(_TaskInputs):
    """Regression (one text or a pair) -> ``scores`` (B,)."""

    output_names = ("scores",)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        first, second = self.texts(inputs)
        u = self.model.encode(self.task, first).sentence()
        if second is None:
            return self.model.head(self.task)(u)[:, 0]                         # (B,)
        v = self.model.encode(self.task, second).sentence()
        return self.model.head(self.task)(u, v)[:, 0]                          # (B,)


class ExportedSoftmaxTagger(_TaskInputs):
    """Tagging with a per-token softmax -> ``logits`` (B, T, C), ``tags`` (B, T) (0 at padding)."""

    output_names = ("logits", "tags")

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        first, _ = self.texts(inputs)
        states = self.model.encode(self.task, first).states                   # (B, T, H)
        logits = self.model.head(self.task)(states)                           # (B, T, C)
        return logits, logits.argmax(-1) * first.mask.long()


@functools.lru_cache(maxsize=None)
def scripted_viterbi():
    """The CRF's :func:`~polytask.modules.crf.viterbi` scripted (once; torch.jit.script warns that it is
    deprecated)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.script(viterbi)


class ExportedCRFTagger(_TaskInputs):
    """Tagging with a CRF head -> ``emissions`` (B, T, C) and, with ``decode``, ``tags`` (B, T)
    from the scripted Viterbi. Without ``decode`` (ONNX: the dynamo exporter cannot hold a loop
    over a dynamic length) the caller decodes the emissions with the transition scores written
    beside the model."""

    def __init__(self, model: nn.Module, task: str, reads_chars: bool, pair: bool, decode: bool):
        super().__init__(model, task, reads_chars, pair)
        self.decode = decode
        self.output_names = ("emissions", "tags") if decode else ("emissions",)

    def forward(self, *inputs: torch.Tensor):
        first, _ = self.texts(inputs)
        states = self.model.encode(self.task, first).states                   # (B, T, H)
        head = self.model.head(self.task)
        emissions = head(states)                                              # (B, T, C)
        if not self.decode:
            return emissions
        transitions, start, end = head.crf._scores()
        return emissions, scripted_viterbi()(emissions, first.mask, transitions, start, end)
