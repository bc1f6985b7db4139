"""Combine the pieces of an evaluation (``evaluate --only ... --piece-out FILE``) into the
outputs one ``evaluate`` run writes: eval.json, Table 4, the scored completions and the
over-optimisation curves. Every piece must come from the same params, models and prompts
(checked); no model or snapshot curve may be in two pieces, and no prompt of the best-of-n
pool (drawn in ranges of its prompts, ``evaluate --curve-prompts``: the ranges are joined).

    python -m superhf.stages.evaluate_merge --params params.yaml \
        --piece pieces/base.json --piece pieces/superhf.json \
        --piece pieces/bon_curve_0.json --piece pieces/bon_curve_1.json \
        --metrics metrics/eval.json --table metrics/table4.md \
        --completions metrics/eval_completions.jsonl \
        --overopt metrics/overoptimisation.json --overopt-plots metrics/overopt
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

from superhf.cli import add_params_arg, run, stage_parser
from superhf.config.evaluate import EvaluateConfig
from superhf.errors import BadInputError
from superhf.eval_pieces import combine
from superhf.io import read_json
from superhf.params import load_section, read_params
from superhf.stages.evaluate import write_outputs
from superhf.tracking import TrackingConfig, stage_run


def parser():
    ap = stage_parser(__name__, __doc__)
    add_params_arg(ap)
    ap.add_argument("--piece", action="append", required=True, help="a piece's JSON (repeat)")
    ap.add_argument("--metrics", required=True, help="output JSON of every number")
    ap.add_argument("--table", required=True, help="output Markdown of Table 4")
    ap.add_argument("--completions", required=True, help="output JSONL of scored completions")
    ap.add_argument(
        "--partial",
        action="store_true",
        help="merge what the pieces hold, though some model or curve of the run is missing "
        "(a study in progress; the outputs then hold only those; a best-of-n curve short of "
        "some prompts is written with its points' missing_prompts)",
    )
    ap.add_argument("--overopt", help="output JSON of the over-optimisation curves")
    ap.add_argument("--overopt-plots", help="output folder: one CSV per method, for DVC plots")
    return ap


def read_pieces(paths: list[str], raw: dict) -> list[dict]:
    """Every piece, each made with this params file's ``evaluate`` section."""
    pieces = [read_json(p) for p in paths]
    for path, piece in zip(paths, pieces):
        used = piece.get("fingerprint", {}).get("evaluate")
        if used != raw["evaluate"]:
            raise BadInputError(f"{path}: made with another evaluate section than {raw['_path']}")
    return pieces


def main(argv: Iterable[str] | None = None) -> None:
    args = parser().parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = load_section("evaluate", EvaluateConfig, args.params)
    tracking = load_section("tracking", TrackingConfig, args.params)
    raw = {**read_params(args.params), "_path": args.params}
    pieces = read_pieces(args.piece, raw)
    results, rows, curves = combine(pieces, (cfg.bootstrap_samples, cfg.seed), args.partial)
    if args.overopt and curves is None:
        raise BadInputError("--overopt: no piece drew a curve (pieces made without curves)")
    main_proc = int(os.environ.get("RANK", "0")) == 0
    profile = str(raw.get("profile", "unknown"))
    params = {"evaluate": raw["evaluate"]}
    with stage_run("evaluate", params, tracking, main_process=main_proc, profile=profile) as r:
        results["test_prompts"] = pieces[0]["test_prompts"]
        results["mlflow_run_id"] = r.run_id
        curves = curves if args.overopt else None
        write_outputs(args, results, rows, curves, pieces[0]["test_prompts"], r)


if __name__ == "__main__":
    run(main)
