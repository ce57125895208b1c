"""Typed experiment configuration.

Dataclasses are the truth; YAML is their serialised form. Loading is strict: an unknown key,
a wrong type or a value outside a fixed set of choices raises :class:`ConfigError` naming the
key path (``model.encoder.hidden_dim``) and the file. Dotted overrides from the command line
(``trainer.max_steps=200``) are parsed as YAML scalars and applied before validation. Numbers
are read as YAML 1.2 writes them (``1e-4`` is a number, not the string YAML 1.1 makes of it), and
every numeric setting is checked against its range in :data:`LIMITS` when a config loads.
"""
from __future__ import annotations

import codecs
import copy
import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Optional, Union

import yaml

from .errors import PolytaskError


class ConfigError(PolytaskError, ValueError):
    """A configuration problem; the message names the key path (and file when known)."""


@dataclass
class DevSplitConfig:
    """How a task gets its dev set: a file of its own, or carved out of train.

    ``policy``: ``file`` (the task's ``dev`` path), ``tail`` (the last ``size`` train lines, the
    FDU-MTL protocol), ``random`` (``size`` lines drawn with the experiment seed) or ``none``.
    """

    policy: Literal["file", "tail", "random", "none"] = "tail"
    size: int = 200


@dataclass
class TaskConfig:
    """One task: its data files and how to read them. Paths are relative to the data directory.

    Tagging tasks read ``conll`` (columns ``token_column`` / ``tag_column``, 0-based, negative from
    the end) or ``conllu`` (``conllu_field`` upos/xpos) files. With ``tag_scheme`` (BIO/BIOES) the
    metric is span F1 and a CRF head forbids invalid transitions; ``tagging_head`` picks a
    per-token softmax or a linear-chain CRF.
    """

    name: str = ""
    type: str = "classification"        # a task kind: classification, pair_classification, regression, tagging, qa
    format: Literal["fdu", "tsv", "csv", "jsonl", "conll", "conllu", "squad", "hf"] = "fdu"
    train: Optional[str] = None
    dev: Optional[str] = None
    test: Optional[str] = None
    unlabeled: Optional[str] = None
    split: Optional[dict[str, str]] = None  # hf: role (train/dev/test/unlabeled) -> the DatasetDict's split name
    dev_split: DevSplitConfig = field(default_factory=DevSplitConfig)
    text_column: Union[str, int] = "text"       # a column name, or a 0-based column number
    text_b_column: Optional[Union[str, int]] = None
    label_column: Union[str, int] = "label"
    header: bool = True
    encoding: str = "utf-8"
    fallback_encoding: str = "cp1252"
    lowercase: bool = True
    tokenizer: Literal["whitespace", "regex", "ptb"] = "whitespace"
    unlabeled_tokenizer: Optional[Literal["whitespace", "regex", "ptb"]] = None
    labels: Optional[list[str]] = None
    token_column: Union[int, str] = 0   # conll: a 0-based column number; hf: the column of word lists
    tag_column: Union[int, str] = -1    # conll: a column number (negative from the end); hf: the column of tag lists
    conllu_field: Literal["upos", "xpos"] = "upos"
    tag_scheme: Optional[Literal["BIO", "BIOES"]] = None
    tagging_head: Literal["softmax", "crf"] = "crf"
    # qa from a labelled file: the question template ({b}: the second text, {labels}: the answer words as
    # options), and label -> answer text; lists of either: training draws one per example, the first is asked
    # at evaluation and prediction
    question: Optional[Union[str, list[str]]] = None
    answer_words: Optional[Union[dict[str, Any], list[dict[str, Any]]]] = None
    article_split: Optional[float] = None  # squad: test fraction, split by article from the train file
    metric: Optional[Union[str, list[str]]] = None  # the metric(s) to report; the first selects on dev
    balance_labels: bool = False   # training repeats examples of the rarer labels until every label has as many


# what every task kind reads; each kind adds the options of its own reader (``TaskKind.options``)
COMMON_TASK_KEYS = frozenset({"name", "type", "format", "train", "dev", "test", "unlabeled", "unlabeled_tokenizer",
                              "dev_split", "encoding", "fallback_encoding", "lowercase", "tokenizer", "labels",
                              "metric", "balance_labels"})


