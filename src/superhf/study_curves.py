"""The hh study's over-optimisation curves over training seeds: each method's curve per
seed (``overoptimisation.json`` of the main run and of each seed run), read at the same KL
to the base (``superhf.study_stats.seeds_at_kl``) and rendered as Markdown (no model, no
torch)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from superhf.study_stats import seeds_at_kl

UNSEEDED = ("base", "best_of_n")  # measured once: no training seed moves them
KL_LEVELS = (0.5, 1.0, 2.0, 4.0, 8.0)  # nats: the hh profile's snapshot grid (training KL)


def seed_curves(overopts: Sequence[dict]) -> dict[str, list[list[dict]]]:
    """Method -> one list of curve points per run that has it (``overoptimisation.json`` of
    the main run, then of each seed run); best-of-n's curve from the main run only."""
    out: dict[str, list[list[dict]]] = {}
    for i, overopt in enumerate(overopts):
        for method, pts in (overopt or {}).items():
            if isinstance(pts, list) and pts and (i == 0 or method not in UNSEEDED):
                out.setdefault(method, []).append(pts)
    return out


def _spread(values: np.ndarray) -> str:
    """Mean over the seeds that reach a KL, and their range; '-' when none does."""
    v = values[np.isfinite(values)]
    if not v.size:
        return "-"
    return f"{v.mean():.3f}" + (f" ({v.min():.3f} .. {v.max():.3f})" if v.size > 1 else "")


def seed_curves_table(curves: dict[str, list[list[dict]]], levels=KL_LEVELS) -> str:
    """Each trained method's proxy and gold at the same KL to the base in every seed (each
    seed read where its curve first reaches the KL, ``study_stats.seeds_at_kl``): the mean
    over the seeds that reach it and their range, and how many do. Then best-of-n's pool
    read the same way at its bound ``log n - (n-1)/n`` (an upper bound on its KL, so it
    stands at no more than that KL): one pool, no seeds."""
    lines = [
        "| method | KL to base | seeds reaching it | proxy: mean (min .. max) | "
        "gold: mean (min .. max) |",
        "|---|---|---|---|---|",
    ]
    methods = [m for m in curves if m not in UNSEEDED]
    methods += [m for m in curves if m == "best_of_n"]
    for method in methods:
        runs = curves[method]
        v = {
            w: seeds_at_kl(
                [([p["kl"] for p in r], [p[f"{w}_mean"] for p in r]) for r in runs], levels
            )
            for w in ("proxy", "gold")
        }
        for j, level in enumerate(levels):
            reach = int(np.isfinite(v["gold"][:, j]).sum())
            if method == "best_of_n":
                kl, seeds = f"<= {level:g} (bound)", "the pool" if reach else "-"
            else:
                kl, seeds = f"{level:g}", f"{reach} of {len(runs)}"
            lines.append(
                f"| {method} | {kl} | {seeds} | "
                f"{_spread(v['proxy'][:, j])} | {_spread(v['gold'][:, j])} |"
            )
    return "\n".join(lines) + "\n"
