"""The hh study's statistics against plain loops that draw the same random numbers."""

from __future__ import annotations

import numpy as np
import pytest

from superhf.study_stats import (
    first_reach,
    hierarchical_bootstrap,
    length_fit,
    length_residual,
    paired_difference,
    rewards_array,
    seeds_at_kl,
)


def loop_resample(r, rng, prompts=None) -> float:
    """One resample by plain loops: seeds, then prompts per drawn seed, then samples."""
    n_seed, n_prompt, n_sample = len(r), len(r[0]), len(r[0][0])
    seeds = rng.integers(0, n_seed, n_seed)
    if prompts is None:
        prompts_of = rng.integers(0, n_prompt, (n_seed, n_prompt))
    else:
        prompts_of = [prompts] * n_seed
    samples = rng.integers(0, n_sample, (n_seed, n_prompt, n_sample))
    total, count = 0.0, 0
    for i, s in enumerate(seeds):
        for j in range(n_prompt):
            p = prompts_of[i][j]
            for k in range(n_sample):
                total += r[s][p][samples[i, j, k]]
                count += 1
    return total / count


def rewards(shape, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(shape[0], 1, 1)) + rng.normal(size=(1, shape[1], 1))
    return base + rng.normal(size=shape)


def test_hierarchical_bootstrap_matches_loops() -> None:
    r = rewards((3, 5, 2))
    got = hierarchical_bootstrap(r, n_resamples=200, seed=7)
    rng = np.random.default_rng(7)
    draws = [loop_resample(r.tolist(), rng) for _ in range(200)]
    assert got.mean == pytest.approx(r.mean())
    assert (got.low, got.high) == pytest.approx(tuple(np.quantile(draws, [0.025, 0.975])))
    assert got.low < got.mean < got.high


def test_more_seeds_and_prompts_narrow_the_interval() -> None:
    narrow = hierarchical_bootstrap(rewards((8, 64, 2)), 300)
    wide = hierarchical_bootstrap(rewards((2, 8, 2)), 300)
    assert narrow.high - narrow.low < wide.high - wide.low


def test_paired_difference_matches_loops_and_shares_the_prompts() -> None:
    a, b = rewards((3, 6, 2), 1), rewards((2, 6, 4), 2)
    got = paired_difference(a, b, n_resamples=100, seed=3)
    rng = np.random.default_rng(3)
    draws = []
    for _ in range(100):
        prompts = rng.integers(0, 6, 6)
        draws.append(
            loop_resample(a.tolist(), rng, prompts) - loop_resample(b.tolist(), rng, prompts)
        )
    assert got.mean == pytest.approx(a.mean() - b.mean())
    assert (got.low, got.high) == pytest.approx(tuple(np.quantile(draws, [0.025, 0.975])))
    # B = A + a constant per prompt: pairing removes the prompt effect entirely
    shift = np.random.default_rng(4).normal(size=(1, 6, 1)) * 10
    d = paired_difference(a + shift + 1.0, a + shift, 200)
    assert d.mean == pytest.approx(1.0) and d.high - d.low < 3
    with pytest.raises(ValueError, match="same"):
        paired_difference(a, rewards((2, 5, 2)))


def test_length_fit_and_residual_match_the_closed_form() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(1, 200, 50).astype(float)
    y = 0.01 * x + rng.normal(size=50)
    mx, my = sum(x) / len(x), sum(y) / len(y)
    slope = sum((xi - mx) * (yi - my) for xi, yi in zip(x, y)) / sum((xi - mx) ** 2 for xi in x)
    intercept = my - slope * mx
    assert length_fit(x, y) == pytest.approx((slope, intercept))
    res = length_residual(x, y, (slope, intercept))
    assert res == pytest.approx([yi - slope * xi - intercept for xi, yi in zip(x, y)])
    assert abs(res.mean()) < 1e-9  # on the data it was fitted on, the residual has mean 0
    with pytest.raises(ValueError, match="same length"):
        length_fit([3, 3, 3], [1, 2, 3])


def test_rewards_array_groups_rows_by_seed_and_prompt() -> None:
    run0 = [{"prompt": "b", "gold": 1.0}, {"prompt": "a", "gold": 2.0}, {"prompt": "a", "gold": 3.0},
            {"prompt": "b", "gold": 4.0}, {"prompt": "z", "gold": 9.0}]  # fmt: skip
    run1 = [{"prompt": p, "gold": 0.0} for p in "abab"]
    arr = rewards_array([run0, run1], "gold", ["a", "b"])
    assert arr.shape == (2, 2, 2) and arr[0].tolist() == [[2.0, 3.0], [1.0, 4.0]]
    lengths = rewards_array([run0], lambda r: len(r["prompt"]) * 10, ["a"])
    assert lengths.tolist() == [[[10.0, 10.0]]]
    with pytest.raises(ValueError, match="differ or are missing"):
        rewards_array([run0[:3]], "gold", ["a", "b"])


def test_first_reach_reads_the_first_crossing_in_training_order():
    kl = [0.0, 1.0, 3.0, 2.0, 5.0]
    gold = [0.0, 0.5, 1.0, 2.0, 4.0]
    assert first_reach(kl, gold, 0.0) == 0.0
    assert first_reach(kl, gold, 2.0) == pytest.approx(0.75)  # 1 -> 3, not the later point at 2
    assert first_reach(kl, gold, 4.0) == pytest.approx(10 / 3)  # 2 -> 5 (3 -> 2 never reaches 4)
    assert np.isnan(first_reach(kl, gold, 6.0))  # stopped short


def test_seeds_at_kl_equals_a_plain_loop():
    rng = np.random.default_rng(3)
    curves = [
        (np.concatenate([[0.0], np.sort(rng.uniform(0, 9, 6))]), rng.normal(size=7))
        for _ in range(3)
    ]
    levels = [0.5, 1, 2, 4, 8]
    got = seeds_at_kl(curves, levels)
    for s, (kl, v) in enumerate(curves):
        for j, lv in enumerate(levels):
            want = float("nan")
            for i in range(1, len(kl)):
                if kl[i - 1] <= lv <= kl[i]:
                    want = v[i - 1] + (lv - kl[i - 1]) / (kl[i] - kl[i - 1]) * (v[i] - v[i - 1])
                    break
            np.testing.assert_allclose(got[s, j], want)
