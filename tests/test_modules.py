"""Layers and architectures on tiny synthetic batches: masking invariance, exactness against
torch.nn.LSTM, pooling, gradient reversal, and which parameters each architecture trains."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from polytask.config import load_config
from polytask.data.batching import Encoded, collate_text as collate
from polytask.kinds import get_kind
from polytask.models import TaskSpec, build_model
from polytask.models.shared_private import difference_loss
from polytask.modules import CNNEncoder, GradientReversal, LSTMEncoder, Pooling, TransformerEncoder
from polytask.modules.encoders import reverse_padded

from conftest import classes, make_raw_config

D, H = 8, 12


def padded_batch(lengths: list[int], extra: int = 0, seed: int = 0, garbage: bool = True):
    """x (B, T, D) and mask (B, T), T = max(lengths) + extra; padding holds random garbage
    (or zeros) that an encoder must never let into a real position."""
    gen = torch.Generator().manual_seed(seed)
    T = max(lengths) + extra
    x = torch.randn(len(lengths), T, D, generator=gen)
    mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
    if not garbage:
        x = x * mask[..., None]
    return x, mask


def with_more_padding(x: torch.Tensor, mask: torch.Tensor, extra: int, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    pad = 5.0 * torch.randn(x.shape[0], extra, x.shape[2], generator=gen)
    return torch.cat([x, pad], 1), torch.cat([mask, torch.zeros(x.shape[0], extra, dtype=torch.bool)], 1)


def assert_real_positions_equal(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor, atol=1e-6):
    T = mask.shape[1]
    torch.testing.assert_close(a[:, :T][mask], b[:, :T][mask], atol=atol, rtol=1e-5)


# ----------------------------------------------------------------------------- reverse_padded


def test_reverse_padded_reverses_within_each_length():
    lengths = torch.tensor([4, 2, 1])
    x = torch.arange(3 * 4, dtype=torch.float).view(3, 4)[..., None]   # (B, T, 1)
    r = reverse_padded(x, lengths)[..., 0]
    assert r[0].tolist() == [3, 2, 1, 0]
    assert r[1].tolist() == [5, 4, 6, 7]      # padding positions 2, 3 map to themselves
    assert r[2].tolist() == [8, 9, 10, 11]


def test_reverse_padded_twice_is_identity_on_real_positions():
    x, mask = padded_batch([6, 3, 1, 4], extra=2)
    lengths = mask.long().sum(1)
    twice = reverse_padded(reverse_padded(x, lengths), lengths)
    torch.testing.assert_close(twice[mask], x[mask], rtol=0, atol=0)


# ----------------------------------------------------------------------------- LSTM


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_lstm_extra_padding_does_not_change_real_positions(bidirectional, num_layers):
    torch.manual_seed(0)
    enc = LSTMEncoder(D, H, num_layers=num_layers, bidirectional=bidirectional).eval()
    x, mask = padded_batch([5, 3, 1])
    out = enc(x, mask)
    assert out.shape == (3, 5, enc.output_dim)
    assert enc.output_dim == H * (2 if bidirectional else 1)
    x2, mask2 = with_more_padding(x, mask, extra=4)
    out2 = enc(x2, mask2)
    assert_real_positions_equal(out, out2, mask)
    # the padding already in the batch does not matter either (garbage against zeros)
    out_zero_pad = enc(x * mask[..., None], mask)
    assert_real_positions_equal(out, out_zero_pad, mask)
    # and padding positions are zeroed
    assert (out2[~mask2] == 0).all()


def reference_lstm(enc: LSTMEncoder, num_layers: int, bidirectional: bool) -> nn.LSTM:
    """A torch.nn.LSTM holding the encoder's per-direction weights."""
    ref = nn.LSTM(D, H, num_layers=num_layers, bidirectional=bidirectional, batch_first=True)
    with torch.no_grad():
        for layer in range(num_layers):
            sources = [("", enc.forward_layers[layer])]
            if bidirectional:
                sources.append(("_reverse", enc.backward_layers[layer]))
            for suffix, lstm in sources:
                for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(ref, f"{kind}_l{layer}{suffix}").copy_(getattr(lstm, f"{kind}_l0"))
    return ref.eval()


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_lstm_matches_torch_lstm_on_each_sequence_alone(bidirectional, num_layers):
    torch.manual_seed(1)
    enc = LSTMEncoder(D, H, num_layers=num_layers, bidirectional=bidirectional).eval()
    ref = reference_lstm(enc, num_layers, bidirectional)
    lengths = [6, 2, 4, 1]
    x, mask = padded_batch(lengths, extra=1)
    with torch.no_grad():
        out = enc(x, mask)
        for i, n in enumerate(lengths):
            expected, _ = ref(x[i:i + 1, :n])                     # (1, n, H * directions)
            torch.testing.assert_close(out[i, :n], expected[0], atol=1e-5, rtol=1e-4)


