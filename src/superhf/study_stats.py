"""Statistics of the hh study: pure functions over arrays of rewards (no models, no I/O).

A method's rewards are an array ``r[seed, prompt, sample]``: training seeds of the method,
the shared evaluation prompts, and the samples drawn per prompt. Three questions:

- How sure is a method's mean? ``hierarchical_bootstrap``: resample seeds, then prompts
  within each drawn seed, then samples within each drawn prompt (every level with
  replacement), and take the percentile interval of the resampled means.
- Does method A beat method B? ``paired_difference``: the same prompts drawn for both (the
  pairing), seeds and samples drawn for each method on its own.
- Is a gain just length? ``length_fit`` / ``length_residual``: the gold reward's residual
  after a least-squares line on completion length, the line fitted on the base's samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "ci_low": self.low, "ci_high": self.high}


def _as_3d(r) -> np.ndarray:
    arr = np.asarray(r, dtype=float)
    if arr.ndim != 3 or 0 in arr.shape:
        raise ValueError(
            f"rewards must be a non-empty [seed, prompt, sample] array, got {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise ValueError("rewards hold a non-finite value")
    return arr


def resample_means(r: np.ndarray, rng: np.random.Generator, prompts=None) -> float:
    """The mean of one hierarchical resample of ``r[seed, prompt, sample]``.

    ``prompts``: the prompt indices to use for every drawn seed (a paired comparison draws
    them once for both methods); None draws them per seed (nested).
    """
    n_seed, n_prompt, n_sample = r.shape
    seeds = rng.integers(0, n_seed, n_seed)
    if prompts is None:
        prompts = rng.integers(0, n_prompt, (n_seed, n_prompt))
    else:
        prompts = np.broadcast_to(prompts, (n_seed, n_prompt))
    samples = rng.integers(0, n_sample, (n_seed, n_prompt, n_sample))
    picked = r[seeds[:, None, None], prompts[:, :, None], samples]
    return float(picked.mean())


def _interval(mean: float, draws: list[float], level: float) -> Interval:
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return Interval(mean, float(lo), float(hi))


def hierarchical_bootstrap(
    r, n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> Interval:
    """Mean of ``r[seed, prompt, sample]`` and its percentile interval over seeds, prompts
    and samples (resampled in that order, nested)."""
    arr = _as_3d(r)
    rng = np.random.default_rng(seed)
    draws = [resample_means(arr, rng) for _ in range(n_resamples)]
    return _interval(float(arr.mean()), draws, level)


def paired_difference(
    a, b, n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> Interval:
    """Mean of A minus mean of B on the same prompts, with its interval: each resample draws
    the prompts once for both, then seeds and samples for each method on its own. ``a`` and
    ``b`` may differ in seeds and samples, not in prompts."""
    a, b = _as_3d(a), _as_3d(b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"A has {a.shape[1]} prompts, B {b.shape[1]}: a paired difference needs the same"
        )
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_resamples):
        prompts = rng.integers(0, a.shape[1], a.shape[1])
        draws.append(resample_means(a, rng, prompts) - resample_means(b, rng, prompts))
    return _interval(float(a.mean() - b.mean()), draws, level)


def length_fit(lengths, gold) -> tuple[float, float]:
    """(slope, intercept) of the least-squares line gold ~ length (numpy.polyfit)."""
    x, y = np.asarray(lengths, dtype=float), np.asarray(gold, dtype=float)
    if x.shape != y.shape or x.size < 2:
        raise ValueError(f"need as many lengths as rewards (2 or more), got {x.size}, {y.size}")
    if np.ptp(x) == 0:
        raise ValueError("every completion has the same length: no line can be fitted")
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), float(intercept)


def length_residual(lengths, gold, fit: tuple[float, float]) -> np.ndarray:
    """gold - (slope * length + intercept): the reward length does not explain."""
    slope, intercept = fit
    return np.asarray(gold, dtype=float) - (slope * np.asarray(lengths, dtype=float) + intercept)


def rewards_array(runs: Sequence[Sequence[dict]], key: str, prompts: Sequence[str]) -> np.ndarray:
    """``r[seed, prompt, sample]`` from each seed's completion rows (dicts with ``prompt``
    and ``key``; a value or a callable of the row), prompts in the given order. Every seed
    must hold the same number (>= 1) of samples for every prompt."""
    out = []
    for s, rows in enumerate(runs):
        per: dict[str, list[float]] = {p: [] for p in prompts}
        for row in rows:
            if row["prompt"] in per:
                per[row["prompt"]].append(float(key(row) if callable(key) else row[key]))
        sizes = {len(v) for v in per.values()}
        if len(sizes) != 1 or 0 in sizes:
            raise ValueError(f"seed {s}: samples per prompt differ or are missing: {sorted(sizes)}")
        out.append([per[p] for p in prompts])
    sizes = {len(o[0]) for o in out}
    if len(sizes) != 1:
        raise ValueError(f"seeds hold different numbers of samples per prompt: {sorted(sizes)}")
    return np.asarray(out, dtype=float)


def first_reach(kl: Sequence[float], values: Sequence[float], level: float) -> float:
    """A curve's value when its KL first reaches ``level``: the points in training order,
    linear between the two points whose KL first brackets it; NaN when it never does (a
    seed that stopped short). KL need not rise at every step."""
    xs, ys = np.asarray(kl, dtype=float), np.asarray(values, dtype=float)
    if xs.shape != ys.shape or xs.ndim != 1:
        raise ValueError(f"a curve needs as many KL values as values, got {xs.shape}, {ys.shape}")
    for i in range(len(xs)):
        if xs[i] == level:
            return float(ys[i])
        if i and min(xs[i - 1], xs[i]) < level < max(xs[i - 1], xs[i]):
            w = (level - xs[i - 1]) / (xs[i] - xs[i - 1])
            return float(ys[i - 1] + w * (ys[i] - ys[i - 1]))
    return float("nan")


def seeds_at_kl(curves: Sequence[tuple[Sequence[float], Sequence[float]]], levels) -> np.ndarray:
    """``v[seed, level]``: each seed's curve (KL, values) read at each KL level by
    ``first_reach`` (NaN where a seed never reaches it), so seeds whose snapshots fell at
    different KL can be averaged at the same KL."""
    return np.asarray([[first_reach(k, v, lv) for lv in levels] for k, v in curves], dtype=float)
