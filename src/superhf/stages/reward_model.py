"""Stage ``reward_model``: materialise the proxy reward model and a gold one in ``models/``.

The policy is trained against the proxy; the gold model (trained on a disjoint half of the
preference pairs) judges it, so over-optimisation of the proxy shows up as a gap.

    python -m superhf.stages.reward_model --params params.yaml --preferences data/preferences \
        --out models/reward --gold-out models/reward_gold --metrics metrics/reward_model.json
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable
from pathlib import Path

from superhf.config import RewardModelConfig
from superhf.io import atomic_path, read_jsonl, write_json
from superhf.materialise import load_reward_backbone, materialise_pretrained
from superhf.models import save_model
from superhf.params import load_section
from superhf.reward import (
    RewardScorer,
    evaluate_pairs,
    length_baseline,
    split_pairs,
    train_reward_model,
)

log = logging.getLogger(__name__)


def main(argv: Iterable[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--preferences", required=True, help="dir with train.jsonl and test.jsonl")
    ap.add_argument("--out", required=True)
    ap.add_argument("--gold-out", required=True)
    ap.add_argument("--metrics", required=True)
    args = ap.parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = load_section("reward_model", RewardModelConfig, args.params)
    test = read_jsonl(Path(args.preferences) / "test.jsonl")
    metrics: dict = {"source": cfg.source, "name": cfg.name, "test_pairs": len(test)}
    outs = {"proxy": Path(args.out), "gold": Path(args.gold_out)}
    if cfg.source == "train":
        train = read_jsonl(Path(args.preferences) / "train.jsonl")
        if len(train) < 2:
            raise SystemExit(f"reward_model: {args.preferences}/train.jsonl has {len(train)} pairs")
        halves = dict(zip(("proxy", "gold"), split_pairs(train, cfg)))
        seeds = {"proxy": cfg.seed, "gold": cfg.gold_seed}
        # trained and scored with the same input format (auto: text for a model trained here)
        fmt = "text" if cfg.input_format == "auto" else cfg.input_format
        for which, out in outs.items():
            model, tok = load_reward_backbone(cfg, seeds[which])
            losses = train_reward_model(
                model, tok, halves[which], epochs=cfg.epochs, lr=cfg.lr,
                batch_size=cfg.batch_size, max_length=cfg.max_length,
                weight_decay=cfg.weight_decay, warmup_ratio=cfg.warmup_ratio, seed=seeds[which],
                input_format=fmt,
            )  # fmt: skip
            q = max(1, len(losses) // 4)
            metrics[which] = {
                "train_pairs": len(halves[which]),
                "steps": len(losses),
                "loss_first_quarter": sum(losses[:q]) / q,
                "loss_last_quarter": sum(losses[-q:]) / q,
            }
            meta = {"source": "train", "backbone": cfg.name, "input_format": fmt,
                    "max_length": cfg.max_length, "seed": seeds[which]}  # fmt: skip
            with atomic_path(out) as tmp:
                save_model(model, tok, tmp, meta)
    else:
        for which, out in outs.items():
            name = cfg.name if which == "proxy" else (cfg.gold_name or cfg.name)
            with atomic_path(out) as tmp:
                materialise_pretrained(cfg, name, tmp)
            metrics[which] = {"name": name}
    for which, out in outs.items():
        scorer = RewardScorer(out, batch_size=64)
        metrics[which]["test_accuracy"] = evaluate_pairs(scorer, test) if test else None
    metrics["length_baseline_accuracy"] = length_baseline(test) if test else None
    write_json(args.metrics, metrics)
    log.info(
        "held-out pair accuracy: proxy %.3f, gold %.3f, length baseline %.3f",
        metrics["proxy"]["test_accuracy"] or 0,
        metrics["gold"]["test_accuracy"] or 0,
        metrics["length_baseline_accuracy"] or 0,
    )


if __name__ == "__main__":
    main()
