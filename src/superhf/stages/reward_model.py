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

from superhf import proxy_pairs
from superhf.cli import add_params_arg, run, stage_parser
from superhf.config.reward_model import RewardModelConfig
from superhf.errors import BadInputError
from superhf.gold_labels import gold_pairs, read_gold_pairs
from superhf.io import atomic_path, read_jsonl, write_json
from superhf.judges import accuracy, heldout_report
from superhf.materialise import check_reward_sources, load_reward_backbone, materialise_pretrained
from superhf.models import (
    check_model_dir,
    pick_device,
    save_model,
    torch_dtype,
)
from superhf.params import load_section
from superhf.reward import RewardScorer
from superhf.reward_training import (
    length_baseline,
    pair_accuracy,
    score_pairs,
    split_pairs,
    train_reward_model,
    train_top_layers,
)

log = logging.getLogger(__name__)
PAIR_FIELDS = ("prompt", "chosen", "rejected")
PAIRS_FILE = "proxy_pairs.jsonl.gz"  # in the proxy's folder: the pairs it trained on (gold labels)


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
    ap.add_argument(
        "--base", help="the base policy's folder (read only with policy_pairs.prompts > 0)"
    )
    ap.add_argument(
        "--prompts",
        help="policy prompts, one {prompt} per line (read only with policy_pairs.prompts > 0)",
    )
    ap.add_argument(
        "--proxy-pairs",
        help=f"with proxy_labels gold: train the proxy on the pairs an earlier run recorded "
        f"(its proxy folder's {PAIRS_FILE}) instead of deriving them with this run's gold, "
        "so that a rebuild on another CPU cannot reorder near-ties (superhf.proxy_pairs)",
    )
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
        policy = read_policy_inputs(cfg, args)
        if args.proxy_pairs and cfg.proxy_labels != "gold":
            raise BadInputError("--proxy-pairs needs reward_model.proxy_labels: gold")
        metrics |= train_both(cfg, train, outs, device, policy, args.proxy_pairs)
    else:
        metrics |= materialise_both(cfg, outs)
    scores = {}
    for which, out in outs.items():
        scorer = RewardScorer(
            out,
            batch_size=cfg.score_batch_size,
            device=device,
            dtype=torch_dtype(cfg.mixed_precision),
        )
        metrics[which]["parameters"] = scorer.model.num_parameters()
        log.info("scoring %d held-out pairs with the %s", len(test), which)
        scores[which] = score_pairs(scorer, test) if test else ([], [])
        metrics[which]["test_accuracy"] = pair_accuracy(*scores[which]) if test else None
    metrics["length_baseline_accuracy"] = length_baseline(test) if test else None
    metrics["heldout"] = heldout_report(test, scores) if test else None
    write_json(args.metrics, metrics)
    log.info(
        "held-out pair accuracy: proxy %.3f, gold %.3f, length baseline %.3f",
        metrics["proxy"]["test_accuracy"] or 0,
        metrics["gold"]["test_accuracy"] or 0,
        metrics["length_baseline_accuracy"] or 0,
    )


def read_policy_inputs(cfg: RewardModelConfig, args: argparse.Namespace) -> dict | None:
    """The base policy's folder and the policy prompts, checked before any training, when
    ``policy_pairs.prompts`` > 0 (else None)."""
    if not cfg.policy_pairs.prompts:
        return None
    if not args.base or not args.prompts:
        raise BadInputError(
            "reward_model.policy_pairs.prompts > 0 needs --base (the base policy) and "
            "--prompts (the policy prompts)"
        )
    rows = read_jsonl(args.prompts, fields=("prompt",))
    if len(rows) < 2:
        raise BadInputError(f"{args.prompts} has {len(rows)} prompts; policy_pairs needs 2 or more")
    return {"base": check_model_dir(args.base), "rows": rows}


