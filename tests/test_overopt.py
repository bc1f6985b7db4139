"""The best-of-n estimator against brute force over every n-subset of the draws."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from superhf.overopt import (
    best_of_n_curve,
    best_of_n_kl,
    choice_weights,
    curve_ns,
    expected_best_of_n,
)


def brute_force(proxy: list[float], gold: list[float], n: int) -> float:
    """Average gold reward of the proxy's pick over all n-subsets (ties: the earlier draw)."""
    picks = [max(sub, key=lambda i: (proxy[i], -i))
             for sub in itertools.combinations(range(len(proxy)), n)]  # fmt: skip
    return sum(gold[i] for i in picks) / len(picks)


@pytest.mark.parametrize("seed", range(5))
def test_estimator_matches_enumeration_over_all_subsets(seed: int) -> None:
    rng = random.Random(seed)
    big_n = 7
    proxy = [rng.choice([0.0, 0.5, 1.0, rng.gauss(0, 1)]) for _ in range(big_n)]  # with ties
    gold = [rng.gauss(0, 1) for _ in range(big_n)]
    for n in range(1, big_n + 1):
        assert expected_best_of_n(proxy, gold, n) == pytest.approx(brute_force(proxy, gold, n))
        assert expected_best_of_n(proxy, proxy, n) == pytest.approx(brute_force(proxy, proxy, n))


def test_weights_sum_to_one_and_extremes() -> None:
    proxy = [0.3, -1.0, 2.0, 0.3]
    for n in range(1, 5):
        assert sum(choice_weights(proxy, n)) == pytest.approx(1.0)
    assert choice_weights(proxy, 1) == [0.25] * 4  # n = 1: a uniform draw
    assert choice_weights(proxy, 4) == [0.0, 0.0, 1.0, 0.0]  # n = N: the argmax
    # a tie at 0.3: the earlier draw (index 0) beats index 3 in every subset holding both
    assert choice_weights([0.3, 0.3], 2) == [1.0, 0.0]


def test_curve_and_kl() -> None:
    assert curve_ns(1) == [1] and curve_ns(8) == [1, 2, 4, 8] and curve_ns(6) == [1, 2, 4, 6]
    assert best_of_n_kl(1) == 0.0
    assert best_of_n_kl(4) == pytest.approx(math.log(4) - 0.75)
    proxy = [[0.0, 1.0, 2.0, 3.0], [3.0, 2.0, 1.0, 0.0]]
    gold = [[1.0, 1.0, 1.0, -5.0], [0.0, 0.0, 0.0, 0.0]]
    curve = best_of_n_curve(proxy, gold, 4)
    assert [c["n"] for c in curve] == [1, 2, 4]
    assert curve[0]["gold"][0] == pytest.approx(-0.5)  # mean of the draws
    assert curve[-1]["gold"][0] == -5.0 and curve[-1]["proxy"] == [3.0, 3.0]
    for c in curve:  # matches brute force per prompt
        assert c["gold"][0] == pytest.approx(brute_force(proxy[0], gold[0], c["n"]))
    with pytest.raises(ValueError, match="fewer than n_max"):
        best_of_n_curve([[0.0]], [[0.0]], 2)


@pytest.mark.parametrize("seed", range(3))
def test_a_pool_larger_than_n_matches_enumeration(seed: int) -> None:
    """n up to 4 drawn from a pool of N = 9: every n-subset of the pool, brute force."""
    rng = random.Random(seed)
    proxy = [[rng.choice([0.0, 1.0, rng.gauss(0, 1)]) for _ in range(10)] for _ in range(3)]
    gold = [[rng.gauss(0, 1) for _ in range(10)] for _ in range(3)]
    curve = best_of_n_curve(proxy, gold, 4, pool=9)  # the 10th draw is outside the pool
    assert [c["n"] for c in curve] == [1, 2, 4]
    for c in curve:
        for p in range(3):
            assert c["gold"][p] == pytest.approx(brute_force(proxy[p][:9], gold[p][:9], c["n"]))
            assert c["proxy"][p] == pytest.approx(brute_force(proxy[p][:9], proxy[p][:9], c["n"]))
    with pytest.raises(ValueError, match="at least n_max"):
        best_of_n_curve(proxy, gold, 4, pool=3)
    with pytest.raises(ValueError, match="fewer than n_max/pool = 11"):
        best_of_n_curve(proxy, gold, 4, pool=11)


def test_n_256_of_a_pool_of_512_is_exact() -> None:
    """Draws valued 1..N: the max of n drawn without replacement has mean n(N + 1)/(n + 1)."""
    big_n = 512
    values = [float(v) for v in random.Random(0).sample(range(1, big_n + 1), big_n)]
    curve = best_of_n_curve([values], [values], 256, pool=big_n)
    assert [c["n"] for c in curve] == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    for c in curve:
        assert c["proxy"][0] == pytest.approx(c["n"] * (big_n + 1) / (c["n"] + 1), rel=1e-12)
    assert sum(choice_weights(values, 256)) == pytest.approx(1.0, rel=1e-12)