@dataclass
class DataConfig:
    """Vocabulary, truncation and batching shared by all tasks."""

    vocab_min_freq: int = 1
    vocab_max_size: Optional[int] = None
    max_length: int = 400
    batch_size: int = 32
    eval_batch_size: int = 128
    bucket: bool = True
    # training batches hold texts of similar length: sorted inside windows of this many batches. A
    # window smaller than a task's data reshuffles which texts share a batch every epoch (8 batches:
    # about 10% of the pairs meet again next epoch, 1.10-1.17x the real tokens on FDU-MTL; 50 batches
    # sorted a whole FDU-MTL domain alike every epoch, 42-80% of the pairs meeting again)
    bucket_window: int = 8
    vectors: Optional[str] = None


@dataclass
class EncoderConfig:
    """A sentence encoder. ``type``: ``bilstm``, ``lstm``, ``cnn`` or ``transformer``."""

    type: Literal["bilstm", "lstm", "cnn", "transformer"] = "bilstm"
    hidden_dim: int = 128
    num_layers: int = 1
    dropout: float = 0.0
    kernel_sizes: list[int] = field(default_factory=lambda: [3, 4, 5])
    num_heads: int = 4
    ff_dim: int = 512
    max_positions: int = 512


@dataclass
class AdapterConfig:
    """Parameter-efficient fine-tuning of a pretrained encoder (``model.adapter``) with ``peft``.

    ``type``: ``lora`` (Hu et al. 2021: a frozen weight W plus a trained low-rank update
    (alpha / r) B A, A of shape (r, in) and B (out, r), on each Linear layer named in
    ``target_modules``); ``dropout`` on the LoRA input; ``per_task``: one adapter per task on the
    shared encoder (each task reads the encoder through its own adapter) instead of one for all.
    The base weights stay as ``model.freeze`` says (``all`` when it is left out).
    """

    type: Literal["lora"] = "lora"
    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["query", "value"])
    per_task: bool = False


# the task kinds an architecture serves when it produces encodings (every kind but qa, which needs
# an architecture that generates answers)
ENCODING_KINDS = ("classification", "pair_classification", "regression", "tagging")


@dataclass
class ModelConfig:
    """What every architecture takes: the name, the word embedding and the encoder.

    Each architecture subclasses this with its own hyper-parameters (its file declares the class),
    and says which task kinds it serves (``kinds``), whether it reads sentence pairs (``pairs``)
    and which encoder types it builds on (``encoders``). ``model:`` in a YAML is validated against
    the chosen architecture's class: a key it does not take is an error naming both.
    ``transferable`` says whether ``polytask transfer`` can put new tasks on its shared parameters.
    ``limits`` gives the range of each numeric setting the subclass adds (keys below ``model.``,
    rules as in :data:`LIMITS`); the ranges of the settings every architecture takes are in
    :data:`LIMITS` itself.
    """

    kinds: ClassVar[tuple[str, ...]] = ENCODING_KINDS
    pairs: ClassVar[bool] = True
    encoders: ClassVar[tuple[str, ...]] = ("bilstm", "lstm", "cnn", "transformer")
    transferable: ClassVar[bool] = True        # its shared parameters can serve new tasks (polytask transfer)
    limits: ClassVar[dict[str, str]] = {}      # the subclass's own numeric settings -> their range

    architecture: str = "hard_sharing"
    embedding_dim: int = 200
    embedding_init_std: float = 0.1      # N(0, std²) for words without pretrained vectors
    freeze_embeddings: bool = False
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    pooling: Literal["max", "mean", "last"] = "max"
    dropout: float = 0.3
    word_dropout: float = 0.0            # training: each word id becomes <unk> with this probability
    char_embedding_dim: int = 0          # > 0 adds a character encoder to the word vectors
    char_hidden_dim: int = 50
    char_encoder: Literal["cnn", "bilstm", "ngram"] = "cnn"   # ngram: mean of hashed character n-gram vectors

    def check(self, tasks: list["TaskConfig"], where: str) -> None:
        """Checks of this architecture's settings against each other and the tasks (raise
        ConfigError naming the key). Subclasses extend it."""
        if self.encoder.type not in self.encoders:
            raise ConfigError(f"{where}.encoder.type: {self.architecture} builds on "
                              f"{', '.join(self.encoders)} encoders, not {self.encoder.type!r}")


