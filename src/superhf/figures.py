"""The figures of stage ``report``: training curves, proxy vs gold reward, benchmarks."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from superhf.errors import BadInputError, MissingInputError  # noqa: E402
from superhf.overopt import signed_sqrt  # noqa: E402
from superhf.study_stats import seeds_at_kl  # noqa: E402

MODELS = ("base", "best_of_n", "superhf", "rlhf", "rloo", "grpo")


def read_curve(path: str | Path) -> dict[str, list[float]]:
    """A training curve (CSV of numbers with a header); a bad file is an error naming it."""
    if not Path(path).is_file():
        raise MissingInputError(f"training curve not found: {path}")
    with open(path, newline="", encoding="utf-8") as f:
        try:
            rows = list(csv.DictReader(f))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise BadInputError(f"{path}: not a CSV file ({exc})") from None
    if not rows:
        raise BadInputError(f"{path}: no rows")
    try:
        return {k: [float(r[k]) for r in rows] for k in rows[0]}
    except (TypeError, ValueError) as exc:
        raise BadInputError(f"{path}: a value is not a number ({exc})") from None


def training_figure(curves: dict[str, dict[str, list[float]]], out: Path) -> None:
    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.6), squeeze=False)
    for ax, (name, c) in zip(axes[0], curves.items()):
        ax.plot(c["step"], c["reward_mean"], alpha=0.35, label="mean reward")
        ax.plot(c["step"], c["reward_ema"], lw=2, label="EMA (alpha 0.9)")
        ax.set_title(f"{name}: reward during training")
        ax.set_xlabel("PPO step" if name == "RLHF (PPO)" else "superbatch")
        ax.set_ylabel("proxy reward")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def reward_figure(ev: dict, out: Path) -> None:
    names = [m for m in MODELS if m in ev]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    width = 0.38
    for k, which in enumerate(("proxy", "gold")):
        means = [ev[m][which]["mean"] for m in names]
        err = [
            [ev[m][which]["mean"] - ev[m][which]["ci_low"] for m in names],
            [ev[m][which]["ci_high"] - ev[m][which]["mean"] for m in names],
        ]
        xs = [i + (k - 0.5) * width for i in range(len(names))]
        ax.bar(xs, means, width, yerr=err, capsize=3, label=f"{which} reward model")
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("mean reward on test prompts (95% CI)")
    ax.set_title("Proxy vs gold reward per model")
    ax.axhline(0, color="grey", lw=0.5)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def benchmark_figure(ev: dict, out: Path) -> None:
    from superhf.capabilities.columns import TABLE4_COLUMNS as COLUMNS

    # models with the standard columns (a paper-protocol-only run has none: an empty plot)
    names = [m for m in MODELS if "tweets" in ev.get(m, {}).get("benchmarks", {})]
    fig, ax = plt.subplots(figsize=(9, 3.6))
    width = 0.8 / max(1, len(names))
    for k, m in enumerate(names):
        vals = []
        for _, keys in COLUMNS:
            v = ev[m]["benchmarks"]
            for key in keys:
                v = v[key]
            vals.append(v)
        ax.bar([i + k * width for i in range(len(COLUMNS))], vals, width, label=m)
    ax.set_xticks(
        [i + width * (len(names) - 1) / 2 for i in range(len(COLUMNS))], [c for c, _ in COLUMNS]
    )
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy / F1")
    ax.set_title("Benchmarks (standard protocol: the tasks the paper's column names say)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


OVEROPT_STYLE = {
    "superhf": ("SuperHF", "C0"),
    "rlhf": ("PPO", "C1"),
    "rloo": ("RLOO", "C3"),
    "grpo": ("GRPO", "C4"),
    "best_of_n": ("best-of-n", "C2"),
}
KL_AXIS = (  # three lines, to fit under one of two panels
    "sqrt KL(policy || base) [nats^0.5], signed. Trained methods: estimate from samples\n"
    "of the unwarped policy (T=1, no top-p/top-k, no penalty), bars +-1.96 SE; best-of-n (<):\n"
    "upper bound sqrt(log n - (n-1)/n) (Beirami et al. 2024) over the unwarped base"
)


def _kl_bars(pts: list[dict]) -> list[list[float]] | None:
    """Horizontal error bars on the signed-sqrt axis: KL +- 1.96 SE, mapped (None: no SE)."""
    if not any(p.get("kl_se") for p in pts):
        return None
    lo, hi = [], []
    for p in pts:
        se = p.get("kl_se") or 0.0
        lo.append(p["sqrt_kl"] - signed_sqrt(p["kl"] - 1.96 * se))
        hi.append(signed_sqrt(p["kl"] + 1.96 * se) - p["sqrt_kl"])
    return [lo, hi]


def overopt_figure(curves: dict, out: Path) -> None:
    """Gold (solid) and proxy (dashed) reward against sqrt(KL to base), the frame of Gao et al.
    2022, and against reward-model queries spent; 95% bootstrap intervals as bands. A KL
    estimate gets +-1.96 SE bars; best-of-n's bound gets the marker '<' (the KL is at most
    there)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    for method, pts in curves.items():
        if not isinstance(pts, list) or not pts:
            continue
        label, color = OVEROPT_STYLE.get(method, (method, None))
        bound = any(p.get("kl_kind") == "upper_bound" for p in pts)
        for ax, x in zip(axes, ("sqrt_kl", "reward_queries")):
            xs = [p[x] for p in pts]
            bars = _kl_bars(pts) if x == "sqrt_kl" else None
            for which, ls, mk in (("gold", "-", "o"), ("proxy", "--", "^")):
                ys = [p[f"{which}_mean"] for p in pts]
                mk = "<" if bound and x == "sqrt_kl" else mk
                ax.plot(
                    xs,
                    ys,
                    ls,
                    marker=mk,
                    ms=5,
                    color=color,
                    mfc="none" if which == "proxy" else color,
                    label=f"{label} {which}" + (" (KL bound)" if bound else ""),
                )
                if bars is not None:
                    ax.errorbar(xs, ys, xerr=bars, fmt="none", ecolor=color, alpha=0.5, lw=0.8)
                if which == "gold":
                    ax.fill_between(
                        xs,
                        [p["gold_ci_low"] for p in pts],
                        [p["gold_ci_high"] for p in pts],
                        color=color,
                        alpha=0.15,
                    )
    axes[0].set_xlabel(KL_AXIS, fontsize=7)
    axes[1].set_xlabel("reward-model queries (completions scored)")
    axes[1].set_xscale("symlog", linthresh=1)
    for ax in axes:
        ax.set_ylabel("mean reward on test prompts (unwarped samples)")
        ax.axhline(0, color="grey", lw=0.5)
        ax.axvline(0, color="grey", lw=0.5)
    axes[0].set_title("Over-optimisation: gold (solid) vs proxy (dashed)")
    axes[1].set_title("Against reward-model queries")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def seeds_overopt_figure(seeds: dict[str, list[list[dict]]], out: Path, points: int = 60) -> None:
    """Every training seed's curve (thin) and their mean (thick) against sqrt(KL to base):
    gold on the left, proxy on the right. ``seeds``: method -> one list of curve points per
    seed (``overoptimisation.json``); best-of-n (one curve, KL a bound) is drawn as it is. The
    mean reads each seed at the same KL (``study_stats.seeds_at_kl``: where it first
    reaches it) and stops where the first seed stops."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), sharex=True)
    for method, runs in seeds.items():
        label, color = OVEROPT_STYLE.get(method, (method, None))
        for ax, which in zip(axes, ("gold", "proxy")):
            for pts in runs:
                xs = [p["sqrt_kl"] for p in pts]
                ax.plot(
                    xs,
                    [p[f"{which}_mean"] for p in pts],
                    "-",
                    color=color,
                    lw=0.8,
                    alpha=0.45,
                    marker="<" if method == "best_of_n" else ".",
                    ms=4,
                )
            if method == "best_of_n" or len(runs) < 2:
                ax.plot([], [], color=color, label=f"{label} ({len(runs)} curve)")
                continue
            top = min(max(p["kl"] for p in pts) for pts in runs)
            levels = np.linspace(0.0, np.sqrt(top), points) ** 2  # even in sqrt KL
            curves = [([p["kl"] for p in pts], [p[f"{which}_mean"] for p in pts]) for pts in runs]
            mean = np.nanmean(seeds_at_kl(curves, levels), axis=0)
            ax.plot(
                np.sqrt(levels),
                mean,
                "-",
                color=color,
                lw=2.2,
                label=f"{label}: mean of {len(runs)} seeds (thin: each seed)",
            )
    for ax, which in zip(axes, ("gold", "proxy")):
        ax.set_xlabel("sqrt KL(policy || base) [nats^0.5] (best-of-n: the bound)", fontsize=8)
        ax.set_ylabel(f"mean {which} reward on the evaluation prompts")
        ax.set_title(f"{which.capitalize()} reward against KL, per training seed")
        ax.axhline(0, color="grey", lw=0.5)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
