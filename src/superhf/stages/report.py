"""Stage ``report``: figures from the training curves and the evaluation.

    python -m superhf.stages.report --params params.yaml --superhf-curve metrics/superhf_curve.csv \
        --rlhf-curve metrics/rlhf_curve.csv --eval metrics/eval.json --out reports \
        --overopt metrics/overoptimisation.json --curve rloo=metrics/rloo_curve.csv \
        --curve grpo=metrics/grpo_curve.csv
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from superhf.cli import add_params_arg, run, stage_parser
from superhf.errors import BadInputError
from superhf.figures import (
    MODELS,
    OVEROPT_STYLE,
    benchmark_figure,
    overopt_figure,
    read_curve,
    reward_figure,
    training_figure,
)
from superhf.io import atomic_path, read_json
from superhf.params import load_section, read_params
from superhf.tracking import TrackingConfig, stage_run

log = logging.getLogger(__name__)


def parser() -> argparse.ArgumentParser:
    ap = stage_parser(__name__, __doc__)
    add_params_arg(ap)
    ap.add_argument("--superhf-curve", required=True, help="CSV curve of the superhf stage")
    ap.add_argument("--rlhf-curve", required=True, help="CSV curve of the rlhf stage")
    ap.add_argument(
        "--curve",
        action="append",
        default=[],
        help="NAME=FILE: CSV curve of a further training stage (repeat); one of no rows (a "
        "disabled stage) is left out",
    )
    ap.add_argument("--eval", required=True, help="JSON metrics of the evaluate stage")
    ap.add_argument("--out", required=True, help="output folder for the PNG figures")
    ap.add_argument("--overopt", help="metrics/overoptimisation.json of the evaluate stage")
    return ap


def further_curves(items: list[str]) -> dict[str, dict[str, list[float]]]:
    """``--curve NAME=FILE`` items as curves, labelled as in the figures; a file with a
    header and no rows (a disabled stage's) is left out."""
    curves = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise BadInputError(f"--curve expects NAME=FILE, got {item!r}")
        lines = Path(path).read_text().splitlines() if Path(path).is_file() else ["", ""]
        if len(lines) == 1:
            log.info("--curve %s: %s has no rows (a disabled stage); left out", name, path)
            continue
        curves[OVEROPT_STYLE.get(name, (name,))[0]] = read_curve(path)
    return curves


def main(argv: Iterable[str] | None = None) -> None:
    args = parser().parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    tracking = load_section("tracking", TrackingConfig, args.params)
    raw = read_params(args.params)
    curves = {"SuperHF": read_curve(args.superhf_curve), "RLHF (PPO)": read_curve(args.rlhf_curve)}
    curves.update(further_curves(args.curve))
    ev = read_json(args.eval)
    if not isinstance(ev, dict):
        raise BadInputError(f"{args.eval}: expected a JSON object of evaluate's metrics")
    main_proc = int(os.environ.get("RANK", "0")) == 0
    profile = str(raw.get("profile", "unknown"))
    with (
        atomic_path(args.out) as tmp,
        stage_run("report", {}, tracking, main_process=main_proc, profile=profile) as run,
    ):
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
    run(main)
