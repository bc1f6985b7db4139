"""The evaluation's statistics, pure of any model: 95% bootstrap intervals of a mean, a
reward summary (mean, std, interval, n), the reward block of a table (overall and per
dataset) and the paired difference of two models on the same prompts.

The bootstrap draws its resamples with torch's CPU generator (seeded), as it always has, so
the intervals in every metrics file stay the same; torch is the only library imported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from superhf.errors import MissingInputError


def bootstrap_ci(values: Sequence[float], samples: int, seed: int) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean."""
    if len(values) < 2:
        v = values[0] if values else float("nan")
        return v, v
    t = torch.tensor(values, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(values), (samples, len(values)), generator=g)
    means = t[idx].mean(1)
    return float(means.quantile(0.025)), float(means.quantile(0.975))


def summary(values: Sequence[float], samples: int, seed: int) -> dict[str, float]:
    """Mean, standard deviation, 95% bootstrap interval and n of one reward column."""
    lo, hi = bootstrap_ci(values, samples, seed)
    t = torch.tensor(values, dtype=torch.float64)
    return {
        "mean": float(t.mean()),
        "std": float(t.std()) if len(values) > 1 else 0.0,
        "ci_low": lo,
        "ci_high": hi,
        "n": len(values),
    }


def reward_block(rows: list[dict], samples: int, seed: int) -> dict[str, Any]:
    """The proxy and gold summaries of scored rows, overall and per ``dataset``."""
    out: dict[str, Any] = {}
    for which in ("proxy", "gold"):
        vals = [r[which] for r in rows]
        out[which] = summary(vals, samples, seed)
        per = {}
        for ds in sorted({r["dataset"] for r in rows}):
            per[ds] = summary([r[which] for r in rows if r["dataset"] == ds], samples, seed)
        out[which]["per_dataset"] = per
    return out


def paired(rows: list[dict], a: str, b: str, samples: int = 1000, seed: int = 0) -> dict:
    """Model ``a`` minus model ``b`` on the same test prompts (``eval_completions.jsonl``
    rows): mean difference of proxy and gold with a paired 95% bootstrap interval, and the
    share of prompts where the two completions are identical."""
    by = {m: {r["prompt"]: r for r in rows if r["model"] == m} for m in (a, b)}
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
