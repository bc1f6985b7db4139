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

from superhf.cli import run, stage_parser
from superhf.errors import MissingInputError
from superhf.figures import overopt_figure, seeds_overopt_figure
from superhf.io import read_json
from superhf.study_curves import seed_curves


def parser():
    ap = stage_parser(__name__, __doc__)
    ap.add_argument("--metrics", required=True, help="the main run's metrics folder")
    ap.add_argument(
        "--seed-run",
        action="append",
        default=[],
        metavar="NAME=FOLDER",
        help="a training seed's metrics folder with overoptimisation.json (repeat)",
    )
    ap.add_argument("--out", required=True, help="output folder of the PNG files")
    return ap


def overopt_file(folder: str | Path) -> Path:
    path = Path(folder) / "overoptimisation.json"
    if not path.is_file():
        raise MissingInputError(f"{path} not found (evaluate_merge --overopt writes it)")
    return path


def main(argv: Iterable[str] | None = None) -> list[Path]:
    args = parser().parse_args(list(argv) if argv is not None else None)
    folders = [args.metrics]
    for item in args.seed_run:
        name, sep, folder = item.partition("=")
        if not sep:
            raise MissingInputError(f"--seed-run {item!r}: expected NAME=FOLDER")
        folders.append(folder)
    overopts = [read_json(overopt_file(f)) for f in folders]  # every file checked first
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "overoptimisation.png", out / "overopt_seeds.png"]
    overopt_figure(overopts[0], written[0])
    seeds_overopt_figure(seed_curves(overopts), written[1])
    return written


if __name__ == "__main__":
    run(main)