@dataclass
class TrainerConfig:
    """The training loop. Steps, not epochs: tasks are drawn at different rates."""

    max_steps: int = 6000
    optimizer: Literal["adam", "adamw", "adagrad"] = "adam"
    lr: float = 1e-3
    embedding_lr: Optional[float] = None  # a learning rate of their own for the word vectors
    weight_decay: float = 0.0
    clip_norm: Optional[float] = 5.0
    lr_schedule: Literal["constant", "linear", "cosine"] = "constant"
    warmup_steps: int = 0
    schedule: Literal["uniform", "round_robin", "cyclic", "proportional", "temperature", "annealed"] = "uniform"
    temperature: float = 2.0
    pretrain_tasks: list[str] = field(default_factory=list)  # anti-curriculum: these tasks only ...
    pretrain_steps: int = 0              # ... for the first N steps, then every task
    step_mode: Literal["one_task", "all_tasks"] = "one_task"  # all_tasks: a batch of every task per step
    weighting: str = "equal"             # equal, fixed, uncertainty, dwa, rlw, upgrad, mgda, pcgrad, ...
    weighting_options: dict[str, Any] = field(default_factory=dict)
    eval_every: int = 500
    grad_accumulation: int = 1           # micro-batches (schedule draws) per optimizer step
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # autocast; fp16 uses a gradient scaler (GPU)
    gradient_similarity: bool = False    # log the tasks' gradient cosine similarities at each evaluation
    structure_batches: int = 4           # fully_adaptive: batches per task behind each branching decision
    patience: Optional[int] = None
    select: Literal["mean", "per_task"] = "mean"
    device: str = "cpu"
    num_threads: Optional[int] = None
    progress: bool = True
    on_nonfinite: Literal["stop", "skip_batch"] = "stop"   # a NaN/Inf loss or gradient norm: stop the run, or skip that batch
    # where each logged record goes besides metrics.jsonl (always written): [] for nowhere else
    report_to: list[Literal["csv", "tensorboard", "mlflow"]] = field(default_factory=lambda: ["csv"])
    mlflow_uri: Optional[str] = None     # default $MLFLOW_TRACKING_URI, else file:<output_dir>/mlruns
    mlflow_experiment: Optional[str] = None  # default the name of output_dir


@dataclass
class ExperimentConfig:
    """Everything one run needs."""

    seed: int = 1
    output_dir: str = "runs/experiment"
    data_dir: Optional[str] = None
    task_defaults: dict[str, Any] = field(default_factory=dict)
    tasks: list[TaskConfig] = field(default_factory=list)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


# ----------------------------------------------------------------------------- numeric ranges

# The range of every numeric setting, checked when a config loads (a refusal names the key path).
# Rules: "> 0", ">= 1", ... (a bound), "[0, 1)" (an interval; round brackets leave the end out) or
# "any"; "... or null (what null means)" for a setting that may be left unset. A number is always
# finite (.inf and .nan are refused). ``*`` stands for any list index or mapping key. Each
# architecture's config class gives the range of the settings it adds in its ``limits``.
LIMITS: dict[str, str] = {
    "seed": "[0, 18446744073709551616)",    # torch.manual_seed takes 64 bits
    "tasks.*.dev_split.size": ">= 1",
    "tasks.*.text_column": "any",          # a column number counts from the end when negative
    "tasks.*.text_b_column": "any",
    "tasks.*.label_column": "any",
    "tasks.*.token_column": "any",
    "tasks.*.tag_column": "any",
    "tasks.*.article_split": "(0, 1) or null (no split)",
    "data.vocab_min_freq": ">= 1",
    "data.vocab_max_size": ">= 1 or null (no limit)",
    "data.max_length": ">= 1",
    "data.batch_size": ">= 1",
    "data.eval_batch_size": ">= 1",
    "data.bucket_window": ">= 1",
    "model.embedding_dim": ">= 1",
    # N(0, std²) word vectors: pretrained ones have a std of ~0.1-1; far above that every gate of
    # the encoder saturates, and near float32's limit (1e38) the first step gives NaN
    "model.embedding_init_std": "(0, 10]",
    "model.encoder.hidden_dim": ">= 1",
    "model.encoder.num_layers": ">= 1",
    "model.encoder.dropout": "[0, 1)",
    "model.encoder.kernel_sizes.*": ">= 1",
    "model.encoder.num_heads": ">= 1",
    "model.encoder.ff_dim": ">= 1",
    "model.encoder.max_positions": ">= 1",
    "model.dropout": "[0, 1)",
    "model.word_dropout": "[0, 1)",
    "model.char_embedding_dim": ">= 0",   # 0: no character encoder
    "model.char_hidden_dim": ">= 1",
    "model.adapter.r": ">= 1",
    "model.adapter.alpha": "> 0",
    "model.adapter.dropout": "[0, 1)",
    "trainer.max_steps": ">= 1",
    "trainer.lr": "> 0",
    "trainer.embedding_lr": "> 0 or null (trainer.lr)",
    "trainer.weight_decay": ">= 0",
    "trainer.clip_norm": "> 0 or null (no clipping)",
    "trainer.warmup_steps": ">= 0",
    "trainer.temperature": "> 0",
    "trainer.pretrain_steps": ">= 0",
    "trainer.eval_every": ">= 1",
    "trainer.grad_accumulation": ">= 1",
    "trainer.structure_batches": ">= 1",
    "trainer.patience": ">= 1 or null (never stop early)",
    "trainer.num_threads": ">= 1 or null (torch's default)",
}

