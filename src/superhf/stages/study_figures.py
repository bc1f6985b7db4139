"""The hh study's figures from its committed metrics (no model): the over-optimisation
curves of the main run (every method, best-of-n's pool included) and every training seed's
curve with their mean.

    python -m superhf.stages.study_figures --metrics results/hh/metrics \
        --seed-run "seed 1=results/hh/seeds/seed1" --seed-run "seed 2=results/hh/seeds/seed2" \
        --out results/hh/figures
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from superhf.cli import add_seed_run_arg, run, seed_runs, stage_parser
from superhf.errors import MissingInputError
from superhf.figures import overopt_figure, seeds_overopt_figure
from superhf.io import read_json
from superhf.study_curves import seed_curves


def parser():
    ap = stage_parser(__name__, __doc__)
    ap.add_argument("--metrics", required=True, help="the main run's metrics folder")
    add_seed_run_arg(ap, "overoptimisation.json")
    ap.add_argument("--out", required=True, help="output folder of the PNG files")
    return ap


def main(argv: Iterable[str] | None = None) -> list[Path]:
    args = parser().parse_args(list(argv) if argv is not None else None)
    main_file = Path(args.metrics) / "overoptimisation.json"
    if not main_file.is_file():
        raise MissingInputError(f"{main_file} not found (evaluate_merge --overopt writes it)")
    seeds = seed_runs(args.seed_run, "overoptimisation.json")  # every file checked first
    overopts = [
        read_json(f / "overoptimisation.json") for f in (main_file.parent, *(f for _, f in seeds))
    ]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "overoptimisation.png", out / "overopt_seeds.png"]
    overopt_figure(overopts[0], written[0])
    seeds_overopt_figure(seed_curves(overopts), written[1])
    return written


if __name__ == "__main__":
    run(main)