def train_both(
    cfg: RewardModelConfig,
    train: list[dict],
    outs: dict[str, Path],
    device,
    policy: dict | None = None,
    record: str | None = None,
) -> dict:
    """Train the proxy and the gold model on their shares of ``train`` (``split_pairs``),
    save each atomically to ``outs[which]``; returns their training metrics. With
    ``proxy_labels: gold`` the gold is trained first and the proxy's pairs relabelled by it;
    with ``policy`` (``read_policy_inputs``) the proxy also trains on pairs of the base
    policy's samples ordered by the gold, and is scored on those held out."""
    shares = dict(zip(("proxy", "gold"), split_pairs(train, cfg)))
    metrics: dict = {}
    heldout: list[dict] = []
    # a record is read and checked before the gold trains
    read = read_gold_pairs(cfg, shares["proxy"], train, policy, record, metrics) if record else None
    order = ("gold", "proxy") if cfg.proxy_labels == "gold" else ("proxy", "gold")
    for which in order:
        pairs = shares[which]
        if which == "proxy" and cfg.proxy_labels == "gold":
            hh, extra, heldout, rows = read or gold_pairs(
                cfg, shares["proxy"], train, outs, device, policy, metrics
            )
            pairs = (hh if cfg.policy_pairs.keep_hh_pairs or not policy else []) + extra
            metrics["proxy_pairs"] = {"rows": len(rows), "sha256": proxy_pairs.sha256(rows)}
        metrics[which] = train_one(cfg, which, pairs, outs[which], device)
    if cfg.proxy_labels == "gold":  # beside the proxy, the pairs it trained on
        proxy_pairs.write(outs["proxy"] / PAIRS_FILE, rows)
    if policy and heldout:
        proxy = RewardScorer(outs["proxy"], batch_size=cfg.score_batch_size, device=device)
        held = metrics["policy_pairs"]["proxy_heldout"] = accuracy(*score_pairs(proxy, heldout))
        log.info("proxy agrees with the gold on %.3f of held-out policy pairs", held["accuracy"])
    keys = ("proxy", "gold", "relabelled", "policy_pairs", "proxy_pairs")
    return {w: metrics[w] for w in keys if w in metrics}


def recipe(cfg: RewardModelConfig, which: str) -> dict:
    """Backbone, seed and hyperparameters of the proxy or the gold (``gold_recipe``)."""
    g = cfg.gold_recipe if which == "gold" else None
    pick = lambda field: getattr(g, field, None) or getattr(cfg, field)  # noqa: E731
    return {
        "backbone": (g and g.backbone) or cfg.name,
        "lr": pick("lr"),
        "epochs": pick("epochs"),
        "batch_size": pick("batch_size"),
        "max_length": pick("max_length"),
        "train_layers": g.train_layers if g else None,
        "seed": cfg.gold_seed if which == "gold" else cfg.seed,
    }


def train_one(cfg: RewardModelConfig, which: str, pairs: list[dict], out: Path, device) -> dict:
    """Train one reward model on ``pairs`` and save it to ``out``; returns its metrics."""
    r = recipe(cfg, which)
    # trained and scored with the same input format (auto: text for a model trained here);
    # "upstream" trains on text (the pairs have no preamble) and only changes how the model
    # is fed when scoring (preamble + prompt + " " + completion)
    train_fmt = "text" if cfg.input_format in ("auto", "upstream") else cfg.input_format
    fmt = "upstream" if cfg.input_format == "upstream" else train_fmt
    model, tok = load_reward_backbone(cfg, r["seed"], name=r["backbone"])
    trainable = train_top_layers(model, r["train_layers"])
    losses = train_reward_model(
        model,
        tok,
        pairs,
        epochs=r["epochs"],
        lr=r["lr"],
        batch_size=r["batch_size"],
        max_length=r["max_length"],
        weight_decay=cfg.weight_decay,
        warmup_ratio=cfg.warmup_ratio,
        seed=r["seed"],
        device=device,
        mixed_precision=cfg.mixed_precision,
        input_format=train_fmt,
    )
    q = max(1, len(losses) // 4)
    meta = {
        "source": "train",
        "backbone": r["backbone"],
        "input_format": fmt,
        "max_length": r["max_length"],
        "seed": r["seed"],
    }
    with atomic_path(out) as tmp:
        save_model(model.cpu(), tok, tmp, meta)
    return {
        "train_pairs": len(pairs),
        "steps": len(losses),
        "loss_first_quarter": sum(losses[:q]) / q,
        "loss_last_quarter": sum(losses[-q:]) / q,
        "backbone": r["backbone"],
        "trainable_parameters": trainable,
    }


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
