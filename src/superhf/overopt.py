"""Over-optimisation curves: the pure maths (no models, no I/O).

Best-of-n without training (Gao et al. 2022, "Scaling laws for reward model
overoptimization", section 2): for each prompt the base policy draws N completions once; for
n <= N the proxy picks the highest-scoring of n draws. Instead of one random subset of n, we
take the expectation over *all* n-subsets of the N draws, which is exact and has no subset
noise: the draw of rank r (1-based, ascending proxy order) is the choice of a uniformly
random n-subset with probability C(r - 1, n - 1) / C(N, n) (it must be in the subset and the
other n - 1 members must rank below it).

Ties in the proxy score are broken by draw order, the earlier draw ranks higher, so the
choice is the same deterministic function of the subset that a loop ``max`` over (score,
-index) gives. The KL of best-of-n to the base policy is at most log n - (n - 1) / n
(Stiennon et al. 2020, appendix; Beirami et al. 2024 show it is an upper bound, not the
value), relative to the distribution the n draws come from.

A trained policy's KL to the base is estimated from samples y ~ pi of the unwarped policy
(temperature 1, no truncation, no penalty) as the mean over samples of the summed token
log-ratio log pi(y|x) - log pi_base(y|x), an unbiased estimate with a standard error; a
negative estimate is kept as it is (``kl_estimate``), and plotted as a signed square root.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache


def best_of_n_kl(n: int) -> float:
    """The upper bound log n - (n - 1) / n of KL(best-of-n || base) (0 for n = 1)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return math.log(n) - (n - 1) / n


def kl_estimate(log_ratios: Sequence[float]) -> tuple[float, float | None]:
    """Mean of per-sample log-ratios and its standard error (sample sd / sqrt(n); None for
    fewer than two samples). Never clamped: a negative mean is what the samples say."""
    n = len(log_ratios)
    if n == 0:
        raise ValueError("no samples to estimate a KL from")
    mean = sum(log_ratios) / n
    if n < 2:
        return mean, None
    var = sum((x - mean) ** 2 for x in log_ratios) / (n - 1)
    return mean, math.sqrt(var / n)


def signed_sqrt(x: float) -> float:
    """sign(x) * sqrt(|x|): the sqrt-KL axis keeps a negative KL estimate left of zero."""
    return math.copysign(math.sqrt(abs(x)), x)


def curve_ns(n_max: int) -> list[int]:
    """1, 2, 4, ... up to ``n_max``, and ``n_max`` itself when it is not a power of two."""
    if n_max < 1:
        raise ValueError(f"n_max must be >= 1, got {n_max}")
    ns = [1]
    while ns[-1] * 2 <= n_max:
        ns.append(ns[-1] * 2)
    return ns if ns[-1] == n_max else [*ns, n_max]


@lru_cache(maxsize=64)
def rank_weights(big_n: int, n: int) -> tuple[float, ...]:
    """P(the draw of rank r, 1-based ascending, is the choice of a random n-subset of N):
    C(r - 1, n - 1) / C(N, n). The same for every prompt with N draws, so computed once;
    exact big-integer binomials, so n = 256 of N = 1024 draws loses nothing to overflow."""
    if not 1 <= n <= big_n:
        raise ValueError(f"n must be in 1..{big_n} (the number of draws), got {n}")
    total = math.comb(big_n, n)
    return tuple(math.comb(rank0, n - 1) / total for rank0 in range(big_n))


def choice_weights(proxy: Sequence[float], n: int) -> list[float]:
    """P(draw i is the proxy's choice among a uniformly random n-subset of the draws).

    Ties go to the earlier draw. The weights sum to 1.
    """
    big_n = len(proxy)
    by_rank = rank_weights(big_n, n)
    order = sorted(range(big_n), key=lambda i: (proxy[i], -i))  # ascending; ties: later first
    weights = [0.0] * big_n
    for rank0, i in enumerate(order):  # rank0 = rank - 1 = draws that rank below i
        weights[i] = by_rank[rank0]
    return weights


def expected_best_of_n(proxy: Sequence[float], values: Sequence[float], n: int) -> float:
    """E[values of the proxy's choice among a uniformly random n-subset of the draws]."""
    if len(values) != len(proxy):
        raise ValueError(f"{len(proxy)} proxy scores but {len(values)} values")
    return sum(w * v for w, v in zip(choice_weights(proxy, n), values))


def best_of_n_curve(
    proxy: Sequence[Sequence[float]],
    gold: Sequence[Sequence[float]],
    n_max: int,
    pool: int | None = None,
) -> list[dict]:
    """Per n in ``curve_ns(n_max)``: KL and per-prompt expected proxy and gold reward.

    ``proxy[p][j]`` and ``gold[p][j]`` are the scores of draw j of prompt p. The estimator
    runs over a pool of the first ``pool`` draws of each prompt (null = ``n_max``): with a
    pool N larger than n, E[max of n] is averaged over all C(N, n) subsets of it, which
    lowers the variance at large n (Gao et al. 2022 draw N >= n once and do the same).
    Every prompt needs at least ``pool`` draws.
    """
    pool = n_max if pool is None else pool
    if pool < n_max:
        raise ValueError(f"the pool ({pool} draws) must hold at least n_max={n_max}")
    if len(proxy) != len(gold) or not proxy:
        raise ValueError(f"need the same number (>0) of prompts, got {len(proxy)}, {len(gold)}")
    short = [p for p, row in enumerate(proxy) if len(row) < pool or len(gold[p]) < pool]
    if short:
        raise ValueError(f"prompt {short[0]} has fewer than n_max/pool = {pool} scored draws")
    proxy = [row[:pool] for row in proxy]
    gold = [row[:pool] for row in gold]
    out = []
    for n in curve_ns(n_max):
        ws = [choice_weights(row, n) for row in proxy]
        out.append(
            {
                "n": n,
                "kl": best_of_n_kl(n),
                "proxy": [sum(w * v for w, v in zip(wr, row)) for wr, row in zip(ws, proxy)],
                "gold": [sum(w * v for w, v in zip(wr, row)) for wr, row in zip(ws, gold)],
            }
        )
    return out
