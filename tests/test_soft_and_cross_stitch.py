"""Soft sharing regularizers and cross-stitch networks."""
from __future__ import annotations

import itertools

import pytest
import torch
from conftest import classes

from polytask.config import load_config
from polytask.data.batching import Encoded, collate_text as collate
from polytask.models import TaskSpec, build_model
from polytask.models.priors import l2_distance_penalty, trace_norm_penalty
from polytask.runner import train


def test_l2_penalty_equals_the_pairwise_sum():
    torch.manual_seed(0)
    groups = [[torch.randn(3, 4) for _ in range(5)], [torch.randn(7) for _ in range(5)]]
    pairwise = sum((a - b).pow(2).sum() for g in groups for a, b in itertools.combinations(g, 2))
    torch.testing.assert_close(l2_distance_penalty(groups), pairwise)


def test_trace_norm_on_hand_computed_cases():
    eye = [[torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])]]              # stacked: I_2 -> ||I||_* = 2
    assert trace_norm_penalty(eye).item() == pytest.approx(2.0)
    same = [[torch.tensor([3.0, 4.0]), torch.tensor([3.0, 4.0])]]            # rank 1: √2 · 5
    assert trace_norm_penalty(same).item() == pytest.approx(5 * 2 ** 0.5, rel=1e-5)


def build(fdu_config, architecture: str, **model):
    raw = {**fdu_config, "model": {**fdu_config["model"], "architecture": architecture, **model}}
    torch.manual_seed(0)
    return build_model(load_config(raw=raw), [classes("a", 2), classes("b", 2), classes("c", 2)],
                       vocab_size=20)


@pytest.mark.parametrize("penalty", ["l2", "trace"])
def test_soft_sharing_adds_the_penalty_and_its_gradient(fdu_config, penalty):
    model = build(fdu_config, "soft_sharing", soft_sharing=penalty, soft_sharing_weight=0.5)
    with torch.no_grad():                       # task c has drifted away from the others
        for p in model.encoders["c"].encoder.parameters():
            p.add_(0.1 * torch.randn_like(p))
    out = model(collate("a", [Encoded([2, 3, 4], None, 1)]))
    assert out.parts["soft_sharing"] > 0
    out.loss.backward()
    # the penalty reaches the other tasks' encoders too: that is how they are tied
    assert all(p.grad is not None for p in model.encoders["c"].encoder.parameters())


def test_soft_sharing_starts_every_task_from_the_same_encoder(fdu_config):
    model = build(fdu_config, "soft_sharing", soft_sharing="l2")
    out = model(collate("a", [Encoded([2, 3, 4], None, 1)]))
    assert out.parts["soft_sharing"].item() == pytest.approx(0.0, abs=1e-3)   # K Σ|θ|² − |Σθ|², rounded
    a, c = model.encoders["a"].encoder, model.encoders["c"].encoder
    assert all(torch.equal(x, y) and x.data_ptr() != y.data_ptr() for x, y in zip(a.parameters(), c.parameters()))


def test_cross_stitch_identity_alpha_means_independent_columns(fdu_config):
    model = build(fdu_config, "cross_stitch", cross_stitch_init=1.0).eval()
    batch = collate("b", [Encoded([2, 3, 4], None, 1), Encoded([5, 6], None, 0)])
    before = model(batch).logits
    with torch.no_grad():                       # with α = I, task b never reads other columns
        for p in model.columns[0].parameters():
            p.add_(torch.randn_like(p))
    torch.testing.assert_close(model(batch).logits, before)
    with torch.no_grad():
        model.alpha[0, 1, 0] = 0.5              # now column a flows into task b
    assert not torch.allclose(model(batch).logits, before)


def test_cross_stitch_alpha_learns_and_is_inspectable(fdu_config):
    model = build(fdu_config, "cross_stitch")
    out = model(collate("a", [Encoded([2, 3, 4], None, 1)]))
    out.loss.backward()
    assert model.alpha.grad is not None and model.alpha.grad.abs().sum() > 0
    assert out.inspected()["cross_stitch_alpha"].shape == (1, 3, 3)


@pytest.mark.parametrize("architecture", ["soft_sharing", "cross_stitch"])
def test_toy_tasks_are_learned(fdu_config, architecture):
    raw = {**fdu_config, "model": {**fdu_config["model"], "architecture": architecture}}
    results = train(load_config(raw=raw), quiet=True)
    assert results["dev_avg"] >= 89.99, results


def test_sluice_mixes_subspaces_weights_layers_and_penalises_overlap(fdu_config):
    raw = {**fdu_config, "model": {**fdu_config["model"], "architecture": "sluice", "sluice_orthogonality": 0.5,
                                   "encoder": {"type": "bilstm", "hidden_dim": 8, "num_layers": 2}}}
    torch.manual_seed(0)
    model = build_model(load_config(raw=raw), [classes("a", 2), classes("b", 2), classes("c", 2)],
                        vocab_size=20)
    out = model(collate("b", [Encoded([2, 3, 4, 5], None, 1), Encoded([6, 7], None, 0)]))
    assert out.inspected()["sluice_alpha"].shape == (2, 6, 6)
    assert out.inspected()["sluice_beta"].shape == (3, 2)
    assert torch.allclose(out.inspected()["sluice_beta"].sum(1), torch.ones(3))
    assert out.parts["subspace_orthogonality"] > 0
    out.loss.backward()
    for p in (model.alpha, model.beta):
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_sluice_learns_the_toy_tasks(fdu_config):
    raw = {**fdu_config, "model": {**fdu_config["model"], "architecture": "sluice"}}
    assert train(load_config(raw=raw), quiet=True)["dev_avg"] >= 89.99