_NUMBER = r"-?\d+(?:\.\d+)?(?:e-?\d+)?"
_RULE = re.compile(rf"^(?:(?P<op>>=|>|<=|<) (?P<bound>{_NUMBER})"
                   rf"|(?P<open>[\[(])(?P<low>{_NUMBER}), (?P<high>{_NUMBER})(?P<close>[\])])"
                   rf"|(?P<any>any))(?: or null \((?P<null>[^)]*)\))?$")


def within(value: float, rule: str) -> bool:
    """Whether the number ``value`` satisfies ``rule`` (a :data:`LIMITS` rule)."""
    match = _RULE.match(rule)
    if match is None:
        raise ValueError(f"not a range rule: {rule!r}")
    if isinstance(value, float) and not math.isfinite(value):
        return False
    if match["any"]:
        return True
    if match["op"]:
        bound = float(match["bound"])
        return {">=": value >= bound, ">": value > bound, "<=": value <= bound, "<": value < bound}[match["op"]]
    low, high = float(match["low"]), float(match["high"])
    return ((value >= low) if match["open"] == "[" else (value > low)) and \
        ((value <= high) if match["close"] == "]" else (value < high))


def model_limits(model_cls: type) -> dict[str, str]:
    """The ranges an architecture's config class adds (``limits`` along its bases), as
    :data:`LIMITS` keys (``model.``...)."""
    out: dict[str, str] = {}
    for klass in reversed(model_cls.__mro__):
        out.update({f"model.{key}": rule for key, rule in vars(klass).get("limits", {}).items()})
    return out


def check_limits(cfg: "ExperimentConfig", source: str = "<config>") -> None:
    """Refuse a number outside its :data:`LIMITS` range (or the architecture's), or any number
    that is not finite, naming the key path (``tasks[0].dev_split.size``)."""
    rules = {**LIMITS, **model_limits(type(cfg.model))}
    seen: set[int] = set()                  # YAML anchors can make a mapping hold itself

    def visit(value: Any, pattern: str, shown: str) -> None:
        if isinstance(value, (list, dict)):
            if id(value) in seen:
                return
            seen.add(id(value))
        if dataclasses.is_dataclass(value):
            for f in dataclasses.fields(value):
                visit(getattr(value, f.name), f"{pattern}.{f.name}" if pattern else f.name,
                      f"{shown}.{f.name}" if shown else f.name)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                visit(item, f"{pattern}.*", f"{shown}[{i}]")
        elif isinstance(value, dict):
            for key, item in value.items():
                visit(item, f"{pattern}.*", f"{shown}.{key}")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            rule = rules.get(pattern, "any")
            if not within(value, rule):
                wanted = "" if rule == "any" else f" in {rule}" if rule[0] in "[(" else f" {rule}"
                finite = isinstance(value, int) or math.isfinite(value)
                what = wanted.lstrip() if finite else "a finite number" + wanted
                raise ConfigError(f"{source}: {shown}: must be {what}, got {value!r}")
    visit(cfg, "", "")


