"""The contract between task kinds and architectures.

An architecture turns one text of one task into an :class:`Encoding` (per-word states and a way
to pool them into a sentence vector, plus any loss terms and values of its own); a task kind asks
for what it needs (a sentence vector, token states, or the encodings of both texts of a pair),
runs its head and computes its loss. Neither knows the other's internals: an architecture never
branches on the task kind, and a kind never on the architecture.

A :class:`TaskKind` owns everything that is specific to one type of task: which file formats it
reads, how examples become tensors and batches, its head, loss, metrics, prediction format and
the request/response schema of the server. Adding a kind is one file plus its line in
:data:`polytask.kinds.KINDS`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Optional, Union

import torch
from torch import nn

from ..data.batching import Batch, Encoded, Text, cached_eval_batches, eval_batches  # noqa: F401  (Text: re-exported)
from ..data.hf import ROLES as HF_ROLES
from ..data.readers import DataError, Example
from ..evaluation.metrics import compute

Inspect = Union[torch.Tensor, Callable[[], torch.Tensor]]


@dataclass
class Encoding:
    """What an architecture gives for one text of one task.

    ``states`` are per word (B, T, H); ``pool`` turns them into the sentence vector (B, H) the way
    the architecture pools, unless the architecture gives ``sentence`` directly (a [CLS] or task
    token). ``losses`` is called only when the batch has labels: it returns the architecture's own
    loss terms as ``name -> (weight, value)``, added to the kind's loss in order. ``inspect`` holds
    values a user may want to see (gates, mixing weights); a callable is evaluated on demand.
    """

    states: torch.Tensor
    mask: torch.Tensor
    pool: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None
    sentence_vector: Optional[torch.Tensor] = None
    losses: Optional[Callable[[], dict[str, tuple[float, torch.Tensor]]]] = None
    inspect: dict[str, Inspect] = field(default_factory=dict)

    def sentence(self) -> torch.Tensor:
        """The sentence vector (B, H)."""
        if self.sentence_vector is None:
            self.sentence_vector = self.pool(self.states, self.mask)
        return self.sentence_vector

    def words(self, text: Text) -> tuple[torch.Tensor, torch.Tensor]:
        """Token states aligned to the input words (B, W, H) and their mask (B, W).

        A text in word ids has one state per word, so these are ``states`` as they are. A text a
        pretrained tokenizer split into sub-tokens gives each word the state of its first
        sub-token (``text.word_starts``, BERT's tagging recipe); the word's other sub-tokens are
        never read, so they count neither in the loss nor in the metric.
        """
        if text.word_starts is None:
            return self.states, text.mask
        index = text.word_starts[..., None].expand(-1, -1, self.states.shape[-1])   # (B, W, H)
        return self.states.gather(1, index), text.word_mask


@dataclass
class TaskOutput:
    logits: torch.Tensor                                  # (B, C), (B, T, C) for tagging, (B,) for regression
    loss: Optional[torch.Tensor] = None                   # task loss + the architecture's own terms
    parts: dict[str, torch.Tensor] = field(default_factory=dict)    # loss terms, for logging
    inspect: dict[str, Inspect] = field(default_factory=dict)       # gates, mixing weights, ...
    predictions: Optional[torch.Tensor] = None            # (B, T) decoded tags, for tagging

    def inspected(self) -> dict[str, torch.Tensor]:
        """The inspection values, computing those given as callables (kept lazy so that training
        and evaluation never pay for them)."""
        return {k: (v() if callable(v) else v) for k, v in self.inspect.items()}


def finish(logits: torch.Tensor, task_loss: Optional[torch.Tensor], encoding: Encoding,
           predictions: Optional[torch.Tensor] = None) -> TaskOutput:
    """A kind's output: its loss plus the architecture's own terms (``encoding.losses``, only when
    there are labels), each loss part detached for logging, and the inspection values (callables
    stay uncomputed until :meth:`TaskOutput.inspected`)."""
    out = TaskOutput(logits=logits, predictions=predictions, inspect=dict(encoding.inspect))
    if task_loss is not None:
        out.loss = task_loss
        out.parts["task"] = task_loss.detach()
        for name, (weight, value) in (encoding.losses() if encoding.losses else {}).items():
            out.loss = out.loss + weight * value
            out.parts[name] = value.detach()
    return out


@dataclass(frozen=True)
class TaskSpec:
    """What a model needs to know about a task to build its head."""

    name: str
    kind: str
    labels: tuple[str, ...] = ()
    scheme: Optional[str] = None      # BIO / BIOES, for CRF constraints
    head: str = "softmax"             # tagging head: softmax or crf
    pair: bool = False                # the task reads two texts (a pair task, or a pair regression)
    cross_encoded: bool = False       # ... as one joint input (a pretrained encoder): one vector to the head

    @property
    def num_labels(self) -> int:
        return len(self.labels)


class TaskKind(ABC):
    """One type of task. Subclasses set the class attributes and implement the abstract methods.

    Attributes:
        name: the ``type`` a task gives in the YAML.
        formats: the file formats its reader takes.
        metrics: the metrics it can report; ``default_metrics`` those reported when a task does
            not choose. The first metric of a task selects the best dev step.
        labelled: False for kinds without a label set (regression, qa).
        options: the task keys its reader reads beyond those every kind reads (a task that sets
            another key is refused when the YAML loads).
    """

    name: ClassVar[str]
    formats: ClassVar[tuple[str, ...]]
    metrics: ClassVar[tuple[str, ...]]
    default_metrics: ClassVar[tuple[str, ...]]
    labelled: ClassVar[bool] = True
    options: ClassVar[frozenset[str]] = frozenset()

    # ------------------------------------------------------------------ config and data

    def check_config(self, task, where: str) -> None:
        """Refuse options this kind cannot honour (``task`` is a TaskConfig, ``where`` its key path)."""
        if task.format not in self.formats:
            raise ValueError(f"{where}.format: {self.name} tasks read {'/'.join(self.formats)} files, "
                             f"not {task.format!r} ({task.name})")
        if task.split is not None:
            if task.format != "hf":
                raise ValueError(f"{where}.split: names the splits of a Hugging Face dataset (format: hf); "
                                 f"a {task.format} task reads one file per split ({task.name})")
            for role, name in task.split.items():
                if role not in HF_ROLES:
                    raise ValueError(f"{where}.split.{role}: not a role of a split (roles: {', '.join(HF_ROLES)})")
                if not isinstance(name, str) or not name:
                    raise ValueError(f"{where}.split.{role}: expected the name of a split of the dataset")
        if task.balance_labels and not self.balances_labels(task):
            raise ValueError(f"{where}.balance_labels: a {self.name} task{' read from squad' if task.format == 'squad' else ''} "
                             "has no label per example to balance ({task.name})")

    def default_metric(self, task) -> tuple[str, ...]:
        return self.default_metrics

    def recorded(self, task) -> dict:
        """Settings of ``task`` that its run records in tasks.json beside the labels (default none)."""
        return {}

    def balances_labels(self, task) -> bool:
        """Whether ``balance_labels`` applies: each example has one label out of a set."""
        return False

    def pair(self, task) -> bool:
        """Whether the task reads two texts per example."""
        return False

    @abstractmethod
    def read(self, task, path, labelled: bool = True, role: str = "train") -> tuple[list[Example], Any]:
        """Examples and read statistics of one file of ``task`` (a TaskConfig); ``role`` (train, dev,
        test, unlabeled) picks the split of a Hugging Face dataset (``format: hf``)."""

    def vary_training(self, task, train: list[Example], seed: int) -> list[Example]:
        """The training examples as training sees them, once the dev set is carved from them; a
        kind may vary them (qa: a question drawn per example). Default: unchanged."""
        return train

    def gold_labels(self, example: Example) -> list[str]:
        """The label strings of an example that must be in the label set (none without one)."""
        return [example.label] if self.labelled and example.label is not None else []

    def label_set(self, task, train: list[Example]) -> list[str]:
        """The task's labels: the config's ``labels``, else the sorted labels of the train split
        (none for a kind without a label set)."""
        if not self.labelled:
            return []
        if task.labels is not None:
            return list(task.labels)
        return sorted({label for ex in train for label in self.gold_labels(ex)})

    def check_labels(self, task, labels: list[str], splits: dict[str, list[Example]],
                     paths: dict[str, str]) -> None:
        known = set(labels)
        for split, examples in splits.items():
            for ex in examples:
                for label in self.gold_labels(ex):
                    if label not in known:
                        raise DataError(paths.get(split, paths["train"]), f"unknown label {label!r} for task "
                                        f"{task.name!r} (known: {', '.join(labels)})", ex.line)
        if self.labelled and len(labels) < 2:
            raise DataError(paths["train"], f"task {task.name!r} needs at least two labels, found {labels}")

    @abstractmethod
    def encode(self, examples: list[Example], vocab, labels: list[str], max_length: int,
               char_vocab=None) -> list[Encoded]:
        """Ids (truncated to ``max_length``) and targets of each example."""

    def encode_scored(self, examples: list[Example], vocab, labels: list[str], max_length: int,
                      char_vocab=None) -> list[Encoded]:
        """The examples as they are scored and predicted (dev, test, ``predict``): by default what
        :meth:`encode` gives; a kind whose metric reads every part of a long input (tagging: every
        word) encodes it whole here."""
        return self.encode(examples, vocab, labels, max_length, char_vocab)

    @abstractmethod
    def collate(self, task: str, items: list[Encoded], index: Optional[list[int]] = None) -> Batch:
        """A padded batch of encoded examples."""

    # ------------------------------------------------------------------ model side

    @abstractmethod
    def build_head(self, spec: TaskSpec, input_dim: int, dropout: float) -> nn.Module:
        """The task's output layer over representations of width ``input_dim``."""

    @abstractmethod
    def forward(self, model, batch: Batch) -> TaskOutput:
        """Outputs (and, with labels, the loss) of ``model`` on ``batch``."""

    # ------------------------------------------------------------------ evaluation and prediction

    @abstractmethod
    def predict(self, model, task: str, items: list[Encoded], batch_size: int, device, itos=None) -> list:
        """Predictions for ``items`` in their order (class ids, floats, tag id lists, answers);
        ``itos`` is the vocabulary, for kinds that turn generated ids back into words."""

    @abstractmethod
    def gold(self, items: list[Encoded]) -> list:
        """The gold targets of ``items``, in the form :meth:`predict` gives predictions."""

    def score(self, predictions: list, items: list[Encoded], metrics: tuple[str, ...],
              info: dict) -> dict[str, float]:
        """Each of ``metrics`` (0-100 scale, as GLUE averages them) on ``predictions``."""
        return self.score_against(self.gold(items), predictions, metrics, info)

    def score_against(self, gold: list, predictions: list, metrics: tuple[str, ...],
                      info: dict) -> dict[str, float]:
        """Each of ``metrics`` of ``predictions`` against ``gold``, both in the form :meth:`gold`
        and :meth:`predict` give (what ``predictions/test.jsonl`` of a run records)."""
        return {name: compute(name, gold, predictions, info) for name in metrics}

    @abstractmethod
    def records(self, predictions: list, info: dict, raw: Optional[list] = None) -> list[dict]:
        """Predictions as JSON-ready records (``polytask predict`` and the server)."""

    @abstractmethod
    def parse_inputs(self, inputs: list, task) -> list[Example]:
        """Raw inputs (strings, pairs, token lists, as ``polytask predict`` and the server take
        them) as examples tokenised the way ``task`` (a TaskConfig) reads its files; a bad input
        raises ValueError naming it."""

    # ------------------------------------------------------------------ the server's schema
    # Plain typing annotations, no web library: polytask.serving builds its pydantic request and
    # response models from them (and its page reads ``input_parts`` to draw a form).

    #: One prediction record as :meth:`records` writes it (a ``TypedDict``).
    record_type: ClassVar[Any] = dict

    def input_type(self, task) -> Any:
        """The annotation of one raw input :meth:`parse_inputs` takes for ``task`` (a TaskConfig)."""
        return str

    def input_parts(self, task) -> tuple[str, ...]:
        """The texts one input is made of, in order (a form shows one box for each)."""
        return ("text",)


def run_eval(model, task: str, items: list[Encoded], batch_size: int, device, kind: TaskKind,
             step: Callable[[Batch, Any], None], call: Callable = lambda model, batch: model(batch)) -> None:
    """Run ``model`` in eval mode without gradients over ``items`` in length-sorted batches;
    ``step(batch, call(model, batch))`` collects what the caller needs (``batch.index`` restores
    order). ``call`` is the forward pass by default (``model.generate`` for answers)."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for batch in cached_eval_batches(task, items, batch_size, kind.collate):
                step(batch, call(model, batch.to(device)))
    finally:
        model.train(was_training)


def in_order(n: int, pairs) -> list:
    """Values given as (index, value) pairs, as a list in index order."""
    out: list = [None] * n
    for i, value in pairs:
        out[i] = value
    return out
