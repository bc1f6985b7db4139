"""Stage ``report``: figures from the training curves and the evaluation.

    python -m superhf.report --params params.yaml --superhf-curve metrics/superhf_curve.csv \
        --rlhf-curve metrics/rlhf_curve.csv --eval metrics/eval.json --out reports
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from superhf.io import atomic_path  # noqa: E402
from superhf.params import load_section, read_params  # noqa: E402
from superhf.tracking import TrackingConfig, stage_run  # noqa: E402

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

    names = [m for m in MODELS if m in ev and "benchmarks" in ev[m]]
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
    ax.set_title("Benchmarks (paper Table 4 columns)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: Iterable[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", default="params.yaml")
    for name in ("superhf-curve", "rlhf-curve", "eval", "out"):
        ap.add_argument(f"--{name}", required=True)
    args = ap.parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    tracking = load_section("tracking", TrackingConfig, args.params)
    raw = read_params(args.params)
    curves = {"SuperHF": read_curve(args.superhf_curve), "RLHF (PPO)": read_curve(args.rlhf_curve)}
    ev = json.loads(Path(args.eval).read_text())
    main_proc = int(os.environ.get("RANK", "0")) == 0
    with atomic_path(args.out) as tmp, stage_run("report", {}, tracking, main_process=main_proc,
                                                 profile=str(raw.get("profile", "unknown"))) as run:  # fmt: skip
        tmp.mkdir()
        training_figure(curves, tmp / "training_reward.png")
        reward_figure(ev, tmp / "proxy_vs_gold.png")
        if any("benchmarks" in ev.get(m, {}) for m in MODELS):
            benchmark_figure(ev, tmp / "benchmarks.png")
        for png in sorted(tmp.glob("*.png")):
            run.log_artifact(png)
    log.info("figures in %s", args.out)


if __name__ == "__main__":
    main()
