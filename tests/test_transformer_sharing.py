"""Multi-task Transformer sharing patterns S-P, S-C, L-I, L-E."""
from __future__ import annotations

import pytest
import torch
from conftest import classes

from polytask.config import load_config
from polytask.data.batching import Encoded, collate_text as collate
from polytask.models import TaskSpec, build_model
from polytask.runner import train

VARIANTS = ["transformer_sp", "transformer_sc", "transformer_li", "transformer_le"]


def config(fdu_config, architecture: str, **trainer):
    return {**fdu_config,
            "model": {**fdu_config["model"], "architecture": architecture, "embedding_dim": 16,
                      "encoder": {"type": "transformer", "hidden_dim": 16, "num_layers": 2, "num_heads": 2,
                                  "ff_dim": 32, "dropout": 0.0, "max_positions": 64}},
            "trainer": {**fdu_config["trainer"], **trainer}}


@pytest.mark.parametrize("architecture", VARIANTS)
def test_patterns_build_route_tasks_and_ignore_padding(architecture, fdu_config):
    torch.manual_seed(0)
    model = build_model(load_config(raw=config(fdu_config, architecture)),
                        [classes("a", 2), classes("b", 3)], vocab_size=20).eval()
    batch = collate("b", [Encoded([2, 3, 4], None, 1), Encoded([5, 6], None, 0)])
    out = model(batch)
    assert out.logits.shape == (2, 3) and torch.isfinite(out.loss)
    alone = model(collate("b", [Encoded([5, 6], None, 0)]))
    torch.testing.assert_close(out.logits[1:], alone.logits, atol=1e-5, rtol=1e-5)
    shared = {id(p) for p in model.shared_parameters()}
    owned = [{id(p) for p in model.task_parameters(t)} for t in ("a", "b")]
    assert not (owned[0] & shared) and not (owned[1] & shared) and not (owned[0] & owned[1])
    assert shared | owned[0] | owned[1] == {id(p) for p in model.parameters()}


def test_layerwise_explicit_task_tokens_see_each_other(fdu_config):
    torch.manual_seed(0)
    model = build_model(load_config(raw=config(fdu_config, "transformer_le")),
                        [classes("a", 2), classes("b", 2)], vocab_size=20).eval()
    batch = collate("a", [Encoded([2, 3, 4], None, 1)])
    before = model(batch).logits
    with torch.no_grad():
        model.task_tokens[1].add_(torch.randn(16))   # change task b's token: task a's output moves
    assert not torch.allclose(before, model(batch).logits)


@pytest.mark.parametrize("architecture", ["transformer_sc", "transformer_li"])
def test_transformer_patterns_learn_the_toy_tasks(architecture, fdu_config):
    results = train(load_config(raw=config(fdu_config, architecture, max_steps=200, eval_every=50,
                                           lr=0.002)), quiet=True)
    assert results["dev_avg"] >= 89.99, results


@pytest.mark.parametrize("architecture", VARIANTS)
def test_task_token_attention_is_a_distribution_over_words(architecture, fdu_config):
    torch.manual_seed(0)
    model = build_model(load_config(raw=config(fdu_config, architecture)),
                        [classes("a", 2), classes("b", 2)], vocab_size=20).eval()
    batch = collate("b", [Encoded([2, 3, 4], None, 1), Encoded([5, 6], None, 0)])
    att = model(batch).inspected()["task_attention"]                  # (B, T) over the words
    assert att.shape == (2, 3) and (att >= 0).all()
    assert att[1, 2] == 0                                          # padding gets no attention
    if architecture == "transformer_sp":                           # no task position: words only
        torch.testing.assert_close(att.sum(1), torch.ones(2), atol=1e-5, rtol=1e-5)
    else:                                                          # the rest goes to the prepended tokens
        assert ((att.sum(1) > 0) & (att.sum(1) <= 1 + 1e-5)).all()
    assert "task_attention" not in model.train()(batch).inspect      # training never pays the extra pass


@pytest.mark.parametrize("architecture", VARIANTS)
def test_only_task_tokens_make_the_sentence_vector_task_specific(architecture, fdu_config):
    """The same review read as task a and as task b: L-I and L-E give two different sentence
    vectors (the task token is in the input), S-P and S-C the same one (the tasks part only in
    their heads)."""
    torch.manual_seed(0)
    model = build_model(load_config(raw=config(fdu_config, architecture)),
                        [classes("a", 2), classes("b", 2)], vocab_size=20).eval()
    batch = collate("a", [Encoded([2, 3, 4], None, 1)])
    with torch.no_grad():
        as_a = model.encode("a", batch.text).sentence()
        as_b = model.encode("b", batch.text).sentence()
    if architecture in ("transformer_li", "transformer_le"):
        assert (as_a - as_b).abs().max() > 1e-3
    else:
        torch.testing.assert_close(as_a, as_b)
