"""MQAN: the output mixture is a distribution, copying works for out-of-vocabulary words."""
from __future__ import annotations

import random

import torch

from polytask.models.mqan import MQAN

V, START, END, MARK = 12, 1, 2, 3          # ids 4..11: ordinary words; ids >= V: OOV (copy only)


def batch(rng: random.Random, n: int):
    """Context: filler words, a marker, then an OOV word; the answer is that OOV word."""
    contexts, answers = [], []
    for i in range(n):
        words = [rng.randrange(4, V) for _ in range(rng.randint(3, 6))]
        oov = V + i                                                   # a different OOV id per example
        pos = rng.randint(0, len(words))
        contexts.append(words[:pos] + [MARK, oov] + words[pos:])
        answers.append([START, oov, END])
    C = max(map(len, contexts))
    context = torch.zeros(n, C, dtype=torch.long)
    for i, c in enumerate(contexts):
        context[i, : len(c)] = torch.tensor(c)
    question = torch.tensor([[5, 6]] * n)
    return context, context != 0, question, question != 0, torch.tensor(answers), torch.ones(n, 3, dtype=torch.bool)


def test_mixture_is_a_distribution_over_the_extended_vocabulary():
    torch.manual_seed(0)
    model = MQAN(V, embedding_dim=16, hidden_dim=16, transformer_layers=1, num_heads=2).eval()
    c, cm, q, qm, a, am = batch(random.Random(0), 4)
    _, probs = model(c, cm, q, qm, a, am, extended_size=V + 4)
    torch.testing.assert_close(probs.sum(-1), torch.ones(4, 2), atol=1e-5, rtol=1e-5)
    assert (probs[..., V:] > 0).any()                              # copy mass on OOV words
    s2s = MQAN(V, embedding_dim=16, hidden_dim=16, transformer_layers=1, num_heads=2, pointers=False).eval()
    _, probs = s2s(c, cm, q, qm, a, am, extended_size=V + 4)
    assert probs[..., V:].abs().sum() == 0                         # the baseline cannot copy


def test_a_tiny_model_learns_to_copy_unknown_words():
    torch.manual_seed(0)
    rng = random.Random(1)
    model = MQAN(V, embedding_dim=16, hidden_dim=32, transformer_layers=1, num_heads=2, dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        loss, _ = model(*batch(rng, 16), extended_size=V + 16)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    c, cm, q, qm, a, _ = batch(random.Random(99), 32)
    out = model.greedy(c, cm, q, qm, START, END, max_length=3, extended_size=V + 32)
    accuracy = (out[:, 0] == a[:, 1]).float().mean().item()
    assert accuracy >= 0.9, accuracy
    beams = model.beam_search(c[:4], cm[:4], q[:4], qm[:4], START, END, 3, V + 32, beam=3)
    assert [b[0] for b in beams] == a[:4, 1].tolist()
