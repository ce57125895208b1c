"""``model.pretrained`` for the architectures whose encoder is one part: the config they take and
the encoder they build (:class:`~polytask.modules.pretrained.PretrainedEncoder`).

With ``model.pretrained`` the word embedding and ``model.encoder`` give way to the pretrained
model; its tokenizer reads the raw text (:mod:`polytask.modules.pretrained`). Every encoding kind
works on it: classification and regression read the pooled vector, pairs are cross-encoded, tagging
reads each word's first sub-token.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, Optional

from ..config import ConfigError, ModelConfig


@dataclass
class PretrainedModelConfig(ModelConfig):
    """An architecture's settings plus a local Hugging Face model to build on.

    ``pretrained``: a model directory (or ``minilm``); ``freeze``: none / all / bottom (the
    embeddings and the lowest ``freeze_layers`` layers); ``pretrained_pooling``: ``cls`` or
    ``mean``, by default the pooling the model was trained with (mean for a sentence-transformers
    model such as ``minilm``, CLS for a plain BERT).
    """

    limits: ClassVar[dict[str, str]] = {"freeze_layers": ">= 0"}
    # the task kinds the architecture serves on a pretrained encoder
    pretrained_kinds: ClassVar[tuple[str, ...]] = ("classification", "pair_classification", "regression", "tagging")

    pretrained: Optional[str] = None
    freeze: Literal["none", "all", "bottom"] = "none"
    freeze_layers: int = 0
    pretrained_pooling: Optional[Literal["cls", "mean"]] = None

    def check(self, tasks, where: str) -> None:
        if not self.pretrained:
            for key, unset in (("freeze", "none"), ("freeze_layers", 0), ("pretrained_pooling", None)):
                if getattr(self, key) != unset:
                    raise ConfigError(f"{where}.{key}: applies to a pretrained encoder; set model.pretrained "
                                      "or remove it")
            super().check(tasks, where)
            return
        if self.char_embedding_dim > 0:
            raise ConfigError(f"{where}.char_embedding_dim: a pretrained encoder reads its own sub-tokens, not "
                              "polytask's character features; set it to 0")
        if self.freeze == "bottom" and self.freeze_layers == 0:
            raise ConfigError(f"{where}.freeze_layers: freeze 'bottom' needs the number of layers to keep fixed")
        for i, task in enumerate(tasks):
            if task.type not in self.pretrained_kinds:
                raise ConfigError(f"{where}.pretrained: the architecture {self.architecture!r} cannot serve "
                                  f"{task.type} tasks ({task.name}) on a pretrained encoder; it serves "
                                  f"{', '.join(self.pretrained_kinds)} tasks there")


def build_pretrained_encoder(m: PretrainedModelConfig):
    """The pretrained encoder ``model.pretrained`` names (transformers is imported only here)."""
    from ..modules.pretrained import PretrainedEncoder
    return PretrainedEncoder(m.pretrained, m.freeze, m.freeze_layers, pooling=m.pretrained_pooling)