def test_learned_alpha_is_written_to_the_run_directory(fdu_config):
    import json
    from pathlib import Path
    raw = {**fdu_config, "model": {**fdu_config["model"], "architecture": "cross_stitch"},
           "trainer": {**fdu_config["trainer"], "max_steps": 20, "eval_every": 20}}
    train(load_config(raw=raw), quiet=True)
    structure = json.loads((Path(raw["output_dir"]) / "structure.json").read_text())
    assert len(structure["cross_stitch_alpha"]) == 1 and len(structure["cross_stitch_alpha"][0]) == 2


def test_subspace_overlap_is_a_scale_free_correlation():
    from polytask.models.sluice import subspace_overlap
    torch.manual_seed(0)
    a = torch.randn(5000, 4)
    assert subspace_overlap(a, a).item() == pytest.approx(float((torch.corrcoef(a.T) ** 2).mean()), abs=1e-4)
    assert subspace_overlap(a, 3 * a[:, :1] + 7).item() == pytest.approx(float((torch.corrcoef(a.T)[:, 0] ** 2).mean()),
                                                                       abs=1e-4)
    assert subspace_overlap(a, torch.randn(5000, 4)).item() < 0.01          # independent: near 0
    # the same states repeated 10× (a batch ten times longer) give the same value
    assert subspace_overlap(a.repeat(10, 1), a.repeat(10, 1)).item() == pytest.approx(subspace_overlap(a, a).item(),
                                                                                   rel=1e-4)


@pytest.mark.parametrize("architecture,knobs,part", [
    ("soft_sharing", {"soft_sharing_weight": 0.5}, "soft_sharing"),
    ("sluice", {"sluice_orthogonality": 0.5}, "subspace_orthogonality"),
])
def test_penalty_is_weighted_into_the_loss_only_with_labels(fdu_config, architecture, knobs, part):
    model = build(fdu_config, architecture, **knobs).eval()
    with torch.no_grad():                       # soft sharing: task c drifts, so its penalty is not 0
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    items = [Encoded([2, 3, 4], None, 1), Encoded([5, 6], None, 0)]
    out = model(collate("a", items))
    assert set(out.parts) == {"task", part} and out.parts[part] > 0
    torch.testing.assert_close(out.loss.detach(), out.parts["task"] + 0.5 * out.parts[part])
    unlabelled = collate("a", items)
    unlabelled.labels = None
    out = model(unlabelled)
    assert out.loss is None and out.parts == {}


@pytest.mark.parametrize("architecture,knobs", [
    ("soft_sharing", {"soft_sharing_weight": 0.0}),
    ("sluice", {"sluice_orthogonality": 0.0}),
])
def test_zero_weight_adds_no_penalty(fdu_config, architecture, knobs):
    model = build(fdu_config, architecture, **knobs)
    out = model(collate("a", [Encoded([2, 3, 4], None, 1)]))
    assert set(out.parts) == {"task"} and torch.equal(out.loss.detach(), out.parts["task"])


def test_soft_sharing_of_one_task_has_no_penalty(fdu_config):
    raw = {**fdu_config, "model": {**fdu_config["model"], "architecture": "soft_sharing",
                                   "soft_sharing_weight": 0.5}}
    model = build_model(load_config(raw=raw), [classes("a", 2)], vocab_size=20)
    assert set(model(collate("a", [Encoded([2, 3, 4], None, 1)])).parts) == {"task"}


def test_sluice_and_cross_stitch_show_alpha_of_the_first_text_of_a_pair(fdu_config):
    """A pair task encodes both texts; the loss terms and inspection values come from the first."""
    from polytask.kinds import get_kind
    specs = [classes("a", 2), classes("p", 2, pair=True)]
    pair = get_kind("pair_classification").collate("p", [Encoded([2, 3, 4], [5, 6], 1), Encoded([7], [8, 9, 2], 0)])
    for architecture, keys in (("cross_stitch", {"cross_stitch_alpha"}), ("sluice", {"sluice_alpha", "sluice_beta"})):
        raw = {**fdu_config, "model": {**fdu_config["model"], "architecture": architecture}}
        torch.manual_seed(0)
        model = build_model(load_config(raw=raw), specs, vocab_size=20).eval()
        out = model(pair)
        assert out.logits.shape == (2, 2) and set(out.inspect) == keys
        alpha = out.inspected()[f"{architecture}_alpha"]
        torch.testing.assert_close(alpha, model.alpha.detach())
    torch.testing.assert_close(out.inspected()["sluice_beta"], torch.full((2, 1), 1.0))   # one layer: β = 1
    first = model.states("p", pair.tokens, pair.mask)[1]()
    torch.testing.assert_close(out.parts["subspace_orthogonality"], first)


def test_sluice_subspaces_are_the_two_directions_so_any_width_works(fdu_config):
    raw = {**fdu_config, "model": {**fdu_config["model"], "architecture": "sluice",
                                   "encoder": {"type": "bilstm", "hidden_dim": 7, "num_layers": 2}}}
    model = build_model(load_config(raw=raw), [classes("a", 2), classes("b", 3)], vocab_size=20)
    out = model(collate("b", [Encoded([2, 3, 4], None, 2), Encoded([5], None, 0)]))
    assert out.logits.shape == (2, 3) and out.inspected()["sluice_alpha"].shape == (2, 4, 4)
