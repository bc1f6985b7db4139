"""``superhf.stats`` without torch draws the resamples torch drew (issue 27): the same
indices, the same intervals, the same summaries, so no metrics file written before moves."""

from __future__ import annotations

import json
import random

import pytest
import torch
from conftest import REPO

from superhf.stats import bootstrap_ci, resample_indices, reward_block, summary


def torch_bootstrap_ci(values, samples, seed):
    """The code of superhf.stats before issue 27 (commit 535aa09), verbatim."""
    if len(values) < 2:
        v = values[0] if values else float("nan")
        return v, v
    t = torch.tensor(values, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(values), (samples, len(values)), generator=g)
    means = t[idx].mean(1)
    return float(means.quantile(0.025)), float(means.quantile(0.975))


def torch_summary(values, samples, seed):
    lo, hi = torch_bootstrap_ci(values, samples, seed)
    t = torch.tensor(values, dtype=torch.float64)
    std = float(t.std()) if len(values) > 1 else 0.0
    return {"mean": float(t.mean()), "std": std, "ci_low": lo, "ci_high": hi, "n": len(values)}


@pytest.mark.parametrize("n,seed", [(2, 0), (3, 1), (16, 0), (64, 0), (64, 7), (320, 0), (999, 3)])
def test_the_indices_are_torchs(n: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    want = torch.randint(0, n, (50, n), generator=g).numpy()
    assert (resample_indices(n, 50, seed) == want).all()


@pytest.mark.parametrize("case", range(40))
def test_intervals_and_summaries_are_the_old_ones(case: int) -> None:
    rng = random.Random(case)
    n = rng.choice([2, 5, 16, 40, 64, 128, 320])
    values = [rng.gauss(0.0, 1.0) for _ in range(n)]
    seed = rng.choice([0, 1, 42])
    assert bootstrap_ci(values, 1000, seed) == torch_bootstrap_ci(values, 1000, seed)
    assert summary(values, 1000, seed) == torch_summary(values, 1000, seed)


def test_the_committed_harmless_numbers_come_out_again() -> None:
    """Every reward summary of results/harmless (written with torch) from its completions."""
    folder = REPO / "results" / "harmless" / "metrics"
    ev = json.loads((folder / "eval.json").read_text())
    rows = [json.loads(x) for x in (folder / "eval_completions.jsonl").read_text().splitlines()]
    for name in ("base", "superhf", "rlhf", "best_of_n"):
        block = reward_block([r for r in rows if r["model"] == name], 1000, 0)
        for which in ("proxy", "gold"):
            want = {k: v for k, v in ev[name][which].items()}
            assert block[which] == want, (name, which)
