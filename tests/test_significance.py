"""The paired significance test: per-example counts reproduce every metric, and the test gives the
known answers (identical systems; a sign-test case computed by hand; a clearly better system)."""
from __future__ import annotations

import random

import pytest

from polytask.evaluation.significance import (TaskPredictions, example_counts, metric_from_counts,
                                              paired_test, seed_test, verdict)
from polytask.kinds import get_kind

TAGS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def _random_case(kind: str, rng: random.Random, n: int = 60):
    if kind in ("classification", "pair_classification"):
        labels = ["x", "y", "z"]
        gold = [rng.randrange(3) for _ in range(n)]
        return labels, gold, [g if rng.random() < 0.6 else rng.randrange(3) for g in gold]
    if kind == "tagging":
        gold = [[rng.randrange(len(TAGS)) for _ in range(rng.randint(1, 9))] for _ in range(n)]
        return TAGS, gold, [[t if rng.random() < 0.7 else rng.randrange(len(TAGS)) for t in g] for g in gold]
    if kind == "regression":
        gold = [rng.uniform(0, 5) for _ in range(n)]
        return [], gold, [g + rng.gauss(0, 1.5) for g in gold]
    answers = ["the cat", "a dog", "blue sky", "red car", "it rains"]
    gold = [[rng.choice(answers), rng.choice(answers)] for _ in range(n)]
    return [], gold, [rng.choice(answers + ["cat", "sky blue"]) for _ in gold]


@pytest.mark.parametrize("kind,metric", [
    ("classification", "accuracy"), ("classification", "macro_f1"), ("classification", "mcc"),
    ("pair_classification", "accuracy"), ("tagging", "accuracy"), ("tagging", "span_f1"),
    ("regression", "pearson"), ("qa", "em"), ("qa", "squad_f1"),
])
def test_counts_give_the_kinds_own_metric_on_any_subset(kind, metric):
    rng = random.Random(f"{kind}/{metric}")
    labels, gold, pred = _random_case(kind, rng)
    info = {"type": kind, "labels": labels}
    counts = example_counts(kind, metric, gold, pred, labels)
    for subset in (range(len(gold)), sorted(rng.sample(range(len(gold)), 17)), [3, 3, 5, 8, 8, 8, 20]):
        expected = get_kind(kind).score_against([gold[i] for i in subset], [pred[i] for i in subset],
                                                (metric,), info)[metric]
        got = metric_from_counts(metric, counts[list(subset)].sum(0), len(labels))
        assert got == pytest.approx(expected, abs=1e-9), subset


@pytest.mark.filterwarnings("ignore:A single label:UserWarning")
def test_binary_f1_and_degenerate_cases_match_the_kind():
    info = {"type": "classification", "labels": ["0", "1"]}
    kind = get_kind("classification")
    for gold, pred in (([0, 1, 1, 0, 1], [0, 1, 0, 1, 1]), ([0, 0, 0], [0, 0, 0]), ([1, 0], [0, 0])):
        for metric in ("f1", "mcc", "macro_f1"):
            expected = kind.score_against(gold, pred, (metric,), info)[metric]
            got = metric_from_counts(metric, example_counts("classification", metric, gold, pred, ["0", "1"]).sum(0), 2)
            assert got == pytest.approx(expected, abs=1e-9), (metric, gold, pred)
    # a constant prediction has no correlation: both give 0
    reg = get_kind("regression")
    gold, pred = [1.0, 2.0, 3.5], [2.0, 2.0, 2.0]
    assert reg.score_against(gold, pred, ("pearson",), {"type": "regression"})["pearson"] == 0.0
    assert metric_from_counts("pearson", example_counts("regression", "pearson", gold, pred, []).sum(0), 0) == 0.0


def _system(gold: list[int], *seeds: list[int], task: str = "t") -> dict:
    return {task: TaskPredictions("classification", {"type": "classification", "labels": ["0", "1"],
                                                     "metrics": ["accuracy"]}, gold, [list(s) for s in seeds])}


def test_identical_systems_are_not_distinguishable():
    rng = random.Random(0)
    gold = [rng.randrange(2) for _ in range(300)]
    seeds = [[g if rng.random() < 0.8 else 1 - g for g in gold] for _ in range(3)]
    result = paired_test(_system(gold, *seeds), _system(gold, *seeds), n_resamples=2000)
    assert result["delta"] == 0.0 and result["p_value"] == 1.0
    assert verdict(result["p_value"], 0.05) == "not distinguishable at this sample size"


