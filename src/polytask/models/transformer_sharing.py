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

An encoding's word states are the top-layer states of the word positions (after the prepended
tokens); its sentence vector is the pooled words (S-P) or the top-layer state at the task's
reading position (S-C, L-I, L-E). Shapes: B batch, T words, P prepended tokens, D embedding width,
H hidden width, K tasks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, Optional

import torch
from torch import nn

from ..config import AdapterConfig, ConfigError, ModelConfig
from ..modules import Pooling, TransformerEncoder
from ..modules.embeddings import build_embedding
from .contract import Encoding, MultiTaskModel, TaskSpec, Text, task_head
from .pretrained_encoder import adapter_names, build_pretrained_encoder, check_adapter

VARIANTS = ("sp", "sc", "li", "le")


@dataclass
class TransformerSharingConfig(ModelConfig):
    """A local Hugging Face model directory (or "minilm") to build on instead of a Transformer
    trained from scratch, and what of it stays fixed."""

    encoders: ClassVar[tuple[str, ...]] = ("transformer",)
    limits: ClassVar[dict[str, str]] = {"freeze_layers": ">= 0"}

    pretrained: Optional[str] = None
    freeze: Optional[Literal["none", "all", "bottom"]] = None      # left out: all under an adapter, else none
    freeze_layers: int = 0
    adapter: Optional[AdapterConfig] = None                          # LoRA on the pretrained encoder

    def check(self, tasks, where: str) -> None:
        if self.adapter is not None and not self.pretrained:
            raise ConfigError(f"{where}.adapter: applies to a pretrained encoder; set model.pretrained or remove it")
        if self.pretrained:
            check_adapter(self, where, shared_encoder=True)
            for task in tasks:
                if task.type == "tagging":
                    raise ConfigError(f"{where}.pretrained: the architecture {self.architecture!r} cannot serve "
                                      f"tagging tasks ({task.name}) on a pretrained encoder yet (its word states "
                                      "are not aligned to words); hard_sharing and single_task can")
            return
        if self.encoder.type not in self.encoders:
            raise ConfigError(f"{where}.encoder.type: {self.architecture} needs 'transformer', not "
                              f"{self.encoder.type!r}")
        super().check(tasks, where)


class TransformerSharingModel(MultiTaskModel):
    """The four patterns on a Transformer trained from scratch (module docstring).

    In eval mode an encoding also offers ``inspect["task_attention"]`` (B, T): how much the task's
    reading position attends to each word at the top layer (for S-P, which has no such position,
    the mean attention each word receives). It costs one more pass, so it is computed only when
    asked for, and never while training.
    """

    def __init__(self, embedding: nn.Module, encoder: TransformerEncoder, tasks: list[TaskSpec],
                 variant: str, pooling: str, dropout: float):
        super().__init__(tasks)
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

    def _prefix(self, task: str) -> Optional[torch.Tensor]:
        """The vectors prepended to every text of ``task``: (P, D), or None for S-P."""
        if self.variant == "sc":
            return self.cls                                                # (1, D)
        if self.variant == "li":
            return self.task_tokens[self.index[task]][None]                # (1, D)
        if self.variant == "le":
            return self.task_tokens                                        # (K, D)
        return None

    def _position(self, task: str) -> int:
        """Where ``task`` reads its sentence vector: its own token (L-E), else the first one."""
        return self.index[task] if self.variant == "le" else 0

    def _inputs(self, task: str, text: Text) -> tuple[torch.Tensor, torch.Tensor]:
        """The embedded text behind the prepended vectors, (B, P+T, D), and its mask (B, P+T)."""
        if text.chars is None:
            x = self.embedding(text.tokens)                                           # (B, T, D)
        else:
            x = self.embedding(text.tokens, text.chars)
        prefix = self._prefix(task)
        if prefix is None:
            return x, text.mask
        B = x.shape[0]
        x = torch.cat([prefix[None].expand(B, -1, -1), x], dim=1)                     # (B, P+T, D)
        return x, torch.cat([text.mask.new_ones(B, prefix.shape[0]), text.mask], dim=1)

    def encode(self, task: str, text: Text) -> Encoding:
        x, mask = self._inputs(task, text)                                            # (B, P+T, D)
        states = self.encoder(x, mask)                                                # (B, P+T, H)
        words = states[:, self.prefix:]                                               # (B, T, H)
        if self.variant == "sp":
            encoding = Encoding(words, text.mask, pool=self.pool)
        else:
            encoding = Encoding(words, text.mask, sentence_vector=states[:, self._position(task)])   # (B, H)
        if not self.training:
            encoding.inspect["task_attention"] = lambda: self.task_token_attention(task, text)
        return encoding

    def task_token_attention(self, task: str, text: Text) -> torch.Tensor:
        """How much the task's reading position attends to each word at the top layer (B, T);
        for S-P (no such position) the mean attention the words receive."""
        x, mask = self._inputs(task, text)
        weights = self.encoder.top_attention(x, mask)                                 # (B, P+T, P+T)
        if self.variant == "sp":
            return weights.mean(1)[:, self.prefix:]
        return weights[:, self._position(task), self.prefix:]

    # The contract partitions the parameters: each one is listed once, either as shared or under
    # exactly one task. An L-I task token is read by its own task only, but the K tokens are rows
    # of one tensor, which can have only one owner: the whole table is listed under the first task.
    def shared_parameters(self):
        yield from self.embedding.parameters()
        yield from self.encoder.parameters()
        if self.variant == "sc":
            yield self.cls
        if self.variant == "le":   # each task token is seen by every task at every layer
            yield self.task_tokens

    def task_parameters(self, task: str):
        yield from self.heads[task].parameters()
        if self.variant == "li" and task == self.names[0]:
            yield self.task_tokens


