"""The hh study's split (``prepare.parts``): hh-rlhf rows split by first prompt into four
disjoint parts, plus the reward models' training pairs.

Every row of the selected subsets (all their files) is pooled and grouped by its first-turn
prompt (``data_extract.extract_prompt``), across subsets too, so a prompt and every dialogue
that starts with it land in one part. Groups in ``data.prompt_order`` (seeded hash order) fill
eval, validation, policy and reward_heldout in that order, each up to its number of
prompts; a group whose prompt is longer than ``max_prompt_chars`` skips the prompt parts.
The remaining groups are reward_train. What is written where:

    prompts/test.jsonl        eval prompts (one per group)
    prompts/val.jsonl         validation prompts (the sweep's selection set)
    prompts/train.jsonl       policy prompts, then the extra red-team/webgpt prompts
    preferences/test.jsonl    reward_heldout pairs (the reward models' held-out accuracy)
    preferences/train.jsonl   reward_train pairs (split between proxy and gold by reward_model)
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

from superhf.config.prepare import PartsConfig, PrepareConfig
from superhf.data import prompt_order
from superhf.data_extract import Malformed, extract_pair, extract_prompt
from superhf.data_sources import read_hub, read_local, read_raw_file
from superhf.errors import BadInputError
from superhf.paths import fixture_dir

log = logging.getLogger(__name__)

PROMPT_PARTS = ("eval", "validation", "policy")
PARTS = (*PROMPT_PARTS, "reward_heldout")  # filled in this order; the rest is reward_train


def quotas(parts: PartsConfig) -> dict[str, int]:
    return {
        "eval": parts.eval_prompts,
        "validation": parts.validation_prompts,
        "policy": parts.policy_prompts,
        "reward_heldout": parts.reward_heldout_prompts,
    }


def assign_parts(fits: dict[str, bool], want: dict[str, int], seed: int) -> dict[str, str]:
    """Part of each prompt group: groups in seeded order go to the first part in ``PARTS``
    that still wants one (prompt parts only take prompts that ``fits``), else reward_train.
    A part left short is an error naming it."""
    got = dict.fromkeys(PARTS, 0)
    out = {}
    for prompt in prompt_order(fits, seed):
        part = next(
            (p for p in PARTS if got[p] < want[p] and (fits[prompt] or p not in PROMPT_PARTS)),
            "reward_train",
        )
        got[part] = got.get(part, 0) + 1
        out[prompt] = part
    short = {p: (got[p], want[p]) for p in PARTS if got[p] < want[p]}
    if short:
        raise BadInputError(
            f"prepare.parts: too few prompt groups ({len(fits)} in all) for "
            f"{', '.join(f'{p} ({g} of {w})' for p, (g, w) in short.items())}"
        )
    return out


def group_rows(cfg: PrepareConfig, root: Path) -> tuple[dict[str, list], dict[str, Counter]]:
    """Rows of every selected subset grouped by first prompt: prompt -> [(dataset, pair or
    None)], and per subset the counts of rows, malformed rows and rows without a pair."""
    groups: dict[str, list] = {}
    counts: dict[str, Counter] = {}
    for dataset in cfg.datasets:
        raw = read_hub(cfg, dataset) if cfg.source == "hub" else read_local(root, dataset)
        c = counts[dataset] = Counter()
        for row in (r for split in ("train", "test") for r in raw.get(split, [])):
            c["rows"] += 1
            try:
                if isinstance(row, Malformed):
                    raise row
                prompt, pair = extract_prompt(dataset, row), extract_pair(dataset, row)
            except Malformed as exc:
                c["malformed"] += 1
                if c["malformed"] <= 5:
                    log.warning("malformed: %s: %s", dataset, exc)
                continue
            c["pairs_skipped"] += pair is None
            groups.setdefault(prompt, []).append((dataset, pair))
    return groups, counts


def extra_prompts(cfg: PrepareConfig, root: Path, taken: set[str]) -> tuple[list[dict], dict]:
    """The extra policy prompts, without any that an hh-rlhf row holds or that repeats."""
    out, stats, seen = [], {}, set(taken)
    for name in cfg.parts.extra_policy_prompts:
        path = root / cfg.parts.extra_prompts_dir / f"{name}.jsonl.gz"
        if not path.is_file():
            raise BadInputError(f"prepare.parts.extra_policy_prompts: {path} does not exist")
        s = stats[name] = Counter()
        for row in read_raw_file(path):
            s["read"] += 1
            prompt = row.get("prompt") if isinstance(row, dict) else None
            if not isinstance(prompt, str) or "\n\nAssistant:" not in prompt:
                s["malformed"] += 1
            elif len(prompt) > cfg.max_prompt_chars:
                s["dropped_too_long"] += 1
            elif prompt in seen:
                s["dropped_repeat_or_overlap"] += 1
            else:
                seen.add(prompt)
                out.append({"prompt": prompt, "dataset": name})
        s["kept"] = len(out) - sum(st["kept"] for n, st in stats.items() if n != name)
    return out, {n: dict(s) for n, s in stats.items()}


def run_parts(cfg: PrepareConfig) -> tuple[dict[str, list[dict]], dict[str, list[dict]], dict]:
    """(prompts {train, test, val}, pairs {train, test}, metrics) of the four-way split."""
    root = fixture_dir() if cfg.source == "fixture" else Path(cfg.data_dir or "")
    groups, counts = group_rows(cfg, root)
    fits = {p: len(p) <= cfg.max_prompt_chars for p in groups}
    part_of = assign_parts(fits, quotas(cfg.parts), cfg.seed)
    split = {"eval": "test", "validation": "val", "policy": "train"}
    prompts: dict[str, list[dict]] = {"train": [], "test": [], "val": []}
    pairs: dict[str, list[dict]] = {"train": [], "test": []}
    per: dict[str, Counter] = {p: Counter() for p in (*PARTS, "reward_train")}
    for prompt in prompt_order(groups, cfg.seed):
        part, rows = part_of[prompt], groups[prompt]
        per[part].update(prompts=1, rows=len(rows), **Counter(f"rows_{d}" for d, _ in rows))
        if part in split:
            prompts[split[part]].append({"prompt": prompt, "dataset": rows[0][0]})
        else:
            side = "test" if part == "reward_heldout" else "train"
            got = [{**pair, "dataset": d} for d, pair in rows if pair is not None]
            pairs[side] += got
            per[part]["pairs"] += len(got)
    extra, extra_stats = extra_prompts(cfg, root, set(groups))
    prompts["train"] += extra
    metrics: dict[str, Any] = {
        "split": "parts",
        "seed": cfg.seed,
        "distinct_prompts": len(groups),
        "datasets": {d: dict(c) for d, c in counts.items()},
        "parts": {p: dict(c) for p, c in per.items()},
        "extra_policy_prompts": extra_stats,
        "train_prompts": len(prompts["train"]),
        "test_prompts": len(prompts["test"]),
        "val_prompts": len(prompts["val"]),
        "train_pairs": len(pairs["train"]),
        "test_pairs": len(pairs["test"]),
    }
    return prompts, pairs, metrics
