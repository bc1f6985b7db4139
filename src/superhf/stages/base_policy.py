"""Stage ``base_policy``: materialise the policy every later stage starts from.

python -m superhf.stages.base_policy --params params.yaml --out models/base
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable

import torch

from superhf.cli import add_params_arg, run, stage_parser
from superhf.config.base_policy import BasePolicyConfig
from superhf.io import atomic_path
from superhf.materialise import build_base_policy
from superhf.models import save_model
from superhf.params import load_section

log = logging.getLogger(__name__)


def parser() -> argparse.ArgumentParser:
    ap = stage_parser(__name__, __doc__)
    add_params_arg(ap)
    ap.add_argument("--out", required=True, help="output folder for the policy (save_pretrained)")
    return ap


def main(argv: Iterable[str] | None = None) -> None:
    args = parser().parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = load_section("base_policy", BasePolicyConfig, args.params)
    torch.manual_seed(cfg.seed)
    model, tok = build_base_policy(cfg)
    n = sum(p.numel() for p in model.parameters())
    with atomic_path(args.out) as tmp:
        save_model(model, tok, tmp, {"source": cfg.source, "name": cfg.name, "params": n})
    log.info("saved %s (%.1fM parameters) to %s", type(model).__name__, n / 1e6, args.out)


if __name__ == "__main__":
    run(main)
