"""Stage ``report``: figures from the training curves and the evaluation.

    python -m superhf.stages.report --params params.yaml --superhf-curve metrics/superhf_curve.csv \
        --rlhf-curve metrics/rlhf_curve.csv --eval metrics/eval.json --out reports \
        --overopt metrics/overoptimisation.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from superhf.figures import (
    MODELS,
    benchmark_figure,
    overopt_figure,
    read_curve,
    reward_figure,
    training_figure,
)
from superhf.io import atomic_path
from superhf.params import load_section, read_params
from superhf.tracking import TrackingConfig, stage_run

log = logging.getLogger(__name__)


def main(argv: Iterable[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", default="params.yaml")
    for name in ("superhf-curve", "rlhf-curve", "eval", "out"):
        ap.add_argument(f"--{name}", required=True)
    ap.add_argument("--overopt", help="metrics/overoptimisation.json (evaluate stage)")
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
        if args.overopt:
            overopt_figure(json.loads(Path(args.overopt).read_text()), tmp / "overoptimisation.png")
        for png in sorted(tmp.glob("*.png")):
            run.log_artifact(png)
    log.info("figures in %s", args.out)


if __name__ == "__main__":
    main()
