"""Stage ``summary``: the headline numbers (``superhf.summary``) as DVC's metrics file.

    python -m superhf.stages.summary --eval metrics/eval.json \
        --reward-model metrics/reward_model.json --superhf metrics/superhf.json \
        --rlhf metrics/rlhf.json --out metrics/summary.json
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from superhf.io import write_json
from superhf.summary import headline

log = logging.getLogger(__name__)


def read_json_object(path: str | Path) -> dict[str, Any]:
    """The JSON object in ``path``, or a one-line error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"summary: {path} does not exist (run the stage that writes it)")
    try:
        obj = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SystemExit(f"summary: {path} is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise SystemExit(f"summary: {path} holds a {type(obj).__name__}, expected an object")
    return obj


def main(argv: Iterable[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name in ("eval", "reward-model", "superhf", "rlhf", "out"):
        ap.add_argument(f"--{name}", required=True)
    args = ap.parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sources = [read_json_object(p) for p in (args.eval, args.reward_model, args.superhf, args.rlhf)]
    summary = headline(*sources)
    write_json(args.out, summary)
    log.info("%d headline numbers in %s", sum(map(len, summary.values())), args.out)


if __name__ == "__main__":
    main()