class PretrainedSharingModel(MultiTaskModel):
    """The four patterns on a pretrained Hugging Face encoder (``model.pretrained``).

    S-P pools the top layer; S-C reads the tokenizer's own first token ([CLS]); L-I prepends the
    task's new trainable token vector, L-E all K of them (before [CLS]), and reads the task's
    position. The tokenizer reads the raw text and cross-encodes pairs (``[CLS] a [SEP] b [SEP]``,
    one vector to the head). Sentence-level tasks only (the config refuses tagging): the word
    states of an encoding are those of the sub-tokens.

    With the encoder frozen (``model.freeze: all``), S-P and S-C sentence vectors depend on the text
    alone, so each is computed once and kept (``feature_cache``): from the second epoch on a step
    costs only the task heads, which makes a frozen pretrained encoder practical on a CPU. The cache
    keeps sentence vectors only, so an encoding read from it has no word states (B, 0, H).
    """

    max_cached = 1_000_000          # sentence vectors kept at most (a few hundred MB for H = 384)

    def __init__(self, encoder, tasks: list[TaskSpec], variant: str, pooling: str, dropout: float,
                 per_task_adapters: bool = False):
        super().__init__(tasks)
        if variant not in VARIANTS:
            raise ValueError(f"unknown transformer sharing pattern {variant!r} ({', '.join(VARIANTS)})")
        self.encoder, self.variant, self.per_task_adapters = encoder, variant, per_task_adapters
        self.names = [t.name for t in tasks]
        self.index = {name: i for i, name in enumerate(self.names)}
        if variant in ("li", "le"):
            self.task_tokens = nn.Parameter(torch.randn(len(tasks), encoder.output_dim) * 0.02)
        self.prefix = {"sp": 0, "sc": 0, "li": 1, "le": len(tasks)}[variant]
        self.pool = Pooling(pooling)
        self.heads = nn.ModuleDict({t.name: task_head(t, encoder.output_dim, dropout, encoder.cross_encodes_pairs)
                                    for t in tasks})
        self.feature_cache: Optional[dict[bytes, torch.Tensor]] = \
            {} if encoder.frozen and variant in ("sp", "sc") else None

    def encode(self, task: str, text: Text) -> Encoding:
        if self.feature_cache is not None:
            sentence = self._cached(text.tokens, text.mask, text.type_ids)           # (B, H)
            return Encoding(sentence.new_zeros(sentence.shape[0], 0, sentence.shape[1]), text.mask[:, :0],
                            sentence_vector=sentence)
        words, sentence = self._read(task, text.tokens, text.mask, text.type_ids)     # (B, T, H), (B, H)
        return Encoding(words, text.mask, sentence_vector=sentence)

    def _read(self, task: str, ids: torch.Tensor, mask: torch.Tensor,
              type_ids: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Subword states after the task tokens (B, T, H) and the sentence vector (B, H)."""
        if self.per_task_adapters:
            self.encoder.select(task)                                 # the task's own LoRA adapter
        prefix = None
        if self.variant == "li":
            prefix = self.task_tokens[self.index[task]][None, None].expand(ids.shape[0], 1, -1)   # (B, 1, H)
        elif self.variant == "le":
            prefix = self.task_tokens[None].expand(ids.shape[0], -1, -1)                       # (B, K, H)
        states = self.encoder(ids, mask, prefix, type_ids)                        # (B, P+T, H)
        if self.variant == "sp":
            return states, self.pool(states, mask)
        position = self.index[task] if self.variant == "le" else 0                # [CLS] or the task token
        return states[:, self.prefix:], states[:, position]

    def _cached(self, ids: torch.Tensor, mask: torch.Tensor, type_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Sentence vectors (B, H) from the cache, computing (without gradients) only the missing
        ones. S-P and S-C read no task token, so a text's vector is the same for every task (the
        segment ids of a cross-encoded pair follow from its ids: the key is the ids)."""
        lengths = mask.long().sum(1).tolist()
        keys = [ids[i, :n].cpu().numpy().tobytes() for i, n in enumerate(lengths)]
        missing = [i for i, k in enumerate(keys) if k not in self.feature_cache]
        if missing:
            rows = torch.tensor(missing, device=ids.device)
            width = max(lengths[i] for i in missing)
            with torch.no_grad():
                _, fresh = self._read("", ids[rows, :width], mask[rows, :width],
                                      type_ids[rows, :width] if type_ids is not None else None)
            fresh = fresh.detach().cpu()
            for j, i in enumerate(missing):
                if len(self.feature_cache) < self.max_cached:
                    self.feature_cache[keys[i]] = fresh[j]
            new_rows = dict(zip(missing, fresh))
        else:
            new_rows = {}
        return torch.stack([new_rows[i] if i in new_rows else self.feature_cache[k]
                            for i, k in enumerate(keys)]).to(ids.device)

    # One owner per parameter, as in TransformerSharingModel: the L-I table under the first task;
    # a per-task adapter under its task.
    def shared_parameters(self):
        private = {id(p) for p in self.encoder.adapter_parameters()} if self.per_task_adapters else set()
        yield from (p for p in self.encoder.parameters() if id(p) not in private)
        if self.variant == "le":
            yield self.task_tokens

    def task_parameters(self, task: str):
        yield from self.heads[task].parameters()
        if self.variant == "li" and task == self.names[0]:
            yield self.task_tokens
        if self.per_task_adapters:
            yield from self.encoder.adapter_parameters(task)


def _builder(variant: str):
    def build(cfg, tasks: list[TaskSpec], vocab_size: int, vectors: Optional[torch.Tensor] = None,
              num_chars: int = 0) -> MultiTaskModel:
        m, e = cfg.model, cfg.model.encoder
        if m.pretrained:
            encoder = build_pretrained_encoder(m, adapter_names(m, tasks))
            return PretrainedSharingModel(encoder, tasks, variant, m.pooling, m.dropout,
                                          per_task_adapters=m.adapter is not None and m.adapter.per_task)
        embedding = build_embedding(m, vocab_size, vectors, num_chars)
        prefix = len(tasks) if variant == "le" else (0 if variant == "sp" else 1)
        encoder = TransformerEncoder(embedding.output_dim, e.hidden_dim, e.num_layers, e.num_heads, e.ff_dim,
                                     e.dropout, e.max_positions + prefix)
        return TransformerSharingModel(embedding, encoder, tasks, variant, m.pooling, m.dropout)
    return build


ARCHITECTURES = {f"transformer_{v}": (TransformerSharingConfig, _builder(v)) for v in VARIANTS}
