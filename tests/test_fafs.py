"""Fully-adaptive feature sharing: the branching decision on toy affinity matrices, widening that
leaves the network's function unchanged, and a run that widens, saves its tree and resumes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import classes

from polytask.config import ConfigError, load_config
from polytask.models.fafs import branch_affinity, group_branches, separation
from polytask.runner import load_run, train


def block_affinity(within: float = 0.95, across: float = 0.2) -> torch.Tensor:
    """Four tasks: {0, 1} and {2, 3} agree, the two pairs do not."""
    a = torch.full((4, 4), across)
    a[:2, :2] = within
    a[2:, 2:] = within
    return a


def test_branching_groups_tasks_that_agree():
    assert group_branches(block_affinity(), branch_cost=0.05) == [[0, 1], [2, 3]]


def test_branch_cost_trades_branches_against_separation():
    a = block_affinity()
    assert group_branches(a, branch_cost=1.0) == [[0, 1, 2, 3]]          # branches too dear: stay thin
    assert group_branches(a, branch_cost=0.0) == [[0], [1], [2], [3]]    # free: every task alone
    # separation by hand: two groups of two, each pair dissimilarity 0.05, each group half the tasks
    assert separation(a, [[0, 1], [2, 3]]) == pytest.approx(0.05)
    # one group: mean over the 6 pairs of (1 - A) = (2·0.05 + 4·0.8) / 6
    assert separation(a, [[0, 1, 2, 3]]) == pytest.approx((2 * 0.05 + 4 * 0.8) / 6 * 1.0)


def test_branch_affinity_is_the_mean_over_their_tasks():
    a = block_affinity()
    b = branch_affinity(a, [[0, 1], [2], [3]])
    assert b[1, 2] == pytest.approx(0.95) and b[0, 1] == pytest.approx(0.2)


def fafs_config(fdu_config: dict, **model) -> dict:
    raw = dict(fdu_config)
    raw["tasks"] = [{"name": "a"}, {"name": "b"}, {"name": "c", "train": "fdu/a.task.train",
                                                   "test": "fdu/a.task.test"}]
    raw["model"] = {**raw["model"], "architecture": "fully_adaptive",
                    "encoder": {"type": "bilstm", "hidden_dim": 16, "num_layers": 2}, **model}
    return raw


def test_widening_keeps_outputs_and_moves_down_a_layer(fdu_config):
    from polytask.data.batching import Encoded, collate_text as collate
    from polytask.models import TaskSpec, build_model
    torch.manual_seed(0)
    cfg = load_config(raw=fafs_config(fdu_config, fafs_widen_every=0, fafs_branch_cost=0.05))
    model = build_model(cfg, [classes("a", 2), classes("b", 2), classes("c", 2)], vocab_size=20).eval()
    batch = collate("c", [Encoded([2, 3, 4], None, 1), Encoded([5, 6], None, 0)])
    before = model(batch).logits
    affinity = torch.tensor([[1.0, 0.1, 0.95], [0.1, 1.0, 0.1], [0.95, 0.1, 1.0]])   # a ~ c, b alone
    groups = model.widen(affinity)
    assert sorted(map(sorted, groups)) == [["a", "c"], ["b"]]
    assert model.assign[1, 0] == model.assign[1, 2] != model.assign[1, 1]
    assert int(model.active) == 0 and model.assign[0].unique().numel() == 1
    torch.testing.assert_close(model(batch).logits, before)                 # copies start equal
    shared = {id(p) for p in model.shared_parameters()}
    own_b = {id(p) for p in model.task_parameters("b")}
    assert own_b and not own_b & shared
    assert model.structure()["fafs_tree"] == [[["a", "b", "c"]], [["a", "c"], ["b"]]]
    thin = sum(p.numel() for p in model.embedding.parameters()) + sum(
        p.numel() for layer in model.layers for p in layer[0].parameters()) + sum(
        p.numel() for p in model.heads.parameters())
    assert model.num_parameters() == thin + sum(p.numel() for p in model.layers[1][0].parameters())


def test_run_widens_saves_the_tree_and_reloads_it(fdu_config):
    raw = fafs_config(fdu_config, fafs_widen_every=40, fafs_branch_cost=0.0)
    raw["trainer"] = {**raw["trainer"], "max_steps": 60, "eval_every": 20}
    train(load_config(raw=raw), quiet=True)                                 # stops after the first widening
    raw["trainer"]["max_steps"] = 120
    results = train(load_config(raw=raw), quiet=True, resume=True)          # resumes with its tree
    out = Path(raw["output_dir"])
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    widened = [e for e in events if e.get("event") == "structure"]
    assert [e["step"] for e in widened] == [40, 80] and [e["layer"] for e in widened] == [2, 1]
    tree = json.loads((out / "structure.json").read_text())["fafs_tree"]
    assert len(tree) == 2 and sorted(t for g in tree[1] for t in g) == ["a", "b", "c"]
    assert len(tree[1]) == 3                                               # cost 0: every task its own top layer
    model = load_run(out).model
    assert model.structure()["fafs_tree"] == tree
    assert results["params"] == model.num_parameters()
    assert min(results["dev"].values()) >= 80.0, results


def test_fully_adaptive_needs_a_bilstm(fdu_config):
    raw = fafs_config(fdu_config)
    raw["model"]["encoder"] = {"type": "cnn"}
    with pytest.raises(ConfigError, match="model.encoder.type"):
        load_config(raw=raw)


def test_transfer_from_a_fully_adaptive_run_is_refused_clearly(fdu_config, tmp_path):
    raw = fafs_config(fdu_config, fafs_widen_every=0)
    with pytest.raises(ValueError, match="fully_adaptive run cannot be transferred"):
        train(load_config(raw=raw), quiet=True, transfer_from=tmp_path)