# ----------------------------------------------------------------------------- strict conversion


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _convert(value: Any, tp: Any, path: str) -> Any:
    """Check/convert ``value`` against the annotation ``tp``; errors name ``path``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            return _convert(value, non_none[0], path)
        for option in non_none:                   # the first type the value fits
            try:
                return _convert(value, option, path)
            except ConfigError:
                continue
        raise ConfigError(f"{path}: expected {' or '.join(_type_name(a) for a in non_none)}, "
                          f"got {type(value).__name__} {value!r}")
    if tp is Any:
        return value
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{path}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__} {value!r}")
        return from_dict(tp, value, path)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__} {value!r}")
        return [_convert(v, args[0], f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__} {value!r}")
        return {k: _convert(v, args[1], f"{path}.{k}") for k, v in value.items()} if args else dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true/false, got {type(value).__name__} {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {type(value).__name__} {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {type(value).__name__} {value!r}")
        return value
    raise ConfigError(f"{path}: unsupported type {_type_name(tp)}")


def from_dict(cls: type, data: dict, path: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types. The ``model``
    section becomes the config class of the architecture it names."""
    if cls is ModelConfig:
        cls = architecture_config(data.get("architecture", ModelConfig.architecture), path)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            where = f"{path}.{key}" if path else str(key)
            if issubclass(cls, ModelConfig):
                raise ConfigError(f"{where}: the architecture {data.get('architecture', ModelConfig.architecture)!r} "
                                  f"does not take this key (it takes: {', '.join(sorted(names))})")
            raise ConfigError(f"{where}: unknown key (known: {', '.join(sorted(names))})")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _convert(value, hints[name], f"{path}.{name}" if path else name)
    return cls(**kwargs)


def weighting_options(method: str, options: dict, cls: Optional[type]) -> Any:
    """``trainer.weighting_options`` as the options class of ``method`` (None: it takes none)."""
    where = "trainer.weighting_options"
    if cls is None:
        if options:
            raise ConfigError(f"{where}.{next(iter(options))}: the weighting {method!r} takes no options")
        return None
    names = {f.name for f in dataclasses.fields(cls)}
    for key in options:
        if key not in names:
            raise ConfigError(f"{where}.{key}: the weighting {method!r} does not take this key "
                              f"(it takes: {', '.join(sorted(names))})")
    return from_dict(cls, options, where)


def architecture_config(name: Any, path: str = "model") -> type:
    """The config class the architecture ``name`` declares (in its own file)."""
    from . import catalog
    where = f"{path}.architecture" if path else "architecture"
    if not isinstance(name, str) or name not in catalog.ARCHITECTURE_MODULES:
        raise ConfigError(f"{where}: unknown architecture {name!r} "
                          f"(known: {', '.join(sorted(catalog.ARCHITECTURE_MODULES))})")
    return catalog.architecture(name)[0]


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


# ----------------------------------------------------------------------------- loading


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading numbers as YAML 1.2 does: ``1e-4`` and ``1E5`` (no dot, no
    exponent sign) are floats, where YAML 1.1 makes strings of them."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def load_yaml(text: str) -> Any:
    """A YAML document as Python values (safe: no objects), numbers read as YAML 1.2 writes them.
    Raises ``yaml.YAMLError`` for anything that is not YAML, a document nested too deeply too."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except RecursionError:
        raise yaml.YAMLError("nested too deeply") from None




def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML) to a raw config mapping.

    List items are addressed by index (``tasks.0.train=...``); a task given by bare name is
    first turned into ``{name: ...}`` so its keys can be set.
    """
    raw = copy.deepcopy(raw)
    if isinstance(raw.get("tasks"), list):
        raw["tasks"] = [{"name": t} if isinstance(t, str) else t for t in raw["tasks"]]
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. trainer.max_steps=200")
        key, text = item.split("=", 1)
        key = key.strip()
        try:
            value = load_yaml(text) if text != "" else ""
        except yaml.YAMLError:
            raise ConfigError(f"override {key}: value {text!r} is not valid YAML") from None
        parts = key.split(".")
        if not all(parts):
            raise ConfigError(f"override {key!r}: empty key part")
        node = raw
        for i, part in enumerate(parts):
            where = ".".join(parts[: i + 1])
            last = i == len(parts) - 1
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(f"override {key}: {where}: expected a list index below {len(node)}")
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
                continue
            if not isinstance(node, dict):
                raise ConfigError(f"override {key}: {'.'.join(parts[:i])} is not a section")
            if last:
                node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
    return raw


