"""The reading's comparison at equal KL: best-of-n's pool against each trained method's
seeds, as gains over each curve's own base point (the pool is on the first 128 evaluation
prompts, the trained methods' curves on all 320, so their levels differ by the prompts).

Best-of-n: each prompt's expected proxy and gold of best-of-n (the unbiased estimate over
its pool of 256 draws, `pieces/bon_curve_*.json`) read at KL = its bound log n - (n-1)/n,
linear between the n either side (`study_stats.first_reach`), minus the same prompt's n = 1;
95% bootstrap over prompts (paired: the same prompts at both n). The bound is an upper bound
on best-of-n's KL, so the pool's true KL at a level is at most the level: the comparison at
the bound favours the trained method.

A trained method, per seed: its curve (`metrics/`, `seeds/seedK/` overoptimisation.json) read
at the same KL, minus its step-0 point (the base's samples), with a normal 95% interval from
the points' own intervals (each point an independent draw of samples: half-width / 1.96 as
its standard error, combined with the interpolation weights). Run: python results/hh/equal_kl.py
"""

import json
from pathlib import Path

import numpy as np

from superhf.study_stats import first_reach

HH = Path(__file__).parent
LEVELS = (0.5, 1.0, 2.0, 4.0, 8.0)
RUNS = {"seed 0": HH / "metrics", "seed 1": HH / "seeds/seed1", "seed 2": HH / "seeds/seed2"}


def pool() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """KL bound per n, and r[n, prompt] per reward over every range of the pool, in order."""
    ranges = sorted(
        (r for f in HH.glob("pieces/bon_curve_*.json")
         for r in json.loads(f.read_text())["snapshots"]["best_of_n"]),
        key=lambda r: r["start"],
    )  # fmt: skip
    stops = [r["start"] for r in ranges[1:]] + [ranges[-1]["of"]]
    if [r["start"] for r in ranges][0] != 0 or any(r["stop"] != s for r, s in zip(ranges, stops)):
        raise SystemExit("the pool's ranges do not cover its prompts once, in order")
    kl = np.array([p["kl"] for p in ranges[0]["curve"]])
    rewards = {w: np.concatenate([[p[w] for p in r["curve"]] for r in ranges], axis=1)
               for w in ("proxy", "gold")}  # fmt: skip
    return kl, rewards


def at_level(kl: np.ndarray, per_n: np.ndarray, level: float) -> np.ndarray:
    """Each prompt's value at KL = level (first_reach along n), NaN past the last n."""
    return np.array([first_reach(kl, per_n[:, j], level) for j in range(per_n.shape[1])])


def bon_gain(kl, per_n, level, n_resamples=1000, seed=0) -> str:
    gain = at_level(kl, per_n, level) - per_n[0]
    if np.isnan(gain).any():
        return "-"
    rng = np.random.default_rng(seed)
    draws = [gain[rng.integers(0, gain.size, gain.size)].mean() for _ in range(n_resamples)]
    lo, hi = np.quantile(draws, [0.025, 0.975])
    return f"{gain.mean():+.3f} [{lo:+.3f}, {hi:+.3f}]"


def method_gain(points: list[dict], which: str, level: float) -> str:
    kl = [p["kl"] for p in points]
    mean = first_reach(kl, [p[f"{which}_mean"] for p in points], level)
    if np.isnan(mean):
        return "-"
    se = [(p[f"{which}_ci_high"] - p[f"{which}_ci_low"]) / (2 * 1.96) for p in points]
    var = None
    for i in range(1, len(kl)):  # the same bracket first_reach took
        if kl[i] == level or (min(kl[i - 1], kl[i]) < level < max(kl[i - 1], kl[i])):
            w = 1.0 if kl[i] == level else (level - kl[i - 1]) / (kl[i] - kl[i - 1])
            var = ((1 - w) * se[i - 1]) ** 2 + (w * se[i]) ** 2 + se[0] ** 2
            break
    gain, half = mean - points[0][f"{which}_mean"], 1.96 * np.sqrt(var)
    return f"{gain:+.3f} [{gain - half:+.3f}, {gain + half:+.3f}]"


kl, rewards = pool()
print(f"best-of-n pool: {rewards['gold'].shape[1]} prompts, n = 1 .. {2 ** (len(kl) - 1)}")
for which in ("gold", "proxy"):
    print(f"\n{which}: gain over the curve's own base point at the same KL")
    print("| KL | best-of-n (bound) | " + " | ".join(RUNS) + " |")
    print("|---|---|" + "---|" * len(RUNS))
    curves = {
        name: json.loads((folder / "overoptimisation.json").read_text())
        for name, folder in RUNS.items()
    }
    for method in [m for m in curves["seed 0"] if m not in ("test_prompts", "best_of_n")]:
        for level in LEVELS:
            cells = [
                method_gain(c[method], which, level) if method in c else "-"
                for c in curves.values()
            ]
            print(f"| {level:g} | {bon_gain(kl, rewards[which], level)} | {' | '.join(cells)} |"
                  + (f" {method}" if level == LEVELS[0] else ""))  # fmt: skip
