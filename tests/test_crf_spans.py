"""The CRF against brute-force enumeration, and span F1 against seqeval."""
from __future__ import annotations

import random

import pytest
import torch

from polytask.data.spans import chunks, span_scores, token_accuracy
from polytask.modules.crf import CRF, allowed_transitions, brute_force

LABELS = ["O", "B-NP", "I-NP", "B-VP", "I-VP"]


@pytest.mark.parametrize("constrained", [False, True])
def test_crf_matches_brute_force(constrained: bool):
    torch.manual_seed(0)
    crf = CRF(len(LABELS), allowed_transitions(LABELS, "BIO") if constrained else None)
    with torch.no_grad():
        crf.transitions.normal_()
        crf.start.normal_()
        crf.end.normal_()
    lengths = [4, 2, 3, 1]
    emissions = torch.randn(len(lengths), 4, len(LABELS))
    mask = torch.arange(4)[None] < torch.tensor(lengths)[:, None]
    log_z = crf.log_partition(emissions, mask)
    best = crf.decode(emissions, mask)
    tags = torch.randint(0, len(LABELS), (len(lengths), 4)) * mask
    nll = crf.neg_log_likelihood(emissions, tags, mask, reduction="none")
    for b, n in enumerate(lengths):
        ref_z, ref_best = brute_force(crf, emissions[b, :n], n)
        assert log_z[b].item() == pytest.approx(ref_z.item(), abs=1e-4)
        assert best[b, :n].tolist() == ref_best
        assert best[b, n:].eq(0).all()
        path = tags[b, :n].tolist()
        trans, start, end = crf._scores()
        s = start[path[0]] + end[path[-1]] + sum(emissions[b, t, path[t]] for t in range(n))
        s = s + sum(trans[path[t - 1], path[t]] for t in range(1, n))
        assert nll[b].item() == pytest.approx((ref_z - s).item(), abs=1e-3)


def test_constrained_decoding_never_uses_forbidden_transitions():
    torch.manual_seed(1)
    crf = CRF(len(LABELS), allowed_transitions(LABELS, "BIO"))
    emissions = torch.randn(64, 7, len(LABELS)) * 3
    mask = torch.ones(64, 7, dtype=torch.bool)
    for row in crf.decode(emissions, mask).tolist():
        tags = [LABELS[i] for i in row]
        assert not tags[0].startswith("I-")
        for prev, cur in zip(tags, tags[1:]):
            if cur.startswith("I-"):
                assert prev in ("B-" + cur[2:], cur)


def test_bioes_constraints():
    labels = ["O", "B-X", "I-X", "E-X", "S-X"]
    pairs, starts, ends = allowed_transitions(labels, "BIOES")
    idx = {lab: i for i, lab in enumerate(labels)}
    assert (idx["B-X"], idx["E-X"]) in pairs and (idx["B-X"], idx["O"]) not in pairs
    assert (idx["O"], idx["I-X"]) not in pairs and (idx["S-X"], idx["B-X"]) in pairs
    assert idx["I-X"] not in starts and idx["B-X"] not in ends and idx["E-X"] in ends


def test_crf_gradients_reach_all_parameters():
    crf = CRF(3)
    emissions = torch.randn(2, 5, 3, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)
    crf.neg_log_likelihood(emissions, torch.zeros(2, 5, dtype=torch.long), mask).backward()
    for p in (crf.transitions, crf.start, crf.end, emissions):
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_chunks_follow_conlleval():
    assert chunks(["B-NP", "I-NP", "O", "B-VP"]) == [("NP", 0, 1), ("VP", 3, 3)]
    assert chunks(["O", "I-NP", "I-NP"]) == [("NP", 1, 2)]          # I after O starts a chunk
    assert chunks(["B-NP", "I-VP"]) == [("NP", 0, 0), ("VP", 1, 1)]
    assert chunks(["S-X", "B-X", "E-X"]) == [("X", 0, 0), ("X", 1, 2)]


def random_tags(rng: random.Random, n: int, scheme: str) -> list[str]:
    prefixes = "BIO" if scheme == "BIO" else "BIOES"
    out = []
    for _ in range(n):
        p = rng.choice(prefixes)
        out.append("O" if p == "O" else f"{p}-{rng.choice(['NP', 'VP', 'PP'])}")
    return out


@pytest.mark.parametrize("scheme", ["BIO", "BIOES"])
def test_span_scores_match_seqeval(scheme: str):
    seqeval = pytest.importorskip("seqeval.metrics")
    rng = random.Random(scheme)
    gold, pred = [], []
    for _ in range(300):
        n = rng.randint(1, 12)
        gold.append(random_tags(rng, n, scheme))
        pred.append([g if rng.random() < 0.7 else t for g, t in zip(gold[-1], random_tags(rng, n, scheme))])
    ours = span_scores(gold, pred)
    assert ours["precision"] == pytest.approx(100 * seqeval.precision_score(gold, pred), abs=1e-9)
    assert ours["recall"] == pytest.approx(100 * seqeval.recall_score(gold, pred), abs=1e-9)
    assert ours["f1"] == pytest.approx(100 * seqeval.f1_score(gold, pred), abs=1e-9)
    assert token_accuracy(gold, gold) == 100.0
