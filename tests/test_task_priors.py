"""Priors on the task-specific layers: block sparsity, task clustering, tensor-normal."""
from __future__ import annotations

import pytest
import torch
from conftest import classes

from polytask.config import ConfigError, load_config
from polytask.data.batching import Encoded, collate_text as collate
from polytask.models import build_model, priors
from polytask.runner import train

W = torch.tensor([[[3.0, 0.0, 1.0]], [[4.0, 0.0, -2.0]]])     # K=2 tasks, C=1, D=3


def test_block_sparse_norms_by_hand():
    # feature columns across tasks: (3, 4) -> 5, (0, 0) -> 0, (1, -2) -> √5
    assert priors.l1_l2_penalty(W).item() == pytest.approx(5 + 5 ** 0.5)
    assert priors.l1_linf_penalty(W).item() == pytest.approx(4 + 0 + 2)


def test_task_clustering_by_hand():
    mean = torch.tensor([3.5, 0.0, -0.5])
    expected = mean.pow(2).sum() + (W[:, 0] - mean).pow(2).sum()
    assert priors.task_clustering_penalty(W).item() == pytest.approx(expected.item())


def test_tensor_normal_with_identity_covariances_is_the_squared_norm():
    eye = [torch.eye(2), torch.eye(1), torch.eye(3)]
    assert priors.tensor_normal_penalty(W, *eye).item() == pytest.approx(W.pow(2).sum().item())
    cov = priors.update_covariance(W, 0, eye[1:])
    assert torch.allclose(cov, cov.t()) and torch.trace(cov).item() == pytest.approx(2.0)
    assert cov[0, 1] < 0 or cov[0, 1] > 0                    # the two tasks' layers are related


@pytest.mark.parametrize("prior", ["l1_l2", "l1_linf", "task_clustering", "tensor_normal"])
def test_each_prior_trains_the_toy_tasks(fdu_config, prior):
    raw = {**fdu_config, "model": {**fdu_config["model"], "architecture": "regularized_heads",
                                   "head_regularizer": prior, "head_regularizer_weight": 1e-3}}
    results = train(load_config(raw=raw), quiet=True)
    assert results["dev_avg"] >= 89.99, results


def test_mismatched_class_counts_are_refused(fdu_config):
    raw = {**fdu_config, "model": {**fdu_config["model"], "architecture": "regularized_heads"}}
    with pytest.raises(ValueError, match="same number of classes"):
        build_model(load_config(raw=raw), [classes("a", 2), classes("b", 3)], vocab_size=10)
    model = build_model(load_config(raw={**raw, "model": {**raw["model"], "head_regularizer": "tensor_normal"}}),
                        [classes("a", 2), classes("b", 2)], vocab_size=10)
    out = model(collate("a", [Encoded([2, 3], None, 1)]))
    assert out.inspected()["task_covariance"].shape == (2, 2) and out.parts["head_prior"] > 0


def test_factorised_heads_shapes_and_rank(fdu_config):
    from polytask.models.tensor_factorisation import TensorTrainHeads, TuckerHeads
    W = TuckerHeads(5, 3, 16, [2, 3, 4])()
    assert W.shape == (5, 3, 16)
    assert torch.linalg.matrix_rank(W.reshape(5, -1)) <= 2          # the task-mode rank is r_K
    W = TensorTrainHeads(5, 3, 16, [2, 4])()
    assert W.shape == (5, 3, 16) and torch.linalg.matrix_rank(W.reshape(5, -1)) <= 2
    with pytest.raises(ValueError, match="three ranks"):
        TuckerHeads(5, 3, 16, [2, 3])


@pytest.mark.parametrize("architecture", ["tucker_heads", "tensor_train_heads"])
def test_factorised_heads_train_the_toy_tasks(fdu_config, architecture):
    raw = {**fdu_config, "model": {**fdu_config["model"], "architecture": architecture}}
    assert train(load_config(raw=raw), quiet=True)["dev_avg"] >= 89.99


@pytest.mark.parametrize("architecture,ranks", [("tucker_heads", [4, 2]), ("tensor_train_heads", [4, 2, 8]),
                                                ("tucker_heads", [4, 0, 8])])
def test_factorisation_ranks_are_checked_when_the_config_loads(fdu_config, architecture, ranks):
    raw = {**fdu_config, "model": {**fdu_config["model"], "architecture": architecture,
                                   "factorisation_ranks": ranks}}
    with pytest.raises(ConfigError, match="model.factorisation_ranks"):
        load_config(raw=raw)


@pytest.mark.parametrize("architecture", ["regularized_heads", "tucker_heads", "tensor_train_heads"])
def test_stacked_heads_refuse_pair_tasks_at_load(pair_config, architecture):
    raw = {**pair_config, "model": {**pair_config["model"], "architecture": architecture}}
    with pytest.raises(ConfigError, match="pair_classification"):
        load_config(raw=raw)
