"""Stage ``summary``: the headline numbers (``superhf.summary``) as DVC's metrics file.

    python -m superhf.stages.summary --eval metrics/eval.json \
        --reward-model metrics/reward_model.json --superhf metrics/superhf.json \
        --rlhf metrics/rlhf.json --trained rloo=metrics/rloo.json \
        --trained grpo=metrics/grpo.json --out metrics/summary.json
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from superhf.cli import run, stage_parser
from superhf.errors import BadInputError, MissingInputError
from superhf.io import read_json, write_json
from superhf.summary import headline

log = logging.getLogger(__name__)


def read_json_object(path: str | Path) -> dict[str, Any]:
    """The JSON object in ``path``, or a one-line error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"{path} does not exist (run the stage that writes it)")
    obj = read_json(path)
    if not isinstance(obj, dict):
        raise BadInputError(f"{path} holds a {type(obj).__name__}, expected an object")
    return obj


def parser() -> argparse.ArgumentParser:
    ap = stage_parser(__name__, __doc__)
    ap.add_argument("--eval", required=True, help="JSON metrics of the evaluate stage")
    ap.add_argument("--reward-model", required=True, help="JSON metrics of the reward_model stage")
    ap.add_argument("--superhf", required=True, help="JSON metrics of the superhf stage")
    ap.add_argument("--rlhf", required=True, help="JSON metrics of the rlhf stage")
    ap.add_argument(
        "--trained",
        action="append",
        default=[],
        help="NAME=FILE: JSON metrics of a further training stage (rloo, grpo; repeat)",
    )
    ap.add_argument("--out", required=True, help="output JSON of the headline numbers")
    return ap


def main(argv: Iterable[str] | None = None) -> None:
    args = parser().parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sources = [read_json_object(p) for p in (args.eval, args.reward_model, args.superhf, args.rlhf)]
    others = {}
    for item in args.trained:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise BadInputError(f"--trained expects NAME=FILE, got {item!r}")
        others[name] = read_json_object(path)
    summary = headline(*sources, others)
    write_json(args.out, summary)
    log.info("%d headline numbers in %s", sum(map(len, summary.values())), args.out)


if __name__ == "__main__":
    run(main)
