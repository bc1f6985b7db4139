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

from superhf import cli
from superhf.cli import add_params_arg, stage_parser
from superhf.config.prepare import PrepareConfig
from superhf.data import run
from superhf.data_parts import run_parts
from superhf.errors import BadInputError
from superhf.io import write_json, write_jsonl
from superhf.params import load_section

log = logging.getLogger(__name__)


def parser() -> argparse.ArgumentParser:
    ap = stage_parser(__name__, __doc__)
    add_params_arg(ap)
    ap.add_argument("--prompts", required=True, help="output folder for train/test.jsonl prompts")
    ap.add_argument(
        "--preferences", required=True, help="output folder for train/test.jsonl preference pairs"
    )
    ap.add_argument(
        "--metrics", required=True, help="output JSON: Table 1 counts and skipped-row examples"
    )
    return ap


def main(argv: Iterable[str] | None = None) -> None:
    args = parser().parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = load_section("prepare", PrepareConfig, args.params)
    prompts, pairs, metrics = run_parts(cfg) if cfg.parts else run(cfg)
    if not prompts["train"]:
        counts = {d: m.get("kept_train", m.get("rows")) for d, m in metrics["datasets"].items()}
        raise BadInputError(
            f"no training prompts survived (kept per subset: {counts}); check the raw files, "
            "prepare.datasets and the filters"
        )
    for split in ("train", "test"):
        write_jsonl(Path(args.prompts) / f"{split}.jsonl", prompts[split])
        write_jsonl(Path(args.preferences) / f"{split}.jsonl", pairs[split])
    if "val" in prompts:  # the hh split's validation prompts (prepare.parts)
        write_jsonl(Path(args.prompts) / "val.jsonl", prompts["val"])
    write_json(args.metrics, metrics)
    log.info(
        "prompts: %d train, %d test; pairs: %d train, %d test",
        len(prompts["train"]),
        len(prompts["test"]),
        len(pairs["train"]),
        len(pairs["test"]),
    )


if __name__ == "__main__":
    cli.run(main)
