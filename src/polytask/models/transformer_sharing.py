"""Multi-task Transformers: top-layer divergence (S-P, S-C) and layer-wise divergence (L-I, L-E).

T. Sun, "Multi-task learning with Transformers for text classification" (Xidian bachelor thesis,
2019, ch. 4; summary in ../shared/references/architectures.md §5). One Transformer encoder is
shared by all tasks; the patterns differ in where the tasks part ways:

* ``sp`` Stack-Pooling: pool (mean/max) the top layer; a task head reads the pooled vector.
* ``sc`` Stack-CLS: a shared [CLS] vector is prepended; its top-layer state feeds the task head.
* ``li`` Layerwise-Implicit: the prepended vector is the *task's* embedding (a TASK_ID token), so
  every layer builds a task-specific representation at that position.
* ``le`` Layerwise-Explicit: all K task vectors are prepended to every input; task k reads its own
  position, and at every layer each task token can attend to the other tasks' tokens.

Tagging tasks read the top-layer states of the word positions (after the prepended tokens).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..modules import Pooling, TransformerEncoder
from ..modules.embeddings import build_embedding
from .outputs import TaskOutput, TaskSpec, classification_output, tagging_output, task_head

from dataclasses import dataclass, field
from typing import ClassVar, Literal, Optional

from ..config import ConfigError, ModelConfig

@dataclass
class TransformerSharingConfig(ModelConfig):
    """A local Hugging Face model directory (or "minilm") to build on instead of a Transformer
    trained from scratch, and what of it stays fixed."""

    encoders: ClassVar[tuple[str, ...]] = ("transformer",)

    pretrained: Optional[str] = None
    freeze: Literal["none", "all", "bottom"] = "none"
    freeze_layers: int = 0

    def check(self, tasks, where: str) -> None:
        if self.pretrained:
            tagging = [t.name for t in tasks if t.type == "tagging"]
            if tagging:
                raise ConfigError(f"{where}.pretrained: tagging tasks ({', '.join(tagging)}) are not supported "
                                  "on pretrained encoders yet")
            return
        if self.encoder.type not in self.encoders:
            raise ConfigError(f"{where}.encoder.type: {self.architecture} needs 'transformer', not "
                              f"{self.encoder.type!r}")
        super().check(tasks, where)

VARIANTS = ("sp", "sc", "li", "le")


class TransformerSharingModel(nn.Module):
    def __init__(self, embedding: nn.Module, encoder: TransformerEncoder, tasks: list[TaskSpec],
                 variant: str, pooling: str, dropout: float):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown transformer sharing pattern {variant!r} ({', '.join(VARIANTS)})")
        self.embedding, self.encoder, self.variant = embedding, encoder, variant
        self.names = [t.name for t in tasks]
        self.index = {name: i for i, name in enumerate(self.names)}
        width = embedding.output_dim
        if variant == "sc":
            self.cls = nn.Parameter(torch.randn(1, width) * 0.02)
        elif variant in ("li", "le"):
            self.task_tokens = nn.Parameter(torch.randn(len(tasks), width) * 0.02)
        self.prefix = {"sp": 0, "sc": 1, "li": 1, "le": len(tasks)}[variant]
        self.pool = Pooling(pooling)
        self.heads = nn.ModuleDict({t.name: task_head(t, encoder.output_dim, dropout) for t in tasks})
        self.specs = {t.name: t for t in tasks}

    def _prefix(self, task: str) -> Optional[torch.Tensor]:
        if self.variant == "sc":
            return self.cls                                               # (1, D)
        if self.variant == "li":
            return self.task_tokens[self.index[task]][None]               # (1, D)
        if self.variant == "le":
            return self.task_tokens                                       # (K, D)
        return None

    def encode(self, task: str, tokens, mask, chars=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-layer states of the words (B, T, H) and the sentence vector (B, H)."""
        x = self.embedding(tokens) if chars is None else self.embedding(tokens, chars)   # (B, T, D)
        prefix = self._prefix(task)
        if prefix is not None:
            B = x.shape[0]
            x = torch.cat([prefix[None].expand(B, -1, -1), x], dim=1)                  # (B, P+T, D)
            mask = torch.cat([mask.new_ones(B, prefix.shape[0]), mask], dim=1)
        states = self.encoder(x, mask)                                                 # (B, P+T, H)
        words = states[:, self.prefix:]
        if self.variant == "sp":
            return words, self.pool(words, mask)
        position = self.index[task] if self.variant == "le" else 0
        return words, states[:, position]

    def task_token_attention(self, task: str, tokens, mask, chars=None) -> torch.Tensor:
        """How much the task's reading position attends to each word at the top layer (B, T);
        for S-P (no such position) the mean attention the words receive."""
        x = self.embedding(tokens) if chars is None else self.embedding(tokens, chars)
        prefix = self._prefix(task)
        if prefix is not None:
            x = torch.cat([prefix[None].expand(x.shape[0], -1, -1), x], dim=1)
            mask = torch.cat([mask.new_ones(x.shape[0], prefix.shape[0]), mask], dim=1)
        weights = self.encoder.top_attention(x, mask)                        # (B, P+T, P+T)
        if self.variant == "sp":
            return weights.mean(1)[:, self.prefix:]
        position = self.index[task] if self.variant == "le" else 0
        return weights[:, position, self.prefix:]

    def forward(self, batch) -> TaskOutput:
        spec = self.specs[batch.task]
        words, sentence = self.encode(batch.task, batch.tokens, batch.mask, batch.chars)
        if spec.tagging:
            return tagging_output(self.heads[batch.task], words, batch.mask, batch.labels)
        if spec.pair:
            _, other = self.encode(batch.task, batch.tokens_b, batch.mask_b)
            return classification_output(self.heads[batch.task](sentence, other), batch.labels)
        out = classification_output(self.heads[batch.task](sentence), batch.labels)
        if not self.training:
            out.inspect["task_attention"] = self.task_token_attention(batch.task, batch.tokens, batch.mask,
                                                                      batch.chars)
        return out

    def shared_parameters(self):
        yield from self.embedding.parameters()
        yield from self.encoder.parameters()
        if self.variant == "sc":
            yield self.cls
        if self.variant == "le":   # each task token is seen by every task at every layer
            yield self.task_tokens

    def task_parameters(self, task: str):
        yield from self.heads[task].parameters()
        # an L-I task token is only ever used by its own task (a row of a shared table; the
        # whole table is listed under the first task so every parameter has one owner)
        if self.variant == "li" and task == self.names[0]:
            yield self.task_tokens


