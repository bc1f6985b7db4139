"""The evaluation's statistics, pure of any model: 95% bootstrap intervals of a mean, a
reward summary (mean, std, interval, n), the reward block of a table (overall and per
dataset) and the paired difference of two models on the same prompts.

numpy only (no torch: the results renderer imports this), yet number for number what the
torch code before it computed, so no metrics file written before moves (tested against
torch): the resamples are torch's draws (torch seeded a Mersenne Twister with the seed,
``init_genrand``, and drew each index as ``next 32-bit output % n`` in row-major order;
numpy's legacy ``RandomState`` is the same generator, seeded the same way, and
``randint(0, 2**32, dtype=uint32)`` returns its raw outputs); the means add in the order of
torch's CPU sum (``torch_sums``: its cascade of 4 accumulators of 4-lane vectors, the AVX2
kernel), the std is torch's two-pass sum, and the quantiles interpolate as torch's ``lerp``
(a fused multiply-add, done exactly with fractions).

With several samples per prompt (``per_prompt`` > 1) the prompt is the unit: each prompt's
samples are averaged first, and the mean, std, interval and n are those of the prompt means.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from superhf.errors import MissingInputError

# ------------------------------------------------------------------------- torch's arithmetic
LANES, ILP, LEVELS = 4, 4, 4  # torch's AVX2 Vectorized<double>, accumulators, cascade levels


def _cascade(vectors: np.ndarray) -> list[np.ndarray]:
    """torch's ``multi_row_sum``: ``vectors[:, v]`` added into ILP accumulators (vector v to
    accumulator v % ILP), partial sums moved up LEVELS levels every 2**power rows."""
    rows = vectors.shape[1] // ILP
    power = max(4, math.ceil(math.log2(rows)) // LEVELS if rows > 1 else 0)
    step, mask = 1 << power, (1 << power) - 1
    acc = np.zeros((LEVELS, ILP, *vectors[:, 0].shape))
    i = 0
    while i + step <= rows:
        for _ in range(step):
            acc[0] = acc[0] + vectors[:, ILP * i : ILP * i + ILP].swapaxes(0, 1)
            i += 1
        for j in range(1, LEVELS):
            acc[j] = acc[j] + acc[j - 1]
            acc[j - 1] = 0.0
            if i & (mask << (j * power)):
                break
    while i < rows:
        acc[0] = acc[0] + vectors[:, ILP * i : ILP * i + ILP].swapaxes(0, 1)
        i += 1
    for j in range(1, LEVELS):
        acc[0] = acc[0] + acc[j]
    return list(acc[0])


def torch_sums(a: np.ndarray) -> np.ndarray:
    """The sum of each row of ``a`` (float64, 2-D) added in the order of torch's CPU
    ``cascade_sum`` for a contiguous inner reduction, so the rounding is the same."""
    n_rows, n = a.shape
    if n < LANES:  # torch's scalar path: one accumulator, in order
        return sum((a[:, k] for k in range(n)), np.zeros(n_rows))
    n_vec = n // LANES
    vectors = a[:, : n_vec * LANES].reshape(n_rows, n_vec, LANES)
    part = _cascade(vectors)
    for v in range(n_vec // ILP * ILP, n_vec):  # vectors past the last group of ILP
        part[0] = part[0] + vectors[:, v]
    for k in range(1, ILP):
        part[0] = part[0] + part[k]
    total = np.zeros(n_rows)
    for k in range(n_vec * LANES, n):  # the scalar tail, then the lanes
        total = total + a[:, k]
    for lane in range(LANES):
        total = total + part[0][:, lane]
    return total


def torch_quantile(values: np.ndarray, q: float) -> float:
    """torch.quantile (linear): torch's ``lerp``, a fused multiply-add, rounded once."""
    ordered = np.sort(values)
    rank = q * (len(ordered) - 1)
    low = math.floor(rank)
    w = rank - low
    a, b = float(ordered[low]), float(ordered[math.ceil(rank)])
    coeff, base = (w, a) if abs(w) < 0.5 else (w - 1.0, b)
    return float(Fraction(coeff) * Fraction(b - a) + Fraction(base))