def _expand_tasks(raw: dict, source: str) -> dict:
    """Merge ``task_defaults`` into each task; ``{name}`` in a default string takes the task name."""
    defaults = raw.get("task_defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{source}: task_defaults: expected a mapping")
    tasks = raw.get("tasks") or []
    if not isinstance(tasks, list):
        raise ConfigError(f"{source}: tasks: expected a list of task mappings")
    merged = []
    for i, task in enumerate(tasks):
        if isinstance(task, str):
            task = {"name": task}
        if not isinstance(task, dict):
            raise ConfigError(f"{source}: tasks[{i}]: expected a mapping or a task name")
        name = task.get("name", "")
        entry = {}
        for key, value in defaults.items():
            if isinstance(value, str):
                try:
                    value = value.format(name=name)
                except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
                    raise ConfigError(f"{source}: task_defaults.{key}: {value!r} may only use the "
                                      f"placeholder {{name}} ({type(exc).__name__}: {exc})") from None
            entry[key] = copy.deepcopy(value)
        entry.update(task)
        merged.append(entry)
    out = dict(raw)
    out["tasks"] = merged
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                raw: dict | None = None) -> ExperimentConfig:
    """Load a YAML experiment (or a raw mapping), apply overrides, validate strictly."""
    source = str(path) if path is not None else "<config>"
    if raw is None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{source}: config file not found")
        try:
            raw = load_yaml(p.read_text(encoding="utf-8")) or {}
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{source}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    raw = apply_overrides(raw, overrides or [])
    expanded = _expand_tasks(raw, source)           # outside the try: its errors name the source already
    try:
        cfg = from_dict(ExperimentConfig, expanded)
        _check_task_options(raw, cfg)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    validate(cfg, source)
    return cfg


def _check_task_options(raw: dict, cfg: ExperimentConfig) -> None:
    """A task's own keys (not those it inherits from ``task_defaults``) that its kind's reader does
    not read are errors, unless left at their defaults (as a saved config.yaml writes them)."""
    from . import catalog
    kinds = catalog.task_kinds()
    defaults = TaskConfig()
    for i, (given, task) in enumerate(zip(raw.get("tasks") or [], cfg.tasks)):
        if not isinstance(given, dict) or task.type not in kinds:
            continue                                   # validate() names an unknown type
        takes = COMMON_TASK_KEYS | kinds[task.type].options
        for key in given:
            if key not in takes and getattr(task, key) != getattr(defaults, key):
                raise ConfigError(f"tasks[{i}].{key}: {task.type} tasks do not read this key "
                                  f"(they read: {', '.join(sorted(takes))})")


