"""The figures of stage ``report``: training curves, proxy vs gold reward, benchmarks."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

log = logging.getLogger(__name__)
MODELS = ("base", "best_of_n", "superhf", "rlhf")


def read_curve(path: str | Path) -> dict[str, list[float]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path}: no rows")
    return {k: [float(r[k]) for r in rows] for k in rows[0]}


def training_figure(curves: dict[str, dict[str, list[float]]], out: Path) -> None:
    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.6), squeeze=False)
    for ax, (name, c) in zip(axes[0], curves.items()):
        ax.plot(c["step"], c["reward_mean"], alpha=0.35, label="mean reward")
        ax.plot(c["step"], c["reward_ema"], lw=2, label="EMA (alpha 0.9)")
        ax.set_title(f"{name}: reward during training")
        ax.set_xlabel("superbatch" if name == "SuperHF" else "PPO step")
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
        err = [[ev[m][which]["mean"] - ev[m][which]["ci_low"] for m in names],
               [ev[m][which]["ci_high"] - ev[m][which]["mean"] for m in names]]  # fmt: skip
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
    from superhf.config import TABLE4_COLUMNS as COLUMNS

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