def resample_indices(n: int, samples: int, seed: int) -> np.ndarray:
    """``samples`` rows of ``n`` indices in [0, n), the draws torch's seeded CPU generator
    made for ``torch.randint(0, n, (samples, n))``."""
    rng = np.random.RandomState(seed % 2**32)
    raw = rng.randint(0, 2**32, size=samples * n, dtype=np.uint32)
    return (raw % np.uint32(n)).astype(np.int64).reshape(samples, n)


def mean(values: Sequence[float]) -> float:
    arr = np.asarray(values, dtype=np.float64)
    return float(torch_sums(arr[None, :])[0] / len(arr))


def std(values: Sequence[float]) -> float:
    """Sample standard deviation as torch computed it: two passes, the squares in order."""
    m, total = mean(values), 0.0
    for x in values:
        total += (float(x) - m) * (float(x) - m)
    return math.sqrt(total / (len(values) - 1))


# ----------------------------------------------------------------------------- statistics
def bootstrap_ci(values: Sequence[float], samples: int, seed: int) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean."""
    if len(values) < 2:
        v = values[0] if values else float("nan")
        return v, v
    arr = np.asarray(values, dtype=np.float64)
    means = torch_sums(arr[resample_indices(len(arr), samples, seed)]) / len(arr)
    return torch_quantile(means, 0.025), torch_quantile(means, 0.975)


def unit_means(values: Sequence[float], per_prompt: int) -> list[float]:
    """The mean of each prompt's ``per_prompt`` consecutive values (rows prompt-major: the
    samples of the first prompt, then of the second, ...); the values themselves for 1."""
    if per_prompt == 1:
        return list(values)
    if len(values) % per_prompt:
        raise ValueError(f"{len(values)} values are not {per_prompt} samples per prompt")
    return [sum(values[i : i + per_prompt]) / per_prompt for i in range(0, len(values), per_prompt)]


def summary(values: Sequence[float], samples: int, seed: int, per_prompt: int = 1) -> dict:
    """Mean, standard deviation, 95% bootstrap interval and n of one reward column; with
    ``per_prompt`` > 1 samples per prompt, of the prompt means (n = prompts)."""
    units = unit_means(values, per_prompt)
    lo, hi = bootstrap_ci(units, samples, seed)
    out = {
        "mean": mean(units),
        "std": std(units) if len(units) > 1 else 0.0,
        "ci_low": lo,
        "ci_high": hi,
        "n": len(units),
    }
    if per_prompt > 1:
        out["samples_per_prompt"] = per_prompt
    return out


def reward_block(rows: list[dict], samples: int, seed: int, per_prompt: int = 1) -> dict:
    """The proxy and gold summaries of scored rows, overall and per ``dataset`` (rows
    prompt-major, ``per_prompt`` consecutive rows per prompt)."""
    out: dict[str, Any] = {}
    for which in ("proxy", "gold"):
        vals = [r[which] for r in rows]
        out[which] = summary(vals, samples, seed, per_prompt)
        per = {}
        for ds in sorted({r["dataset"] for r in rows}):
            ds_vals = [r[which] for r in rows if r["dataset"] == ds]
            per[ds] = summary(ds_vals, samples, seed, per_prompt)
        out[which]["per_dataset"] = per
    return out


def paired(rows: list[dict], a: str, b: str, samples: int = 1000, seed: int = 0) -> dict:
    """Model ``a`` minus model ``b`` on the same test prompts (``eval_completions.jsonl``
    rows): mean difference of proxy and gold with a paired 95% bootstrap interval, and the
    share of prompts where the two completions are identical. With several samples per
    prompt (rows with ``sample``), the first sample of each prompt."""
    by = {m: {} for m in (a, b)}
    for r in rows:
        if r["model"] in by and r.get("sample", 0) == 0:
            by[r["model"]][r["prompt"]] = r
    prompts = [p for p in by[a] if p in by[b]]
    if not prompts:
        raise MissingInputError(f"no test prompt has completions of both {a!r} and {b!r}")
    out: dict[str, Any] = {"n": len(prompts)}
    for which in ("proxy", "gold"):
        d = [by[a][p][which] - by[b][p][which] for p in prompts]
        lo, hi = bootstrap_ci(d, samples, seed)
        out[which] = {"mean": sum(d) / len(d), "ci_low": lo, "ci_high": hi}
    same = sum(by[a][p]["completion"] == by[b][p]["completion"] for p in prompts)
    out["same_completion"] = same / len(prompts)
    return out
