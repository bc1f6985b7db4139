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
at the same KL (linear between the two points either side, as `first_reach`), minus its
step-0 point (the base's samples), with a normal 95% interval from the points' own intervals
(each point an independent draw of samples: half-width / 1.96 as its standard error; the
gain is a weighted sum of points, so its variance is the sum of squared weights times
squared errors). Where the first point past the base lies beyond the level, the value is a
line from the base, not a measurement (marked *). Then best-of-n minus each seed, the two
independent: a normal 95% interval from both errors.
Run: python results/hh/equal_kl.py (output: equal_kl.md, included in README.md)
"""

import json
from pathlib import Path

import numpy as np

from superhf.study_stats import first_reach

HH = Path(__file__).parent
LEVELS = (0.5, 1.0, 2.0, 4.0, 8.0)
RUNS = {"seed 0": HH / "metrics", "seed 1": HH / "seeds/seed1", "seed 2": HH / "seeds/seed2"}
Z = 1.959963984540054


def pool(folder: Path = HH) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """KL bound per n, and r[n, prompt] per reward over every range of the pool, in order."""
    ranges = sorted(
        (r for f in folder.glob("pieces/bon_curve_*.json")
         for r in json.loads(f.read_text())["snapshots"]["best_of_n"]),
        key=lambda r: r["start"],
    )  # fmt: skip
    stops = [r["start"] for r in ranges[1:]] + [ranges[-1]["of"]]
    if ranges[0]["start"] != 0 or any(r["stop"] != s for r, s in zip(ranges, stops)):
        raise SystemExit("the pool's ranges do not cover its prompts once, in order")
    kl = np.array([p["kl"] for p in ranges[0]["curve"]])
    rewards = {w: np.concatenate([[p[w] for p in r["curve"]] for r in ranges], axis=1)
               for w in ("proxy", "gold")}  # fmt: skip
    return kl, rewards


def bon_gain(kl, per_n, level, n_resamples=1000, seed=0):
    """(mean, low, high, se) of the pool's per-prompt gain at ``level`` over n = 1, or None
    past its last n; se from the bootstrap's draws."""
    gain = np.array([first_reach(kl, per_n[:, j], level) for j in range(per_n.shape[1])])
    gain = gain - per_n[0]
    if np.isnan(gain).any():
        return None
    rng = np.random.default_rng(seed)
    draws = [gain[rng.integers(0, gain.size, gain.size)].mean() for _ in range(n_resamples)]
    lo, hi = np.quantile(draws, [0.025, 0.975])
    return float(gain.mean()), float(lo), float(hi), float(np.std(draws, ddof=1))


def gain_weights(kl, level):
    """Weights c on a curve's points with sum(c * y) = the curve at ``level`` (first_reach's
    bracket) minus its first point; (c, whether the bracket starts at the first point);
    None where the curve never reaches ``level``."""
    c = np.zeros(len(kl))
    for i in range(len(kl)):
        if kl[i] == level or (i and min(kl[i - 1], kl[i]) < level < max(kl[i - 1], kl[i])):
            if kl[i] == level:
                c[i] += 1.0
            else:
                w = (level - kl[i - 1]) / (kl[i] - kl[i - 1])
                c[i - 1] += 1 - w
                c[i] += w
            c[0] -= 1.0
            return c, i <= 1 and kl[i] != level
    return None


def method_gain(points, which, level):
    """(mean, se, interpolated from the base) of a seed's gain at ``level``, or None."""
    got = gain_weights([p["kl"] for p in points], level)
    if got is None:
        return None
    c, from_base = got
    y = np.array([p[f"{which}_mean"] for p in points])
    se = np.array([(p[f"{which}_ci_high"] - p[f"{which}_ci_low"]) / (2 * Z) for p in points])
    return float(c @ y), float(np.sqrt(np.sum(c**2 * se**2))), from_base


def cell(mean, half, star=""):
    return f"{mean:+.3f} [{mean - half:+.3f}, {mean + half:+.3f}]{star}"


def tables(folder: Path = HH) -> str:
    kl, rewards = pool(folder)
    curves = {
        name: json.loads((f / "overoptimisation.json").read_text())
        for name, f in ({k: folder / v.relative_to(HH) for k, v in RUNS.items()}).items()
    }
    out = []
    for which in ("gold", "proxy"):
        for method in [m for m in curves["seed 0"] if m not in ("test_prompts", "best_of_n")]:
            seeds = [n for n, c in curves.items() if method in c]
            out.append(f"#### {method}, {which}: gain over the curve's own base at the same KL\n")
            out.append("| KL | best-of-n (bound) | " + " | ".join(seeds) + " | "
                       + " | ".join(f"best-of-n - {s}" for s in seeds) + " |")  # fmt: skip
            out.append("|---|---|" + "---|" * 2 * len(seeds))
            for level in LEVELS:
                b = bon_gain(kl, rewards[which], level)
                gains = [method_gain(curves[s][method], which, level) for s in seeds]
                row = [
                    f"{level:g}",
                    "-" if b is None else f"{b[0]:+.3f} [{b[1]:+.3f}, {b[2]:+.3f}]",
                ]
                row += ["-" if g is None else cell(g[0], Z * g[1], "*" if g[2] else "")
                        for g in gains]  # fmt: skip
                row += ["-" if b is None or g is None else
                        cell(b[0] - g[0], Z * np.hypot(b[3], g[1])) for g in gains]  # fmt: skip
                out.append("| " + " | ".join(row) + " |")
            out.append("")
    note = ("\n\\* a line from the base to the curve's first point past the base, which lies "
            "beyond this KL: not a measurement at it.\n")  # fmt: skip
    return "\n".join(out) + note


if __name__ == "__main__":
    print(tables(), end="")
