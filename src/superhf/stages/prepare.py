"""Stage ``prepare``: the paper's prompt datasets (section 5.1, Table 1) as train/test prompts,
plus the preference pairs the reward model trains on.

    python -m superhf.stages.prepare --params params.yaml --prompts data/prompts \
        --preferences data/preferences --metrics metrics/data.json
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable
from pathlib import Path

from superhf.config import PrepareConfig
from superhf.data import run
from superhf.io import write_json, write_jsonl
from superhf.params import load_section

log = logging.getLogger(__name__)


def main(argv: Iterable[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--prompts", required=True, help="output dir for train/test.jsonl")
    ap.add_argument("--preferences", required=True, help="output dir for train/test.jsonl")
    ap.add_argument("--metrics", required=True, help="output JSON (Table 1)")
    args = ap.parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = load_section("prepare", PrepareConfig, args.params)
    prompts, pairs, metrics = run(cfg)
    if not prompts["train"]:
        raise SystemExit(
            "prepare: no training prompts survived; check prepare.datasets and filters"
        )
    for split in ("train", "test"):
        write_jsonl(Path(args.prompts) / f"{split}.jsonl", prompts[split])
        write_jsonl(Path(args.preferences) / f"{split}.jsonl", pairs[split])
    write_json(args.metrics, metrics)
    log.info(
        "prompts: %d train, %d test; pairs: %d train, %d test",
        len(prompts["train"]),
        len(prompts["test"]),
        len(pairs["train"]),
        len(pairs["test"]),
    )


if __name__ == "__main__":
    main()
