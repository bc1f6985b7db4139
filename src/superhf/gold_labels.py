"""The proxy's training pairs under ``proxy_labels: gold`` (Gao et al. 2022): hh pairs
relabelled by the gold and pairs of two base-policy samples ordered by it, either derived
here (``gold_pairs``) or read from the record an earlier run wrote (``read_gold_pairs``,
``superhf.proxy_pairs``), so that a rebuild on another CPU trains the same proxy."""

from __future__ import annotations

import logging
import time

from superhf import proxy_pairs
from superhf.config.reward_model import RewardModelConfig
from superhf.errors import BadInputError
from superhf.io import read_jsonl
from superhf.judges import length_baselines
from superhf.models import load_causal_lm, load_tokenizer
from superhf.policy_pairs import judged_pairs, pick_prompts, sample_two, split_heldout
from superhf.reward import RewardScorer
from superhf.reward_training import relabel_pairs, score_pairs

log = logging.getLogger(__name__)


def make_policy_pairs(cfg: RewardModelConfig, policy: dict, gold: RewardScorer, device):
    """(training pairs, held-out pairs, metrics): two base-policy samples on each of
    ``policy_pairs.prompts`` policy prompts, ordered by the gold (``superhf.policy_pairs``)."""
    pp = cfg.policy_pairs
    prompts = pick_prompts(policy["rows"], pp.prompts, pp.seed)
    tok = load_tokenizer(policy["base"])
    model = load_causal_lm(policy["base"]).to(device).eval()
    log.info("sampling two base-policy completions on each of %d prompts", len(prompts))
    t0 = time.perf_counter()
    first, second = sample_two(model, tok, prompts, pp.generation, pp.seed)
    del model
    t1 = time.perf_counter()
    log.info("scoring %d base-policy samples with the gold", 2 * len(prompts))
    s1, s2 = gold.score(prompts, first), gold.score(prompts, second)
    t2 = time.perf_counter()
    pairs, dropped = judged_pairs(prompts, first, second, s1, s2)
    train, heldout = split_heldout(pairs, pp.heldout_share, pp.seed)
    metrics = {
        "prompts": len(prompts),
        "pairs": len(pairs),
        "dropped": dropped,
        "train_pairs": len(train),
        "heldout_pairs": len(heldout),
        "gold_longer_wins": length_baselines(pairs)["longer_wins"],
        "sampling_s": round(t1 - t0, 1),
        "gold_scoring_s": round(t2 - t1, 1),
    }
    return train, heldout, metrics


def gold_pairs(cfg, share, train, outs, device, policy, metrics):
    """(hh pairs relabelled by the gold, policy training pairs, held-out policy pairs,
    the record's rows): the proxy's pairs derived here (``proxy_labels: gold``)."""
    scorer = RewardScorer(outs["gold"], batch_size=cfg.score_batch_size, device=device)
    log.info("relabelling the proxy's %d pairs by the gold", len(share))
    hh, _ = relabel_pairs(share, *score_pairs(scorer, share))
    flags = proxy_pairs.swapped_flags(share, hh)  # what the record keeps, so both modes count it
    metrics["relabelled"] = relabelled(flags)
    extra, heldout = [], []
    if policy:
        extra, heldout, metrics["policy_pairs"] = make_policy_pairs(cfg, policy, scorer, device)
    prompt_rows = policy["rows"] if policy else []
    rows = proxy_pairs.encode(share, flags, train, extra, heldout, prompt_rows)
    return hh, extra, heldout, rows


def relabelled(flags: list[bool]) -> dict:
    n, swapped = len(flags), sum(flags)
    return {"pairs": n, "swapped": swapped, "share_swapped": swapped / n if n else 0.0}


def read_gold_pairs(cfg, share, train, policy, record, metrics):
    """The same four from a record an earlier run wrote (``--proxy-pairs``), read before any
    training and checked to be this run's: its hh rows this run's proxy share, in order, and
    policy pairs exactly when ``policy_pairs.prompts`` > 0."""
    rows = read_jsonl(record)
    prompt_rows = policy["rows"] if policy else []
    hh, extra, heldout = proxy_pairs.decode(rows, train, prompt_rows, record)
    named, expected = [r["hh"] for r in rows if "hh" in r], proxy_pairs.hh_rows(share, train)
    if named != expected:
        at = next((k for k, (a, b) in enumerate(zip(named, expected)) if a != b), None)
        raise BadInputError(
            f"{record}: its hh pairs are not this run's proxy share of the preference pairs "
            f"({len(named)} rows against {len(expected)}"
            + (f"; row {at + 1} differs" if at is not None else "")
            + "): written from other data or other reward_model params"
        )
    if bool(extra or heldout) != bool(policy):
        raise BadInputError(
            f"{record}: {len(extra) + len(heldout)} policy pairs, but this run's "
            f"policy_pairs.prompts is {cfg.policy_pairs.prompts}: written with other params"
        )
    metrics["relabelled"] = relabelled([bool(r["swap"]) for r in rows if "hh" in r])
    if policy:
        metrics["policy_pairs"] = {
            "from": str(record),
            "pairs": len(extra) + len(heldout),
            "train_pairs": len(extra),
            "heldout_pairs": len(heldout),
            "gold_longer_wins": length_baselines(extra + heldout)["longer_wins"],
        }
    log.info("the proxy's pairs read from %s (%d rows)", record, len(rows))
    return hh, extra, heldout, rows
