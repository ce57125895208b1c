"""``model.pretrained`` for the architectures whose encoder is one part: the config they take and
the encoder they build (:class:`~polytask.modules.pretrained.PretrainedEncoder`).

With ``model.pretrained`` the word embedding and ``model.encoder`` give way to the pretrained
model; its tokenizer reads the raw text (:mod:`polytask.modules.pretrained`). Every encoding kind
works on it: classification and regression read the pooled vector, pairs are cross-encoded, tagging
reads each word's first sub-token.

``model.adapter`` adds LoRA adapters (``peft``) to the pretrained encoder: one shared by every
task, or one per task (``per_task``), each task reading the shared encoder through its own. The
base weights then stay frozen unless ``model.freeze`` says otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, Optional

from ..config import AdapterConfig, ConfigError, ModelConfig


@dataclass
class PretrainedModelConfig(ModelConfig):
    """An architecture's settings plus a local Hugging Face model to build on.

    ``pretrained``: a model directory (or ``minilm``); ``freeze``: none / all / bottom (the
    embeddings and the lowest ``freeze_layers`` layers), left out: ``all`` with an adapter, else
    ``none``; ``pretrained_pooling``: ``cls`` or ``mean``, by default the pooling the model was
    trained with (mean for a sentence-transformers model such as ``minilm``, CLS for a plain BERT);
    ``adapter``: LoRA adapters on the encoder (:class:`~polytask.config.AdapterConfig`).
    """

    # whether the architecture has one encoder that every task reads (so per-task adapters on it
    # make sense); single_task gives each task its own copy
    shared_encoder: ClassVar[bool] = True

    # the pretrained encoder's word states join the architecture's own word embeddings (MQAN)
    # instead of replacing its vocabulary and encoder
    pretrained_beside_words: ClassVar[bool] = False

    limits: ClassVar[dict[str, str]] = {"freeze_layers": ">= 0"}
    # the task kinds the architecture serves on a pretrained encoder
    pretrained_kinds: ClassVar[tuple[str, ...]] = ("classification", "pair_classification", "regression", "tagging")

    pretrained: Optional[str] = None
    freeze: Optional[Literal["none", "all", "bottom"]] = None
    freeze_layers: int = 0
    pretrained_pooling: Optional[Literal["cls", "mean"]] = None
    adapter: Optional[AdapterConfig] = None

    def check(self, tasks, where: str) -> None:
        if not self.pretrained:
            for key, unset in (("freeze", None), ("freeze_layers", 0), ("pretrained_pooling", None),
                               ("adapter", None)):
                if getattr(self, key) != unset:
                    raise ConfigError(f"{where}.{key}: applies to a pretrained encoder; set model.pretrained "
                                      "or remove it")
            super().check(tasks, where)
            return
        if self.char_embedding_dim > 0 and not self.pretrained_beside_words:
            raise ConfigError(f"{where}.char_embedding_dim: a pretrained encoder reads its own sub-tokens, not "
                              "polytask's character features; set it to 0")
        if self.freeze == "bottom" and self.freeze_layers == 0:
            raise ConfigError(f"{where}.freeze_layers: freeze 'bottom' needs the number of layers to keep fixed")
        check_adapter(self, where, self.shared_encoder)
        for i, task in enumerate(tasks):
            if task.type not in self.pretrained_kinds:
                raise ConfigError(f"{where}.pretrained: the architecture {self.architecture!r} cannot serve "
                                  f"{task.type} tasks ({task.name}) on a pretrained encoder; it serves "
                                  f"{', '.join(self.pretrained_kinds)} tasks there")


def base_freeze(m) -> str:
    """What of the base model stays fixed: ``model.freeze``, or when it is left out ``all`` under
    an adapter (LoRA's usual setting: only the adapters and heads train) and ``none`` without."""
    if m.freeze is not None:
        return m.freeze
    return "all" if m.adapter is not None else "none"


def adapter_only(m) -> bool:
    """Whether only adapters (and heads) train on the pretrained encoder: its base never changes."""
    return bool(getattr(m, "pretrained", None)) and m.adapter is not None and base_freeze(m) == "all"


def check_adapter(m, where: str, shared_encoder: bool) -> None:
    """Refuse ``model.adapter`` settings that cannot work, naming the key."""
    a = m.adapter
    if a is None:
        return
    if not a.target_modules:
        raise ConfigError(f"{where}.adapter.target_modules: name at least one Linear layer of the model to put LoRA "
                          "on (query, value for BERT-like models)")
    if a.per_task and not shared_encoder:
        raise ConfigError(f"{where}.adapter.per_task: the architecture {m.architecture!r} gives every task its own "
                          "copy of the encoder, whose one adapter is the task's already; set per_task: false")


def adapter_names(m, tasks) -> tuple[str, ...]:
    """The adapters an encoder shared by ``tasks`` carries: one per task, one shared, or none."""
    if m.adapter is None:
        return ()
    return tuple(t.name for t in tasks) if m.adapter.per_task else ("shared",)


def build_pretrained_encoder(m, adapters: tuple[str, ...] = ()):
    """The pretrained encoder ``model.pretrained`` names, with the LoRA ``adapters`` that
    ``model.adapter`` asks for (transformers and peft are imported only here)."""
    from ..modules.pretrained import PretrainedEncoder
    lora = {}
    if m.adapter is not None:
        a = m.adapter
        lora = dict(adapters=adapters, lora_r=a.r, lora_alpha=a.alpha, lora_dropout=a.dropout,
                    lora_targets=tuple(a.target_modules))
    return PretrainedEncoder(m.pretrained, base_freeze(m), m.freeze_layers,
                             pooling=getattr(m, "pretrained_pooling", None), **lora)