class PretrainedSharingModel(nn.Module):
    """The four patterns on a pretrained Hugging Face encoder (``model.pretrained``).

    S-P pools the top layer; S-C reads the tokenizer's own first token ([CLS]); L-I prepends the
    task's new trainable token vector, L-E all K of them (before [CLS]), and reads the task's
    position. Sentence-level tasks only (tagging would need subword-to-word alignment).

    With the encoder frozen (``model.freeze: all``), S-P and S-C sentence vectors depend on the text
    alone, so each is computed once and kept (``feature_cache``): from the second epoch on a step
    costs only the task heads, which makes a frozen pretrained encoder practical on a CPU.
    """

    max_cached = 1_000_000          # sentence vectors kept at most (a few hundred MB for H = 384)

    def __init__(self, encoder, tasks: list[TaskSpec], variant: str, pooling: str, dropout: float):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown transformer sharing pattern {variant!r} ({', '.join(VARIANTS)})")
        tagging = [t.name for t in tasks if t.tagging]
        if tagging:
            raise ValueError(f"model.pretrained: tagging tasks ({', '.join(tagging)}) are not supported on "
                             "pretrained encoders yet")
        self.encoder, self.variant = encoder, variant
        self.names = [t.name for t in tasks]
        self.index = {name: i for i, name in enumerate(self.names)}
        if variant in ("li", "le"):
            self.task_tokens = nn.Parameter(torch.randn(len(tasks), encoder.output_dim) * 0.02)
        self.prefix = {"sp": 0, "sc": 0, "li": 1, "le": len(tasks)}[variant]
        self.pool = Pooling(pooling)
        self.heads = nn.ModuleDict({t.name: task_head(t, encoder.output_dim, dropout) for t in tasks})
        self.specs = {t.name: t for t in tasks}
        self.feature_cache: Optional[dict[bytes, torch.Tensor]] = \
            {} if getattr(encoder, "frozen", False) and variant in ("sp", "sc") else None

    def encode(self, task: str, ids, mask) -> torch.Tensor:
        if self.feature_cache is not None:
            return self._cached(ids, mask)
        return self._encode(task, ids, mask)

    def _cached(self, ids, mask) -> torch.Tensor:
        """Sentence vectors from the cache, computing (without gradients) only the missing ones."""
        lengths = mask.long().sum(1).tolist()
        keys = [ids[i, :n].cpu().numpy().tobytes() for i, n in enumerate(lengths)]
        missing = [i for i, k in enumerate(keys) if k not in self.feature_cache]
        if missing:
            rows = torch.tensor(missing, device=ids.device)
            width = max(lengths[i] for i in missing)
            with torch.no_grad():
                fresh = self._encode("", ids[rows, :width], mask[rows, :width])
            fresh = fresh.detach().cpu()
            for j, i in enumerate(missing):
                if len(self.feature_cache) < self.max_cached:
                    self.feature_cache[keys[i]] = fresh[j]
            new_rows = dict(zip(missing, fresh))
        else:
            new_rows = {}
        return torch.stack([new_rows[i] if i in new_rows else self.feature_cache[k]
                            for i, k in enumerate(keys)]).to(ids.device)

    def _encode(self, task: str, ids, mask) -> torch.Tensor:
        prefix = None
        if self.variant == "li":
            prefix = self.task_tokens[self.index[task]][None, None].expand(ids.shape[0], 1, -1)
        elif self.variant == "le":
            prefix = self.task_tokens[None].expand(ids.shape[0], -1, -1)
        states = self.encoder(ids, mask, prefix)                          # (B, P + T, H)
        if self.variant == "sp":
            return self.pool(states, mask)
        if self.variant == "le":
            return states[:, self.index[task]]
        return states[:, 0]                                               # [CLS] or the task token

    def forward(self, batch) -> TaskOutput:
        spec = self.specs[batch.task]
        u = self.encode(batch.task, batch.tokens, batch.mask)
        if spec.pair:
            v = self.encode(batch.task, batch.tokens_b, batch.mask_b)
            return classification_output(self.heads[batch.task](u, v), batch.labels)
        return classification_output(self.heads[batch.task](u), batch.labels)

    def shared_parameters(self):
        yield from self.encoder.parameters()
        if self.variant == "le":
            yield self.task_tokens

    def task_parameters(self, task: str):
        yield from self.heads[task].parameters()
        if self.variant == "li" and task == self.names[0]:
            yield self.task_tokens


def _builder(variant: str):
    def build(cfg, tasks: list[TaskSpec], vocab_size: int, vectors: Optional[torch.Tensor] = None,
              num_chars: int = 0) -> nn.Module:
        m, e = cfg.model, cfg.model.encoder
        if m.pretrained:
            from ..modules.pretrained import PretrainedEncoder
            encoder = PretrainedEncoder(m.pretrained, m.freeze, m.freeze_layers)
            return PretrainedSharingModel(encoder, tasks, variant, m.pooling, m.dropout)
        if e.type != "transformer":
            raise ValueError(f"model.encoder.type: transformer_{variant} needs 'transformer', not {e.type!r}")
        embedding = build_embedding(m, vocab_size, vectors, num_chars)
        prefix = len(tasks) if variant == "le" else (0 if variant == "sp" else 1)
        encoder = TransformerEncoder(embedding.output_dim, e.hidden_dim, e.num_layers, e.num_heads, e.ff_dim,
                                     e.dropout, e.max_positions + prefix)
        return TransformerSharingModel(embedding, encoder, tasks, variant, m.pooling, m.dropout)
    return build




ARCHITECTURES = {f"transformer_{v}": (TransformerSharingConfig, _builder(v)) for v in VARIANTS}