# ----------------------------------------------------------------------------- pooling


def test_max_pooling_ignores_padding():
    states = torch.tensor([[[1.0, -2.0], [3.0, -1.0], [100.0, 100.0]],
                           [[-5.0, -6.0], [50.0, 50.0], [70.0, 70.0]]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    pooled = Pooling("max")(states, mask)
    assert pooled.tolist() == [[3.0, -1.0], [-5.0, -6.0]]


def test_mean_pooling_ignores_padding():
    states = torch.tensor([[[1.0], [3.0], [100.0]], [[-4.0], [50.0], [70.0]]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    assert Pooling("mean")(states, mask).tolist() == [[2.0], [-4.0]]


def test_last_pooling_takes_the_last_real_state():
    states = torch.arange(2 * 3 * 4, dtype=torch.float).view(2, 3, 4)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    assert Pooling("last")(states, mask).tolist() == [states[0, 1].tolist(), states[1, 2].tolist()]
    # bidirectional: forward half at the last real token, backward half at step 0
    bi = Pooling("last", bidirectional=True)(states, mask)
    assert bi[0].tolist() == states[0, 1, :2].tolist() + states[0, 0, 2:].tolist()
    assert bi[1].tolist() == states[1, 2, :2].tolist() + states[1, 0, 2:].tolist()


@pytest.mark.parametrize("kind", ["max", "mean", "last"])
def test_pooled_bilstm_sentence_vectors_ignore_extra_padding(kind):
    torch.manual_seed(2)
    enc = LSTMEncoder(D, H).eval()
    pool = Pooling(kind, bidirectional=True)
    x, mask = padded_batch([4, 2, 3])
    x2, mask2 = with_more_padding(x, mask, extra=3)
    with torch.no_grad():
        torch.testing.assert_close(pool(enc(x, mask), mask), pool(enc(x2, mask2), mask2))


def test_unknown_pooling_is_rejected():
    with pytest.raises(ValueError, match="unknown pooling"):
        Pooling("median")


# ----------------------------------------------------------------------------- CNN / Transformer


@pytest.mark.parametrize("kernel_sizes", [[3], [2, 3, 4], [1, 5]])
def test_cnn_extra_padding_does_not_change_real_positions(kernel_sizes):
    torch.manual_seed(3)
    enc = CNNEncoder(D, H, kernel_sizes=kernel_sizes).eval()
    x, mask = padded_batch([6, 3, 1])
    x2, mask2 = with_more_padding(x, mask, extra=5)
    with torch.no_grad():
        out, out2 = enc(x, mask), enc(x2, mask2)
    assert out.shape == (3, 6, H * len(kernel_sizes)) and out2.shape[1] == 11
    assert_real_positions_equal(out, out2, mask, atol=1e-5)


def test_transformer_extra_padding_does_not_change_real_positions():
    torch.manual_seed(4)
    enc = TransformerEncoder(D, 16, num_layers=2, num_heads=2, ff_dim=32, dropout=0.1,
                             max_positions=32).eval()
    x, mask = padded_batch([6, 3, 1])
    x2, mask2 = with_more_padding(x, mask, extra=5)
    with torch.no_grad():
        out, out2 = enc(x, mask), enc(x2, mask2)
    assert out.shape == (3, 6, 16)
    assert_real_positions_equal(out, out2, mask, atol=1e-5)


def test_transformer_rejects_sequences_beyond_max_positions():
    enc = TransformerEncoder(D, 16, num_layers=1, num_heads=2, ff_dim=32, max_positions=4)
    x, mask = padded_batch([5])
    with pytest.raises(ValueError, match="max_positions"):
        enc(x, mask)


# ----------------------------------------------------------------------------- gradient reversal


@pytest.mark.parametrize("scale", [1.0, 0.25])
def test_gradient_reversal_flips_and_scales_the_gradient(scale):
    x = torch.randn(4, 3, requires_grad=True)
    w = torch.randn(4, 3)
    y = GradientReversal(scale)(x)
    torch.testing.assert_close(y, x)                  # identity forward
    (y * w).sum().backward()
    torch.testing.assert_close(x.grad, -scale * w)


# ----------------------------------------------------------------------------- architectures

ARCHITECTURES = ["single_task", "hard_sharing", "shared_private", "adversarial_shared_private"]
ENCODERS = {
    "bilstm": {"type": "bilstm", "hidden_dim": 16},
    "cnn": {"type": "cnn", "hidden_dim": 8, "kernel_sizes": [2, 3]},
    "transformer": {"type": "transformer", "hidden_dim": 16, "num_heads": 2, "ff_dim": 32,
                    "num_layers": 1, "dropout": 0.0},
}
VOCAB = 30


def tiny_model(tmp_path, architecture: str, encoder: str = "bilstm", pair_b: bool = False):
    raw = make_raw_config(tmp_path, tmp_path / "run", architecture)
    raw["model"]["encoder"] = dict(ENCODERS[encoder])
    cfg = load_config(raw=raw)
    torch.manual_seed(0)
    specs = [classes("a", 2), classes("b", 3, pair=pair_b)]
    return build_model(cfg, specs, VOCAB), cfg


def task_batch(task: str, pair: bool = False, num_labels: int = 2):
    gen = torch.Generator().manual_seed(7)
    items = []
    for i, n in enumerate([5, 3, 4, 2]):
        ids = torch.randint(2, VOCAB, (n,), generator=gen).tolist()
        ids_b = torch.randint(2, VOCAB, (n + 1,), generator=gen).tolist() if pair else None
        items.append(Encoded(ids, ids_b, i % num_labels))
    batch = get_kind("pair_classification").collate if pair else collate
    return batch(task, items, list(range(len(items))))


def ids(params) -> set[int]:
    return {id(p) for p in params}


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_shared_and_task_parameters_partition_the_model(tmp_path, architecture):
    model, _ = tiny_model(tmp_path, architecture)
    shared, a, b = ids(model.shared_parameters()), ids(model.task_parameters("a")), ids(model.task_parameters("b"))
    assert not shared & a and not shared & b and not a & b
    assert a and b
    assert shared | a | b == ids(model.parameters())
    if architecture == "single_task":
        assert not shared
    else:
        assert shared


@pytest.mark.parametrize("encoder", list(ENCODERS))
@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("task", ["a", "b"])
def test_one_backward_reaches_every_shared_and_task_parameter(tmp_path, architecture, encoder, task):
    pair = task == "b"    # task b is a sentence-pair task: both texts go through the encoders
    model, _ = tiny_model(tmp_path, architecture, encoder, pair_b=True)
    model.train()
    out = model(task_batch(task, pair, num_labels=2 if task == "a" else 3))
    assert out.logits.shape == (4, 2 if task == "a" else 3)
    out.loss.backward()
    named = {id(p): n for n, p in model.named_parameters()}
    for p in list(model.shared_parameters()) + list(model.task_parameters(task)):
        assert p.grad is not None, f"{named[id(p)]} got no gradient"
        assert p.grad.abs().sum() > 0, f"{named[id(p)]} got a zero gradient"
    other = "b" if task == "a" else "a"
    for p in model.task_parameters(other):
        assert p.grad is None or not p.grad.any(), f"{named[id(p)]} of task {other} was trained"


def test_asp_loss_parts_and_their_weights(tmp_path):
    model, cfg = tiny_model(tmp_path, "adversarial_shared_private")
    model.eval()  # no dropout: two forward passes agree
    batch = task_batch("a")
    out = model(batch)
    assert set(out.parts) == {"task", "adversarial", "diff"}
    assert all(torch.isfinite(v) and v.dim() == 0 for v in out.parts.values())
    assert out.parts["adversarial"] > 0 and out.parts["diff"] >= 0
    expected = (out.parts["task"] + cfg.model.adversarial_weight * out.parts["adversarial"]
                + cfg.model.orthogonality_weight * out.parts["diff"])
    torch.testing.assert_close(out.loss.detach(), expected)
    torch.testing.assert_close(out.parts["task"], F.cross_entropy(out.logits, batch.labels))


def test_asp_reverses_the_adversarial_gradient_into_the_shared_encoder(tmp_path):
    """d loss / d shared = d task + λ · (−d adv) + γ · d diff, while the discriminator itself
    descends on +λ · adv (Liu et al. 2017, Eq. 13-14, 19)."""
    model, cfg = tiny_model(tmp_path, "adversarial_shared_private")
    model.eval()
    batch = task_batch("a")
    shared = list(model.sp.shared_parameters())
    disc = list(model.discriminator.parameters())

    out = model(batch)
    got = torch.autograd.grad(out.loss, shared + disc, allow_unused=True)

    u = model.sp.encode("a", batch.text).sentence()           # [s; h], the SP-MTL features
    s, h = u[:, :model.sp.shared.output_dim], u[:, model.sp.shared.output_dim:]
    logits = model.head("a")(u)
    target = torch.zeros(s.shape[0], dtype=torch.long)       # task "a" has index 0
    task_loss = F.cross_entropy(logits, batch.labels)
    adv = F.cross_entropy(model.discriminator(s), target)     # no reversal here
    diff = difference_loss(s, h)
    lam, gamma = cfg.model.adversarial_weight, cfg.model.orthogonality_weight
    g_task = torch.autograd.grad(task_loss, shared, retain_graph=True, allow_unused=True)
    g_adv = torch.autograd.grad(adv, shared + disc, retain_graph=True, allow_unused=True)
    g_diff = torch.autograd.grad(diff, shared, allow_unused=True)
    zero = lambda g, p: torch.zeros_like(p) if g is None else g
    for i, p in enumerate(shared):
        expected = zero(g_task[i], p) - lam * zero(g_adv[i], p) + gamma * zero(g_diff[i], p)
        torch.testing.assert_close(zero(got[i], p), expected, atol=1e-6, rtol=1e-4)
    for j, p in enumerate(disc):
        torch.testing.assert_close(got[len(shared) + j], lam * g_adv[len(shared) + j], atol=1e-6, rtol=1e-4)


def test_shared_private_private_encoders_share_only_the_embedding(tmp_path):
    model, _ = tiny_model(tmp_path, "shared_private")
    assert model.private["a"].embedding is model.shared.embedding
    assert model.private["a"].encoder is not model.shared.encoder
    assert model.private["a"].encoder is not model.private["b"].encoder


def test_single_task_models_share_nothing(tmp_path):
    model, _ = tiny_model(tmp_path, "single_task")
    assert not ids(model.models["a"].parameters()) & ids(model.models["b"].parameters())


def test_difference_loss_is_zero_for_orthogonal_features_and_bounded():
    s = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])   # feature 0: + - + -
    h = torch.tensor([[0.0, 1.0], [0.0, 1.0], [0.0, -1.0], [0.0, -1.0]])   # feature 1: + + - -
    assert difference_loss(s, h).item() == pytest.approx(0.0, abs=1e-12)
    torch.manual_seed(0)
    same = torch.randn(32, 16)
    assert 0.0 < difference_loss(same, same).item() <= 32.0 ** 2 / 16 ** 2 + 1e-6


def test_word_dropout_replaces_words_by_unk_in_training_only():
    from polytask.modules.embeddings import WordEmbedding
    torch.manual_seed(0)
    emb = WordEmbedding(50, 8, dropout=0.0, word_dropout=0.5)
    tokens = torch.randint(2, 50, (64, 40))
    tokens[:, -5:] = 0                                                     # padding
    unk = emb.embedding.weight[1]
    emb.train()
    out = emb(tokens)
    is_unk = (out == unk).all(-1)
    assert not is_unk[:, -5:].any()                                        # padding stays padding
    assert (out[:, -5:] == 0).all()
    rate = is_unk[:, :-5].float().mean().item()
    assert 0.45 < rate < 0.55
    emb.eval()
    assert torch.equal(emb(tokens), emb.embedding(tokens))


def test_word_dropout_out_of_range_is_a_config_error(tmp_path):
    from polytask.config import ConfigError
    path = tmp_path / "c.yaml"
    import yaml
    raw = make_raw_config(tmp_path, tmp_path / "run")
    raw.setdefault("model", {})["word_dropout"] = 1.5
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="model.word_dropout"):
        load_config(path)


def test_character_ngrams_of_a_word():
    from polytask.modules.characters import CharNgramEmbedding
    emb = CharNgramEmbedding(4, buckets=10_007)
    chars = torch.tensor([[[3, 4, 5, 0], [3, 4, 5, 6], [0, 0, 0, 0]]])    # "abc", "abcd", padding
    ids, counts = emb.ngram_ids(chars)
    # ^abc$: 5 unigrams, 4 bigrams, 3 trigrams, 2 four-grams; ^abcd$: 6 + 5 + 4 + 3; padding: none
    assert counts.tolist() == [14, 18, 0]
    abc, abcd = set(ids[:14].tolist()), set(ids[14:].tolist())
    assert len(abc & abcd) == 14 - 3          # all but "c$", "bc$", "abc$"
    out = emb(chars)
    assert out.shape == (1, 3, 4) and out[0, 2].abs().sum() == 0
    torch.testing.assert_close(out[0, 0], emb.embedding.weight[ids[:14]].mean(0))


def test_character_ngram_hash_spreads_over_the_buckets():
    """Every 3-letter word over 26 letters: its n-grams should land on many distinct rows, and two
    words that share no letters should share no n-gram ids beyond the markers."""
    from polytask.modules.characters import CharNgramEmbedding
    emb = CharNgramEmbedding(4)
    letters = torch.arange(3, 29)
    words = torch.cartesian_prod(letters, letters, letters)[None]          # (1, 17576, 3)
    ids, _ = emb.ngram_ids(words)
    # distinct n-grams: 26 letters + ^ + $; ^x, xy, y$; ^xy, xyz, yz$; ^xyz, xyz$
    distinct = 28 + (26 + 676 + 26) + (676 + 26 ** 3 + 676) + 2 * 26 ** 3
    random_hash = emb.buckets * (1 - math.exp(-distinct / emb.buckets))    # rows a random hash would fill
    assert ids.unique().numel() > 0.95 * random_hash
    a, _ = emb.ngram_ids(torch.tensor([[[3, 4, 5]]]))
    b, _ = emb.ngram_ids(torch.tensor([[[6, 7, 8]]]))
    assert len(set(a.tolist()) & set(b.tolist())) == 2                    # "^" and "$" only