def validate(cfg: ExperimentConfig, source: str = "<config>") -> None:
    """Checks that need more than one field, before any data is read: each task against its kind,
    the tasks against what the architecture serves, the architecture's own settings."""
    from . import catalog
    if not cfg.tasks:
        raise ConfigError(f"{source}: tasks: at least one task is needed")
    check_limits(cfg, source)
    kinds = catalog.task_kinds()
    model = cfg.model
    seen = set()
    for i, task in enumerate(cfg.tasks):
        where = f"{source}: tasks[{i}]"
        if not task.name:
            raise ConfigError(f"{where}.name: every task needs a name")
        if task.name in seen:
            raise ConfigError(f"{where}.name: duplicate task name {task.name!r}")
        seen.add(task.name)
        if task.type not in kinds:
            raise ConfigError(f"{where}.type: unknown task type {task.type!r} (known: {', '.join(kinds)})")
        kind = kinds[task.type]
        if task.train is None:
            raise ConfigError(f"{where}.train: a train file is needed ({task.name})")
        for key in ("encoding", "fallback_encoding"):
            try:
                codecs.lookup(getattr(task, key))
            except LookupError:
                raise ConfigError(f"{where}.{key}: unknown encoding {getattr(task, key)!r} "
                                  "(e.g. utf-8, utf-16, cp1252, latin-1)") from None
        if task.dev_split.policy == "file" and task.dev is None and "dev" not in (task.split or {}):
            raise ConfigError(f"{where}.dev: dev_split.policy is 'file' but no dev path")
        try:
            kind.check_config(task, f"tasks[{i}]")
        except ValueError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        metrics = [task.metric] if isinstance(task.metric, str) else list(task.metric or [])
        for name in metrics:
            if name not in kind.metrics:
                raise ConfigError(f"{where}.metric: {name!r} is not a metric of {task.type} tasks "
                                  f"(they report: {', '.join(kind.metrics)})")
        if task.type not in model.kinds:
            serving = [name for name in sorted(catalog.ARCHITECTURE_MODULES)
                       if task.type in catalog.architecture(name)[0].kinds]
            raise ConfigError(f"{where}.type: the architecture {model.architecture!r} cannot serve "
                              f"{task.type} tasks ({task.name}); it serves {', '.join(model.kinds)} tasks, "
                              f"and {task.type} tasks are served by {' or '.join(serving)}")
        if kind.pair(task) and not model.pairs:
            raise ConfigError(f"{where}.text_b_column: the architecture {model.architecture!r} reads single "
                              f"texts, and {task.name} is a sentence-pair task")
        if kind.pair(task) and model.char_embedding_dim > 0:
            raise ConfigError(f"{source}: model.char_embedding_dim: character features are not "
                              "available for sentence-pair tasks yet; set it to 0")
    model.check(cfg.tasks, f"{source}: model")
    if getattr(model, "pretrained", None) and cfg.data.vectors:   # the architectures that take one declare it
        raise ConfigError(f"{source}: data.vectors: a pretrained encoder (model.pretrained) has its own embeddings "
                          "and reads no word vectors; remove one of the two")
    unknown = [t for t in cfg.trainer.pretrain_tasks if t not in seen]
    if unknown:
        raise ConfigError(f"{source}: trainer.pretrain_tasks: unknown tasks {unknown} (tasks: {sorted(seen)})")
    loss_methods, gradient_methods = catalog.weighting_methods()
    if cfg.trainer.weighting not in loss_methods + gradient_methods:
        raise ConfigError(f"{source}: trainer.weighting: unknown method {cfg.trainer.weighting!r} "
                          f"(known: {', '.join(loss_methods + gradient_methods)})")
    try:
        weighting_options(cfg.trainer.weighting, cfg.trainer.weighting_options,
                          catalog.weighting_option_classes().get(cfg.trainer.weighting))
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    if cfg.trainer.weighting in gradient_methods and cfg.trainer.step_mode != "all_tasks":
        raise ConfigError(f"{source}: trainer.weighting: {cfg.trainer.weighting} combines the tasks' "
                          "gradients of one step; set trainer.step_mode: all_tasks")


# Keys that say where and how a run executes, not what it trains: never a difference between runs.
RUN_LOCAL_KEYS = ("output_dir", "trainer.num_threads", "trainer.progress", "task_defaults",
                  "trainer.report_to", "trainer.mlflow_uri", "trainer.mlflow_experiment")
# Mappings whose keys are the user's, not fields of a config class: compared as whole values.
FREE_FORM_KEYS = ("weighting_options", "answer_words")


def config_differences(saved: dict, current: dict, ignore: tuple[str, ...] = RUN_LOCAL_KEYS,
                       only: Optional[dict] = None) -> list[str]:
    """The dotted keys set in both resolved configs whose values differ, as ``key: old -> new``
    (keys only one side has, e.g. options added since a run was saved, are not differences; the
    free-form mappings of :data:`FREE_FORM_KEYS` are compared whole). With
    ``only`` (a raw config: the YAML plus overrides, before defaults), just the keys it sets are
    compared, so a default that changed since the run was saved is not a difference either."""
    out: list[str] = []

    def walk(a: Any, b: Any, mask: Any, path: str) -> None:
        if path in ignore:
            return
        if isinstance(a, dict) and isinstance(b, dict) and path.rsplit(".", 1)[-1] not in FREE_FORM_KEYS:
            for key in a:
                if key in b and (mask is None or (isinstance(mask, dict) and key in mask)):
                    walk(a[key], b[key], None if mask is None else mask[key], f"{path}.{key}" if path else str(key))
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            masks = mask if isinstance(mask, list) and len(mask) == len(a) else [mask] * len(a)
            for i, (x, y, m) in enumerate(zip(a, b, masks)):
                walk(x, y, m, f"{path}.{i}")
        elif a != b:
            out.append(f"{path}: {a!r} -> {b!r}")
    walk(saved, current, only, "")
    return out


def save_config(cfg: ExperimentConfig, path: Path) -> None:
    """The resolved config as the run used it: defaults merged in, and each task with only the
    keys its kind reads."""
    from . import catalog
    data = to_dict(cfg)
    data["task_defaults"] = {}
    kinds = catalog.task_kinds()
    data["tasks"] = [{k: v for k, v in task.items() if k in COMMON_TASK_KEYS | kinds[task["type"]].options}
                     for task in data["tasks"]]
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