@pytest.mark.parametrize("discordant,p", [(1, 1.0), (5, 2 / 2 ** 5), (7, 2 / 2 ** 7)])
def test_exact_case_equals_the_two_sided_sign_test(discordant, p):
    """Ten examples: A is right on all, B wrong on ``discordant`` of them. 2^10 shuffles are few
    enough for scipy to enumerate: |Δ| reaches the observed value only when every discordant
    example stays (or every one swaps), so p = 2 / 2^discordant."""
    gold = [1, 0] * 5
    b = [1 - g if i < discordant else g for i, g in enumerate(gold)]
    result = paired_test(_system(gold, gold), _system(gold, b))
    assert result["exact"] and result["examples"] == 10 and result["swappable"] == discordant
    assert result["delta"] == pytest.approx(100.0 * discordant / 10)
    assert result["p_value"] == pytest.approx(p)
    assert verdict(result["p_value"], 0.05) == ("significant at α = 0.05" if p < 0.05 else
                                                "not distinguishable at this sample size")


def test_same_p_value_as_scipy_on_the_per_example_differences():
    """Accuracy pooled over two seeds is the mean over examples of each example's seed-mean
    correctness, so the test equals scipy's paired test on those values directly, examples that
    neither seed pair tells apart included (12 examples: exact)."""
    from scipy.stats import permutation_test
    rng = random.Random(3)
    gold = [rng.randrange(2) for _ in range(12)]
    a_seeds = [[g if rng.random() < 0.8 else 1 - g for g in gold] for _ in range(2)]
    b_seeds = [[g if rng.random() < 0.5 else 1 - g for g in gold] for _ in range(2)]
    ours = paired_test(_system(gold, *a_seeds), _system(gold, *b_seeds))
    right = lambda seeds: [sum(s[i] == gold[i] for s in seeds) / 2 for i in range(12)]  # noqa: E731
    reference = permutation_test((right(a_seeds), right(b_seeds)), lambda x, y, axis: 100 * (x - y).mean(axis),
                                 permutation_type="samples", vectorized=True, n_resamples=10 ** 6)
    assert ours["swappable"] < 12 and ours["delta"] == pytest.approx(reference.statistic)
    assert ours["p_value"] == pytest.approx(reference.pvalue)


def test_a_clearly_better_system_over_two_tasks_and_seeds():
    rng = random.Random(1)
    systems = {"good": {}, "poor": {}}
    for task in ("t1", "t2"):
        gold = [rng.randrange(2) for _ in range(200)]
        for name, right in (("good", 0.9), ("poor", 0.6)):
            seeds = [[g if rng.random() < right else 1 - g for g in gold] for _ in range(3)]
            systems[name].update(_system(gold, *seeds, task=task))
    result = paired_test(systems["good"], systems["poor"], n_resamples=5000)
    assert result["tasks"] == ["t1", "t2"] and result["seeds"] == [3, 3]
    assert 20 < result["delta"] < 40
    assert result["p_value"] == pytest.approx(2 / 5001)       # no shuffle comes near: the two-sided floor
    flipped = paired_test(systems["poor"], systems["good"], n_resamples=5000)
    assert flipped["delta"] == pytest.approx(-result["delta"]) and flipped["p_value"] == result["p_value"]


def test_a_metric_without_counts_is_rescored_by_its_kind():
    rng = random.Random(2)
    gold = [rng.uniform(0, 5) for _ in range(40)]
    info = {"type": "regression", "labels": [], "metrics": ["spearman", "pearson"]}
    close = [g + rng.gauss(0, 0.3) for g in gold]
    noise = [rng.uniform(0, 5) for _ in gold]
    a = {"r": TaskPredictions("regression", info, gold, [close])}
    b = {"r": TaskPredictions("regression", info, gold, [noise])}
    assert paired_test(a, a, n_resamples=50)["p_value"] == 1.0
    result = paired_test(a, b, n_resamples=200)
    assert result["metrics"] == {"r": "spearman"} and result["delta"] > 50
    assert result["p_value"] == pytest.approx(2 / 201)


def test_systems_tested_on_other_examples_are_refused():
    with pytest.raises(ValueError, match="different examples"):
        paired_test(_system([0, 1, 1], [0, 1, 1]), _system([0, 1, 0], [0, 1, 1]))


def test_seed_level_welch_test():
    assert seed_test([80.0], [70.0, 71.0])["p_value"] is None
    from scipy.stats import ttest_ind
    a, b = [80.0, 81.0, 82.5], [78.0, 79.5, 78.5]
    assert seed_test(a, b)["p_value"] == pytest.approx(ttest_ind(a, b, equal_var=False).pvalue)
