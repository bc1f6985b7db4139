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

from superhf.cli import add_params_arg, run, stage_parser
from superhf.config import RewardModelConfig
from superhf.errors import BadInputError
from superhf.io import atomic_path, read_jsonl, write_json
from superhf.materialise import check_reward_sources, load_reward_backbone, materialise_pretrained
from superhf.models import pick_device, save_model, torch_dtype
from superhf.params import load_section
from superhf.reward import (
    RewardScorer,
    evaluate_pairs,
    length_baseline,
    split_pairs,
    train_reward_model,
)

log = logging.getLogger(__name__)
PAIR_FIELDS = ("prompt", "chosen", "rejected")


def parser() -> argparse.ArgumentParser:
    ap = stage_parser(__name__, __doc__)
    add_params_arg(ap)
    ap.add_argument(
        "--preferences",
        required=True,
        help="folder with train.jsonl and test.jsonl, one {prompt, chosen, rejected} per line",
    )
    ap.add_argument("--out", required=True, help="output folder for the proxy reward model")
    ap.add_argument("--gold-out", required=True, help="output folder for the gold reward model")
    ap.add_argument("--metrics", required=True, help="output JSON: pair accuracies and losses")
    return ap


def main(argv: Iterable[str] | None = None) -> None:
    args = parser().parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = load_section("reward_model", RewardModelConfig, args.params)
    check_reward_sources(cfg)
    test = read_jsonl(Path(args.preferences) / "test.jsonl", fields=PAIR_FIELDS)
    metrics: dict = {"source": cfg.source, "name": cfg.name, "test_pairs": len(test)}
    outs = {"proxy": Path(args.out), "gold": Path(args.gold_out)}
    device = pick_device()
    log.info("reward_model on %s (%s)", device, cfg.mixed_precision)
    if cfg.source == "train":
        train = read_jsonl(Path(args.preferences) / "train.jsonl", fields=PAIR_FIELDS)
        if len(train) < 2:
            raise BadInputError(
                f"{args.preferences}/train.jsonl has {len(train)} pairs; training needs 2 or more"
            )
        metrics |= train_both(cfg, train, outs, device)
    else:
        metrics |= materialise_both(cfg, outs)
    for which, out in outs.items():
        scorer = RewardScorer(
            out,
            batch_size=cfg.score_batch_size,
            device=device,
            dtype=torch_dtype(cfg.mixed_precision),
        )
        metrics[which]["test_accuracy"] = evaluate_pairs(scorer, test) if test else None
    metrics["length_baseline_accuracy"] = length_baseline(test) if test else None
    write_json(args.metrics, metrics)
    log.info(
        "held-out pair accuracy: proxy %.3f, gold %.3f, length baseline %.3f",
        metrics["proxy"]["test_accuracy"] or 0,
        metrics["gold"]["test_accuracy"] or 0,
        metrics["length_baseline_accuracy"] or 0,
    )


def train_both(cfg: RewardModelConfig, train: list[dict], outs: dict[str, Path], device) -> dict:
    """Train the proxy and the gold model on disjoint halves of ``train`` (different seeds),
    save each atomically to ``outs[which]``; returns their training metrics."""
    halves = dict(zip(("proxy", "gold"), split_pairs(train, cfg)))
    seeds = {"proxy": cfg.seed, "gold": cfg.gold_seed}
    # trained and scored with the same input format (auto: text for a model trained here);
    # "upstream" trains on text (the pairs have no preamble) and only changes how the model
    # is fed when scoring (preamble + prompt + " " + completion)
    train_fmt = "text" if cfg.input_format in ("auto", "upstream") else cfg.input_format
    fmt = "upstream" if cfg.input_format == "upstream" else train_fmt
    metrics = {}
    for which, out in outs.items():
        model, tok = load_reward_backbone(cfg, seeds[which])
        losses = train_reward_model(
            model, tok, halves[which], epochs=cfg.epochs, lr=cfg.lr,
            batch_size=cfg.batch_size, max_length=cfg.max_length,
            weight_decay=cfg.weight_decay, warmup_ratio=cfg.warmup_ratio, seed=seeds[which],
            device=device, mixed_precision=cfg.mixed_precision, input_format=train_fmt,
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
            save_model(model.cpu(), tok, tmp, meta)
    return metrics


def materialise_both(cfg: RewardModelConfig, outs: dict[str, Path]) -> dict:
    """Copy the named pretrained proxy and gold (``gold_name``, else the proxy's) into
    ``outs``; returns which checkpoint each is."""
    metrics = {}
    for which, out in outs.items():
        name, rev = cfg.name, cfg.revision
        if which == "gold" and cfg.gold_name:
            name, rev = cfg.gold_name, cfg.gold_revision
        with atomic_path(out) as tmp:
            materialise_pretrained(cfg, name, tmp, revision=rev)
        metrics[which] = {"name": name, "revision": rev}
    return metrics


if __name__ == "__main__":
    run(main)
