"""Reward-model comparison metrics and the gold relabelling, against hand-worked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from superhf.judges import (
    accuracy,
    agreement,
    correlation,
    heldout_report,
    policy_correlation,
    ranks,
    wilson,
)
from superhf.reward_training import relabel_pairs


def test_relabelling_swaps_exactly_where_the_gold_disagrees() -> None:
    pairs = [{"prompt": "p1", "chosen": "a", "rejected": "b"},
             {"prompt": "p2", "chosen": "c", "rejected": "d"},
             {"prompt": "p3", "chosen": "e", "rejected": "f"}]  # fmt: skip
    out, swapped = relabel_pairs(pairs, chosen=[1.0, -2.0, 0.5], rejected=[0.0, 3.0, 0.5])
    assert swapped == 1
    assert [(p["chosen"], p["rejected"]) for p in out] == [("a", "b"), ("d", "c"), ("e", "f")]
    assert [p["prompt"] for p in out] == ["p1", "p2", "p3"]
    assert pairs[1]["chosen"] == "c"  # the input is not modified
    # after relabelling, the judge that relabelled is right on every pair (ties count one half)
    g = {"a": 1.0, "b": 0.0, "c": -2.0, "d": 3.0, "e": 0.5, "f": 0.5}
    acc = accuracy([g[p["chosen"]] for p in out], [g[p["rejected"]] for p in out])
    assert acc["accuracy"] == pytest.approx(2.5 / 3)


def test_wilson_interval_known_values() -> None:
    low, high = wilson(8, 10)  # standard textbook value: 0.490 to 0.943
    assert (round(low, 3), round(high, 3)) == (0.490, 0.943)
    assert wilson(0, 10)[0] == pytest.approx(0.0, abs=1e-12) and wilson(10, 10)[1] == pytest.approx(
        1.0
    )
    assert all(math.isnan(v) for v in wilson(0, 0))


def test_heldout_report_baselines_and_agreement() -> None:
    pairs = [{"chosen": "long answer", "rejected": "no"}, {"chosen": "ok", "rejected": "a long one"},
             {"chosen": "same", "rejected": "size"}, {"chosen": "x", "rejected": "yy"}]  # fmt: skip
    proxy = ([1.0, 0.0, 2.0, 0.0], [0.0, 1.0, 1.0, 1.0])  # right on pairs 0 and 2
    gold = ([1.0, 1.0, 2.0, 1.0], [0.0, 0.0, 2.0, 0.0])  # right on 0, 1, 3; a tie on 2
    rep = heldout_report(pairs, {"proxy": proxy, "gold": gold})
    assert rep["proxy"]["accuracy"] == 0.5 and rep["gold"]["accuracy"] == 3.5 / 4
    assert rep["length_baselines"]["longer_wins"]["accuracy"] == pytest.approx(1.5 / 4)
    assert rep["length_baselines"]["shorter_wins"]["accuracy"] == pytest.approx(2.5 / 4)
    # agree on 0, disagree on 1 and 3, gold's tie on 2 counts one half
    assert rep["agreement"]["agreement"] == pytest.approx(1.5 / 4)
    assert agreement(proxy, proxy)["agreement"] == 1.0


def test_correlation_against_plain_formulas() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    y = x + rng.normal(size=40)
    y[3] = y[5]  # a tie for the ranks
    mx, my = x.mean(), y.mean()
    r = sum((a - mx) * (b - my) for a, b in zip(x, y)) / math.sqrt(
        sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y))  # fmt: skip
    out = correlation(x, y, n_resamples=200)
    assert out["pearson"] == pytest.approx(r)
    assert out["pearson_ci_low"] < out["pearson"] < out["pearson_ci_high"]
    rk = ranks(y)
    assert rk[3] == rk[5] == pytest.approx((sorted(y).index(y[3]) * 2 + 3) / 2)
    assert sum(rk) == pytest.approx(40 * 41 / 2)
    assert correlation(x, 2 * x + 1)["spearman"] == pytest.approx(1.0)


def test_policy_correlation_per_model_and_overall() -> None:
    rows = [{"model": m, "proxy": float(i), "gold": float(i) * s}
            for m, s in (("base", 1.0), ("superhf", -1.0)) for i in range(5)]  # fmt: skip
    out = policy_correlation(rows, n_resamples=50)
    assert out["base"]["pearson"] == pytest.approx(1.0)
    assert out["superhf"]["spearman"] == pytest.approx(-1.0)
    assert out["all"]["n"] == 10 and abs(out["all"]["pearson"]) < 1e-9
