"""How good, and how independent, are the proxy and the gold reward model? Pure functions.

For the held-out preference pairs: each model's accuracy with a Wilson interval, the
length-only baselines ("the longer answer wins", "the shorter answer wins"), and how often
the two models prefer the same answer. For policy samples: the correlation of their scores
(Pearson and Spearman, with a bootstrap interval). A tie counts one half everywhere, as in
``superhf.reward_training.pair_accuracy``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Z95 = 1.959963984540054


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion (successes may hold halves for ties)."""
    if n <= 0:
        return (math.nan, math.nan)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def _credit(a: float, b: float) -> float:
    return 1.0 if a > b else 0.5 if a == b else 0.0


def rate(credits: Sequence[float]) -> dict[str, float]:
    """Mean of per-pair credits (1, 1/2, 0) with its Wilson interval and n."""
    n = len(credits)
    k = float(sum(credits))
    low, high = wilson(k, n)
    return {"accuracy": k / n if n else math.nan, "ci_low": low, "ci_high": high, "n": n}


def accuracy(chosen: Sequence[float], rejected: Sequence[float]) -> dict[str, float]:
    """Share of pairs where the chosen answer scores higher, with its interval."""
    return rate([_credit(c, r) for c, r in zip(chosen, rejected, strict=True)])


def length_baselines(pairs: Sequence[dict]) -> dict[str, dict[str, float]]:
    """Accuracy of 'the longer answer wins' and of 'the shorter answer wins' (characters)."""
    lc = [len(p["chosen"]) for p in pairs]
    lr = [len(p["rejected"]) for p in pairs]
    return {
        "longer_wins": accuracy(lc, lr),
        "shorter_wins": accuracy([-x for x in lc], [-x for x in lr]),
    }


def agreement(
    proxy: tuple[Sequence[float], Sequence[float]], gold: tuple[Sequence[float], Sequence[float]]
) -> dict[str, float]:
    """Share of pairs on which both models prefer the same answer (a tie in one of them
    counts one half), with its interval. Each argument is (chosen scores, rejected scores)."""
    credits = []
    for pc, pr, gc, gr in zip(*proxy, *gold, strict=True):
        p, g = _credit(pc, pr), _credit(gc, gr)
        credits.append(0.5 if 0.5 in (p, g) else float(p == g))
    out = rate(credits)
    return {"agreement": out.pop("accuracy"), **out}


def ranks(x: Sequence[float]) -> np.ndarray:
    """1-based ranks, ties given their average rank (as Spearman's rho needs)."""
    arr = np.asarray(x, dtype=float)
    order = np.argsort(arr, kind="stable")
    r = np.empty(len(arr))
    r[order] = np.arange(1, len(arr) + 1)
    for v in np.unique(arr):
        tied = arr == v
        r[tied] = r[tied].mean()
    return r


def correlation(
    x: Sequence[float], y: Sequence[float], n_resamples: int = 1000, seed: int = 0
) -> dict[str, float]:
    """Pearson r and Spearman rho of two models' scores on the same samples, each with a
    95% percentile bootstrap interval over the samples."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape or a.size < 3:
        raise ValueError(
            f"need the same samples (3 or more) for both models, got {a.size}, {b.size}"
        )
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.size, (n_resamples, a.size))
    out: dict[str, float] = {"n": int(a.size)}
    for name, (u, v) in {"pearson": (a, b), "spearman": (ranks(a), ranks(b))}.items():
        boots = [np.corrcoef(u[i], v[i])[0, 1] for i in idx]
        boots = [r for r in boots if np.isfinite(r)]
        lo, hi = np.quantile(boots, [0.025, 0.975]) if boots else (math.nan, math.nan)
        out |= {
            name: float(np.corrcoef(u, v)[0, 1]),
            f"{name}_ci_low": float(lo),
            f"{name}_ci_high": float(hi),
        }
    return out


def heldout_report(pairs: Sequence[dict], scores: dict[str, tuple[list, list]]) -> dict:
    """Everything the hh study reports about the two models on held-out pairs: each model's
    accuracy (``scores[which]`` = (chosen scores, rejected scores)), the length baselines,
    and the models' agreement."""
    out: dict = {w: accuracy(*s) for w, s in scores.items()}
    out["length_baselines"] = length_baselines(pairs)
    if {"proxy", "gold"} <= scores.keys():
        out["agreement"] = agreement(scores["proxy"], scores["gold"])
    return out


def policy_correlation(rows: Sequence[dict], n_resamples: int = 1000, seed: int = 0) -> dict:
    """Proxy-gold correlation on policy samples (rows of ``eval_completions.jsonl``: model,
    proxy, gold): per model, and over every row."""
    by_model: dict[str, list[dict]] = {}
    for r in rows:
        by_model.setdefault(r["model"], []).append(r)
    out = {
        m: correlation([r["proxy"] for r in rs], [r["gold"] for r in rs], n_resamples, seed)
        for m, rs in by_model.items()
        if len(rs) >= 3
    }
    out["all"] = correlation(
        [r["proxy"] for r in rows], [r["gold"] for r in rows], n_resamples, seed
    )
    return out
