"""Fixed tasks, batches and tiny configs for the golden-output test of every architecture.

The inputs here are plain tensors; only :func:`to_batch` and :func:`outputs` know the model API,
so a refactor that changes the batch type or the model interface changes those two functions and
nothing else, and the saved outputs must still match.
"""
from __future__ import annotations

import copy
import dataclasses

import torch

from polytask.config import architecture_config, load_config
from polytask.experiment import specs_from_info
from polytask.models import REGISTRY, build_model

VOCAB = 40
ARCHITECTURES = sorted(REGISTRY)

TASKS = {
    "a": {"type": "classification", "labels": ["0", "1"]},
    "b": {"type": "classification", "labels": ["x", "y", "z"]},
    "p": {"type": "pair_classification", "labels": ["no", "yes"]},
    "t": {"type": "tagging", "labels": ["ADJ", "NOUN", "PUNCT", "VERB"], "head": "softmax"},
    "c": {"type": "tagging", "labels": ["B-NP", "I-NP", "O"], "scheme": "BIO", "head": "crf"},
    "a2": {"type": "classification", "labels": ["0", "1"]},
    "q1": {"type": "qa", "labels": []},
    "q2": {"type": "qa", "labels": []},
}

BASE_MODEL = {"embedding_dim": 8, "encoder": {"type": "bilstm", "hidden_dim": 8, "num_layers": 1},
              "pooling": "max", "dropout": 0.0, "meta_hidden_dim": 6, "meta_dim": 5, "meta_rank": 4,
              "memory_slots": 5, "memory_width": 4, "label_embedding_dim": 4}
TRANSFORMER = {"encoder": {"type": "transformer", "hidden_dim": 8, "num_layers": 2, "num_heads": 2,
                           "ff_dim": 16, "max_positions": 32}}

# architecture -> (tasks, model overrides)
CASES: dict[str, tuple[list[str], dict]] = {name: (["a", "b", "p", "t", "c"], {}) for name in ARCHITECTURES}
CASES.update({
    "shared_private": (["a", "b", "p"], {}),
    "adversarial_shared_private": (["a", "b", "p"], {}),
    "regularized_heads": (["a", "a2"], {}),
    "tucker_heads": (["a", "a2"], {}),
    "tensor_train_heads": (["a", "a2"], {}),
    "mqan": (["q1", "q2"], {"encoder": {"type": "bilstm", "hidden_dim": 8, "num_layers": 1, "num_heads": 2},
                            "max_answer_length": 4}),
    "seq2seq": (["q1", "q2"], {"encoder": {"type": "bilstm", "hidden_dim": 8, "num_layers": 1, "num_heads": 2},
                               "max_answer_length": 4}),
    "low_supervision": (["t", "c", "a", "b"], {"encoder": {"type": "bilstm", "hidden_dim": 8, "num_layers": 2},
                                                   "task_layers": {"t": 1}}),
    "joint_many_task": (["t", "c", "a", "b"], {"encoder": {"type": "bilstm", "hidden_dim": 8, "num_layers": 3},
                                                   "task_layers": {"t": 1, "c": 2}}),
    "fully_adaptive": (["a", "b", "p", "t", "c"], {"encoder": {"type": "bilstm", "hidden_dim": 8, "num_layers": 2}}),
    "cross_stitch": (["a", "b", "p", "t", "c"], {"encoder": {"type": "bilstm", "hidden_dim": 8, "num_layers": 2}}),
    "sluice": (["a", "b", "p", "t", "c"], {"encoder": {"type": "bilstm", "hidden_dim": 8, "num_layers": 2}}),
})
for _name in ARCHITECTURES:
    if _name.startswith("transformer_"):
        CASES[_name] = (["a", "b", "p", "t", "c"], TRANSFORMER)


def config(arch: str):
    tasks, overrides = CASES[arch]
    model = {**copy.deepcopy(BASE_MODEL), **copy.deepcopy(overrides), "architecture": arch}
    takes = {f.name for f in dataclasses.fields(architecture_config(arch))}
    model = {k: v for k, v in model.items() if k in takes}          # the sizes this architecture takes
    raw = {"tasks": [{"name": t, "type": TASKS[t]["type"], "train": "x",
                      **({"format": "conll"} if TASKS[t]["type"] == "tagging" else {}),
                      **({"question": "q?", "answer_words": {"0": "no", "1": "yes"}}
                         if TASKS[t]["type"] == "qa" else {}),
                      **({"text_b_column": "b", "format": "tsv"} if TASKS[t]["type"] == "pair_classification" else {})}
                     for t in tasks],
           "model": model}
    return load_config(raw=raw), tasks


