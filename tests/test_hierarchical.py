"""Low supervision and the joint many-task model on a toy POS + chunking problem."""
from __future__ import annotations

import pytest
import torch

from polytask.config import ConfigError, load_config
from polytask.kinds import get_kind
from polytask.data.readers import Example
from polytask.models import TaskSpec, build_model
from polytask.runner import train

from test_tagging import tagging_config  # noqa: F401  (fixture)


def hierarchical_config(raw: dict, architecture: str, **model) -> dict:
    raw = dict(raw)
    raw["tasks"] = raw["tasks"][1:]                        # pos and chunk
    raw["model"] = {**raw["model"], "architecture": architecture, "char_embedding_dim": 0,
                    "encoder": {"type": "bilstm", "hidden_dim": 16, "num_layers": 2},
                    "task_layers": {"pos": 1, "chunk": 2}, **model}
    return raw


@pytest.mark.parametrize("architecture,extra", [("low_supervision", {}),
                                                ("joint_many_task", {"successive_regularization": 0.01,
                                                                     "label_embedding_dim": 8})])
def test_hierarchical_models_learn_pos_and_chunks(tagging_config, architecture, extra):  # noqa: F811
    results = train(load_config(raw=hierarchical_config(tagging_config, architecture, **extra)), quiet=True)
    assert results["dev"]["pos"] >= 95.0 and results["dev"]["chunk"] >= 90.0, results


SPECS = [TaskSpec("pos", "tagging", ("CC", "DT", "NN", "VBZ"), head="softmax"),
         TaskSpec("chunk", "tagging", ("B-NP", "B-VP", "I-NP", "O"), scheme="BIO", head="crf")]


def batch_for(task: str):
    ex = [Example(tokens=["the", "dog", "runs"], tags=["DT", "NN", "VBZ"] if task == "pos" else
                  ["B-NP", "I-NP", "B-VP"])]
    labels = SPECS[0].labels if task == "pos" else SPECS[1].labels
    from polytask.data.vocab import Vocab
    vocab = Vocab(["the", "dog", "runs"])
    tagging = get_kind("tagging")
    return tagging.collate(task, tagging.encode(ex, vocab, list(labels), 10))


def tiny(architecture: str, tagging_config, **extra):  # noqa: F811
    cfg = load_config(raw=hierarchical_config(tagging_config, architecture, **extra))
    torch.manual_seed(0)
    return build_model(cfg, SPECS, vocab_size=5)


def test_low_supervision_lower_task_runs_only_its_layers(tagging_config):  # noqa: F811
    model = tiny("low_supervision", tagging_config)
    model(batch_for("pos")).loss.backward()
    assert all(p.grad is None for p in model.stack[1].parameters())
    assert all(p.grad is not None for p in model.stack[0].parameters())


def test_joint_many_task_feeds_lower_labels_and_regularizes(tagging_config):  # noqa: F811
    model = tiny("joint_many_task", tagging_config, successive_regularization=1.0, label_embedding_dim=8)
    model.train()
    model(batch_for("pos"))                               # pos trains: θ' := current parameters
    out = model(batch_for("chunk"))
    assert out.parts["successive_reg"].item() == pytest.approx(0.0, abs=1e-12)
    with torch.no_grad():
        model.stack[0].forward_layers[0].weight_ih_l0.add_(0.1)   # a change to a layer pos uses
    out = model(batch_for("chunk"))
    assert out.parts["successive_reg"].item() > 0.1
    out.loss.backward()
    assert model.label_embeddings["pos"].weight.grad is not None   # upper task reaches pos labels
    assert any(name.startswith("anchor_1_") for name in model.state_dict())  # θ' is checkpointed


def test_hierarchical_layer_errors(tagging_config):  # noqa: F811
    with pytest.raises(ValueError, match="task_layers.pos"):
        tiny("low_supervision", tagging_config, task_layers={"pos": 3, "chunk": 2})
    raw = hierarchical_config(tagging_config, "joint_many_task", task_layers={"a": 1, "pos": 2})
    raw["tasks"] = tagging_config["tasks"][:2]            # a (classification) and pos: refused at load
    with pytest.raises(ValueError, match="only tagging tasks"):
        load_config(raw=raw)


def test_successive_regularization_only_on_labelled_training_batches(tagging_config):  # noqa: F811
    model = tiny("joint_many_task", tagging_config, successive_regularization=1.0, label_embedding_dim=8)
    model.train()
    model(batch_for("pos"))                               # θ' := the parameters pos uses now
    anchor = model.anchor_1_0.clone()
    with torch.no_grad():
        model.embedding.embedding.weight.add_(0.1)        # θ drifts from θ'
    model.eval()
    assert "successive_reg" not in model(batch_for("chunk")).parts
    model(batch_for("pos"))                               # an eval batch of pos: θ' stays
    torch.testing.assert_close(model.anchor_1_0, anchor)
    model.train()
    unlabelled = batch_for("pos")
    unlabelled.labels = None
    model(unlabelled)                                     # no labels: no loss, θ' stays
    torch.testing.assert_close(model.anchor_1_0, anchor)
    assert model(batch_for("chunk")).parts["successive_reg"].item() > 0.1


@pytest.mark.parametrize("architecture", ["low_supervision", "joint_many_task"])
def test_hierarchical_models_refuse_pair_tasks_at_load(pair_config, architecture):
    raw = {**pair_config, "model": {**pair_config["model"], "architecture": architecture}}
    with pytest.raises(ConfigError, match="pair_classification"):
        load_config(raw=raw)
