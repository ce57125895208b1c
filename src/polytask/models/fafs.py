"""Fully-adaptive feature sharing (FAFS): start thin, widen greedily from the top, branch by affinity.

Lu, Kumar, Zhai, Cheng, Javidi, Feris, CVPR 2017, "Fully-Adaptive Feature Sharing in Multi-Task
Networks with Applications in Person Attribute Classification" (§3.2-3.3).

The network starts *thin*: every task shares every layer of a stack of L BiLSTM layers and has only
its own output layer. Training then widens it top-down, one layer at a time (the *active* layer,
every ``model.fafs_widen_every`` steps): the branches that meet at the active layer (at the top, one
per task) are clustered into d groups, and each group gets its own copy of the active layer,
initialised from the layer it replaces. The active layer moves one down, until the bottom layer has
been decided. The result is a tree: tasks that go together share more layers.

Choosing d and the groups (Lu et al.'s trade-off between a new branch's cost and how dissimilar the
tasks left together are):

    d* = argmin_d  (d - 1) · λ  +  Σ_g (|g| / n) · mean_{i<j ∈ g} (1 - A_ij)

over the partitions that average-linkage agglomerative clustering of the branches gives for each d,
where A is the branch affinity (the mean task affinity between their tasks) and λ is
``model.fafs_branch_cost``. Lu et al.'s 2^{p_l} factor (more pooling below, cheaper layer) is 1
here: every layer of a BiLSTM stack costs the same.

Task affinity, an adaptation: Lu et al. score two tasks by how often they find the *same examples*
easy or hard. polytask's tasks mostly have their own examples (16 review domains, POS tags and
chunks on different corpora), so that count is undefined; instead two tasks' affinity is how much
their gradients agree on the active layer, A_ij = (1 + cos(∇_i, ∇_j)) / 2, from a few training
batches of each task: the same question (would one shared layer serve both?) asked of the layer.

All copies of each layer are allocated up front (a copy per task) so the optimizer never changes;
an unused copy gets no gradient and does not count in :meth:`num_parameters`. The tree lives in
buffers (``assign``: layer × task -> copy), so it is saved, resumed and loaded with the weights.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar, Optional

import torch
from torch import nn

from ..config import ConfigError, ModelConfig
from ..modules import LSTMEncoder, Pooling
from ..modules.embeddings import build_embedding
from .contract import Encoding, MultiTaskModel, TaskSpec, Text, task_head


@dataclass
class FullyAdaptiveConfig(ModelConfig):
    """Steps between widenings (top layer first) and λ, the cost of one more branch."""

    transferable: ClassVar[bool] = False   # a tree of branches grown for its own tasks
    encoders: ClassVar[tuple[str, ...]] = ("bilstm",)
    limits: ClassVar[dict[str, str]] = {"fafs_widen_every": ">= 0",   # 0: never widen
                                        "fafs_branch_cost": ">= 0"}

    fafs_widen_every: int = 500
    fafs_branch_cost: float = 0.05

    def check(self, tasks, where: str) -> None:
        if self.encoder.type not in self.encoders:
            raise ConfigError(f"{where}.encoder.type: fully_adaptive widens a stack of BiLSTM layers; got "
                              f"{self.encoder.type!r} (use bilstm)")
        super().check(tasks, where)


def branch_affinity(task_affinity: torch.Tensor, branches: list[list[int]]) -> torch.Tensor:
    """(n_tasks, n_tasks) task affinity -> (n_branches, n_branches) mean affinity between branches."""
    n = len(branches)
    out = torch.ones(n, n, dtype=task_affinity.dtype)
    for a in range(n):
        for b in range(n):
            if a != b:
                out[a, b] = task_affinity[branches[a]][:, branches[b]].mean()
    return out


def separation(affinity: torch.Tensor, groups: list[list[int]]) -> float:
    """Σ_g (|g| / n) · mean pairwise dissimilarity (1 - A) inside g; singletons count 0."""
    n = affinity.shape[0]
    total = 0.0
    for g in groups:
        if len(g) > 1:
            sub = affinity[g][:, g]
            pairs = len(g) * (len(g) - 1)
            total += len(g) / n * float((1 - sub).sum() - (1 - sub.diagonal()).sum()) / pairs
    return total


def group_branches(affinity: torch.Tensor, branch_cost: float) -> list[list[int]]:
    """Lu et al.'s widening decision on an (n, n) branch affinity matrix: the partition (from
    average-linkage clustering, one per number of groups d) minimising (d - 1)·cost + separation.
    Groups are lists of branch indices, each sorted, ordered by their first member."""
    n = affinity.shape[0]
    groups = [[i] for i in range(n)]
    candidates = [[list(g) for g in groups]]
    while len(groups) > 1:
        best, pair = -float("inf"), (0, 1)
        for a in range(len(groups)):
            for b in range(a + 1, len(groups)):
                link = float(affinity[groups[a]][:, groups[b]].mean())
                if link > best:
                    best, pair = link, (a, b)
        a, b = pair
        groups = [g for k, g in enumerate(groups) if k not in pair] + [sorted(groups[a] + groups[b])]
        candidates.append(sorted((list(g) for g in groups), key=lambda g: g[0]))
    scores = [(len(c) - 1) * branch_cost + separation(affinity, c) for c in candidates]
    best = min(range(len(candidates)), key=lambda k: (scores[k], len(candidates[k])))
    return sorted(candidates[best], key=lambda g: g[0])


class FullyAdaptiveModel(MultiTaskModel):
    """Embedding -> L BiLSTM layers, each task routed through its branch's copy -> task head."""

    def __init__(self, embedding: nn.Module, tasks: list[TaskSpec], hidden_dim: int, num_layers: int,
                 dropout: float, pooling: str, widen_every: int, branch_cost: float):
        super().__init__(tasks)
        self.embedding = embedding
        self.names = [t.name for t in tasks]
        K = len(tasks)
        widths = [embedding.output_dim] + [2 * hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.ModuleList(LSTMEncoder(w, hidden_dim, 1) for _ in range(K)) for w in widths)
        self.dropout = nn.Dropout(dropout)
        self.pool = Pooling(pooling, bidirectional=True)
        self.heads = nn.ModuleDict({t.name: task_head(t, 2 * hidden_dim, dropout) for t in tasks})
        self.widen_every, self.branch_cost = widen_every, branch_cost
        self.register_buffer("assign", torch.zeros(num_layers, K, dtype=torch.long))   # layer, task -> copy
        self.register_buffer("active", torch.tensor(num_layers - 1))                 # next layer to widen

    # ------------------------------------------------------------------ the tree

    def branches(self, layer: int) -> list[list[int]]:
        """Task indices grouped by the copy they use at ``layer``; above the top, one per task."""
        if layer >= len(self.layers):
            return [[k] for k in range(len(self.names))]
        by_copy: dict[int, list[int]] = {}
        for k, c in enumerate(self.assign[layer].tolist()):
            by_copy.setdefault(c, []).append(k)
        return sorted(by_copy.values(), key=lambda g: g[0])

    def structure(self) -> dict:
        """The branch tree, bottom layer first: for each layer, the groups of tasks sharing a copy."""
        return {"fafs_tree": [[[self.names[k] for k in g] for g in self.branches(layer)]
                              for layer in range(len(self.layers))],
                "fafs_widened_down_to": len(self.layers) - 1 - int(self.active)}

    def widen(self, task_affinity: torch.Tensor) -> list[list[str]]:
        """Split the active layer by ``task_affinity`` (n_tasks × n_tasks); returns its new groups."""
        layer = int(self.active)
        above = self.branches(layer + 1)
        groups = group_branches(branch_affinity(task_affinity, above), self.branch_cost)
        parent = self.layers[layer][int(self.assign[layer, 0])]
        used = set(self.assign[layer].tolist())
        free = (c for c in range(len(self.names)) if c not in used)
        new_assign = self.assign[layer].clone()
        for g in groups[1:]:                       # the first group keeps the existing layer
            copy = next(free)
            self.layers[layer][copy].load_state_dict(parent.state_dict())
            for b in g:
                new_assign[above[b]] = copy
        self.assign[layer] = new_assign
        self.active -= 1
        return [[self.names[k] for b in g for k in above[b]] for g in groups]

    def adapt(self, step: int, task_gradients: Callable[[list[nn.Parameter]], torch.Tensor]) -> Optional[dict]:
        """Called by the trainer after every step: widen the active layer when its step comes.
        ``task_gradients(params)`` gives one flattened gradient per task (n_tasks, P)."""
        layer = int(self.active)
        if layer < 0 or self.widen_every <= 0 or step != (len(self.layers) - layer) * self.widen_every:
            return None
        copy = self.layers[layer][int(self.assign[layer, 0])]
        grads = task_gradients(list(copy.parameters()))
        unit = torch.nn.functional.normalize(grads, dim=1)
        cos = (unit @ unit.t()).clamp(-1.0, 1.0)
        groups = self.widen((1 + cos) / 2)
        return {"layer": layer + 1, "groups": groups, "task_affinity": ((1 + cos) / 2).tolist()}

    # ------------------------------------------------------------------ the network

    def states(self, task: str, tokens, mask, chars=None) -> torch.Tensor:
        """Task ``task``'s path through the tree: (B, T) ids -> (B, T, 2H) states."""
        k = self.names.index(task)
        x = self.embedding(tokens) if chars is None else self.embedding(tokens, chars)   # (B, T, E)
        for layer, copies in enumerate(self.layers):
            if layer:
                x = self.dropout(x)
            x = copies[int(self.assign[layer, k])](x, mask)                  # (B, T, 2H), its branch's copy
        return x

    def encode(self, task: str, text: Text) -> Encoding:
        return Encoding(self.states(task, text.tokens, text.mask, text.chars), text.mask, pool=self.pool)

    def _copies_in_use(self) -> dict[tuple[int, int], list[int]]:
        used: dict[tuple[int, int], list[int]] = {}
        for layer in range(len(self.layers)):
            for k, c in enumerate(self.assign[layer].tolist()):
                used.setdefault((layer, c), []).append(k)
        return used

    def shared_parameters(self):
        yield from self.embedding.parameters()
        for (layer, c), tasks in self._copies_in_use().items():
            if len(tasks) > 1:
                yield from self.layers[layer][c].parameters()

    def task_parameters(self, task: str):
        k = self.names.index(task)
        for (layer, c), tasks in self._copies_in_use().items():
            if tasks == [k]:
                yield from self.layers[layer][c].parameters()
        yield from self.heads[task].parameters()

    def num_parameters(self) -> int:
        """Parameters of the network as it stands: unused layer copies do not count."""
        used = self._copies_in_use()
        return (sum(p.numel() for p in self.embedding.parameters())
                + sum(p.numel() for (layer, c) in used for p in self.layers[layer][c].parameters())
                + sum(p.numel() for p in self.heads.parameters()))


def build(cfg, tasks: list[TaskSpec], vocab_size: int, vectors: Optional[torch.Tensor] = None,
          num_chars: int = 0) -> FullyAdaptiveModel:
    m = cfg.model
    embedding = build_embedding(m, vocab_size, vectors, num_chars)
    return FullyAdaptiveModel(embedding, tasks, m.encoder.hidden_dim, m.encoder.num_layers, m.dropout,
                              m.pooling, m.fafs_widen_every, m.fafs_branch_cost)


ARCHITECTURES = {"fully_adaptive": (FullyAdaptiveConfig, build)}