def build(arch: str):
    """The architecture on the case's tasks, weights drawn from the current torch seed."""
    cfg, tasks = config(arch)
    info = {t: {"type": TASKS[t]["type"], "labels": TASKS[t]["labels"], "scheme": TASKS[t].get("scheme"),
                "head": TASKS[t].get("head", "softmax"), "metric": "accuracy"} for t in tasks}
    return build_model(cfg, specs_from_info(info), VOCAB), tasks


def _ids(gen: torch.Generator, lengths: list[int], low: int = 2, high: int = VOCAB) -> tuple[torch.Tensor, torch.Tensor]:
    tokens = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    for i, n in enumerate(lengths):
        tokens[i, :n] = torch.randint(low, high, (n,), generator=gen)
    mask = torch.arange(tokens.shape[1])[None, :] < torch.tensor(lengths)[:, None]
    return tokens, mask


def golden_batches(tasks: list[str]) -> dict[str, dict[str, torch.Tensor]]:
    """Per task: token ids (B, T) with padding, masks, lengths and labels, the same on every call."""
    out = {}
    for k, task in enumerate(tasks):
        gen = torch.Generator().manual_seed(100 + k)
        lengths = [7, 3, 5, 1]
        tokens, mask = _ids(gen, lengths)
        kind = TASKS[task]["type"]
        C = len(TASKS[task]["labels"])
        item = {"tokens": tokens, "mask": mask, "lengths": torch.tensor(lengths)}
        if kind in ("classification", "pair_classification"):
            item["labels"] = torch.randint(0, C, (len(lengths),), generator=gen)
        if kind == "pair_classification":
            lengths_b = [2, 6, 4, 3]
            item["tokens_b"], item["mask_b"] = _ids(gen, lengths_b)
            item["lengths_b"] = torch.tensor(lengths_b)
        if kind == "tagging":
            tags = torch.randint(0, C, tokens.shape, generator=gen) * mask.long()
            if TASKS[task].get("scheme"):              # a valid BIO sequence: no O -> I-NP
                tags = torch.tensor([[0, 1, 1, 2, 0, 1, 2], [2, 0, 1, 0, 0, 0, 0], [0, 2, 2, 0, 1, 0, 0],
                                     [0, 0, 0, 0, 0, 0, 0]]) * mask.long()
            item["labels"] = tags
        if kind == "qa":
            lengths_b = [3, 2, 4, 3]
            item["tokens_b"], item["mask_b"] = _ids(gen, lengths_b)
            item["lengths_b"] = torch.tensor(lengths_b)
            answers = [[2, 5, 3], [2, 6, 7, 3], [2, 4, 3], [2, 9, 3]]  # <s> ... </s>
            item["labels"], item["answer_mask"] = _ids_fixed(answers)
        out[task] = item
    return out


def _ids_fixed(seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    tokens = torch.zeros(len(seqs), max(map(len, seqs)), dtype=torch.long)
    for i, s in enumerate(seqs):
        tokens[i, : len(s)] = torch.tensor(s)
    mask = torch.arange(tokens.shape[1])[None, :] < torch.tensor([len(s) for s in seqs])[:, None]
    return tokens, mask


def to_batch(task: str, item: dict[str, torch.Tensor], labels: bool):
    from polytask.data.batching import Batch, PairBatch, QABatch
    fields = {k: v for k, v in item.items() if k != "labels" and k != "answer_mask"}
    cls = {"pair_classification": PairBatch, "qa": QABatch}.get(TASKS[task]["type"], Batch)
    batch = cls(task=task, index=list(range(item["tokens"].shape[0])), **fields)
    if TASKS[task]["type"] == "qa":
        batch.oov = [[] for _ in range(batch.size)]
        batch.answers_text = [[] for _ in range(batch.size)]
    if labels:
        batch.labels = item["labels"]
        if "answer_mask" in item:
            batch.answer_mask = item["answer_mask"]
    return batch


@torch.no_grad()
def outputs(model: torch.nn.Module, batches: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Eval-mode outputs per task: logits and loss with labels, decoded tags, generated answers."""
    model.eval()
    out = {}
    for task, item in batches.items():
        result = model(to_batch(task, item, labels=True))
        out[f"{task}/logits"] = result.logits.float()
        if result.loss is not None:
            out[f"{task}/loss"] = result.loss.float().reshape(1)
        for name, part in sorted(result.parts.items()):
            out[f"{task}/part/{name}"] = part.float().reshape(-1)
        if result.predictions is not None:
            out[f"{task}/predictions"] = result.predictions
        if TASKS[task]["type"] == "qa":
            answers = model.generate(to_batch(task, item, labels=False))
            width = max(len(a) for a in answers)
            out[f"{task}/generated"] = torch.tensor([a + [-1] * (width - len(a)) for a in answers])
    return out
