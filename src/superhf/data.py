"""The data of stage ``prepare``: the paper's prompt datasets (section 5.1, Table 1) as
train/test prompts, plus the preference pairs the reward model trains on.

Rows come from ``data_sources`` (a local mirror or the hub); ``data_extract`` holds the rules
that turn a row into its prompt and pair. Here each subset is split, filtered and capped.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from superhf.config.prepare import PrepareConfig
from superhf.data_extract import Malformed, extract_pair, extract_prompt
from superhf.data_sources import OWN_TEST_SPLIT, read_hub, read_local
from superhf.errors import MissingInputError
from superhf.paths import fixture_dir

log = logging.getLogger(__name__)

MAX_REPORTED_MALFORMED = 5


@dataclass
class SubsetResult:
    prompts: dict[str, list[str]] = field(default_factory=lambda: {"train": [], "test": []})
    pairs: dict[str, list[dict[str, str]]] = field(
        default_factory=lambda: {"train": [], "test": []}
    )
    too_long: int = 0
    malformed: int = 0
    pairs_skipped: int = 0
    examples: list[str] = field(default_factory=list)


def prompt_order(prompts: Iterable[str], seed: int) -> list[str]:
    """Prompts ordered by sha256(f"{seed}:{prompt}"): a seeded order that does not depend
    on the order the rows came in (``split_by_prompt`` and ``data_parts`` fill from it)."""
    return sorted(prompts, key=lambda k: hashlib.sha256(f"{seed}:{k}".encode()).hexdigest())


def split_by_prompt(dataset: str, rows: list[Any], n_test: int, seed: int) -> dict[str, list[Any]]:
    """Split one subset's rows into train/test when its source holds only one split file.

    Rows are grouped by their first-turn prompt (``extract_prompt``), so a prompt and every
    dialogue that starts with it land on one side (harmless-base's 2312 test rows hold 2178
    distinct prompts: a row split would leak). Groups are ordered by
    sha256(f"{seed}:{prompt}") and moved to test in that order until at least ``n_test`` rows
    are test. The rule depends only on the seed and the rows, not on their order; rows keep
    their file order within each split. Malformed rows stay in train (they are counted there).
    """
    keys: list[str | None] = []
    for row in rows:
        try:
            keys.append(None if isinstance(row, Malformed) else extract_prompt(dataset, row))
        except Malformed:
            keys.append(None)
    sizes: dict[str, int] = {}
    for k in keys:
        if k is not None:
            sizes[k] = sizes.get(k, 0) + 1
    order = prompt_order(sizes, seed)
    test_keys, n = set(), 0
    for k in order:
        if n >= n_test:
            break
        test_keys.add(k)
        n += sizes[k]
    return {
        "train": [r for r, k in zip(rows, keys) if k not in test_keys],
        "test": [r for r, k in zip(rows, keys) if k in test_keys],
    }


def process_subset(dataset: str, raw: dict[str, list[Any]], cfg: PrepareConfig) -> SubsetResult:
    """Split, extract, filter one subset. Malformed rows are counted and skipped."""
    splits = dict(raw)
    present = [s for s in ("train", "test") if splits.get(s)]
    if dataset in OWN_TEST_SPLIT and cfg.missing_split == "split_by_prompt" and len(present) == 1:
        log.info(
            "%s: only its %s rows are present; splitting them by prompt (seed %d)",
            dataset,
            present[0],
            cfg.seed,
        )
        splits = split_by_prompt(dataset, splits[present[0]], cfg.test_size_per_dataset, cfg.seed)
    if dataset not in OWN_TEST_SPLIT:
        train = splits.get("train", [])
        n_test = min(cfg.test_size_per_dataset, len(train))
        splits = {"train": train[: len(train) - n_test], "test": train[len(train) - n_test :]}
    res = SubsetResult()
    for split, rows in splits.items():
        for i, row in enumerate(
            tqdm(rows, desc=f"{dataset}/{split}", disable=None, delay=2, leave=False)
        ):
            try:
                if isinstance(row, Malformed):
                    raise row
                prompt = extract_prompt(dataset, row)
                pair = extract_pair(dataset, row)
            except Malformed as exc:
                res.malformed += 1
                if len(res.examples) < MAX_REPORTED_MALFORMED:
                    res.examples.append(f"{dataset}/{split} row {i}: {exc}")
                continue
            if len(prompt) > cfg.max_prompt_chars:
                res.too_long += 1
            else:
                res.prompts[split].append(prompt)
            if pair is None:
                res.pairs_skipped += dataset != "red_team"
            else:
                res.pairs[split].append(pair)
    return res


def _cap(items: list[Any], cap: int | None, rng: random.Random) -> list[Any]:
    if cap is None or len(items) <= cap:
        return items
    keep = sorted(rng.sample(range(len(items)), cap))
    return [items[i] for i in keep]


def run(cfg: PrepareConfig) -> tuple[dict[str, list[dict]], dict[str, list[dict]], dict]:
    """Read, extract and filter every selected subset; returns (prompts, pairs, metrics)."""
    root = fixture_dir() if cfg.source == "fixture" else Path(cfg.data_dir or "")
    if cfg.source != "hub" and not root.is_dir():
        raise MissingInputError(f"prepare.data_dir: {root} is not a directory")
    rng = random.Random(cfg.seed)
    prompts: dict[str, list[dict]] = {"train": [], "test": []}
    pairs: dict[str, list[dict]] = {"train": [], "test": []}
    per: dict[str, dict[str, Any]] = {}
    for dataset in tqdm(cfg.datasets, desc="prepare", unit="subset", disable=None, delay=2):
        raw = read_hub(cfg, dataset) if cfg.source == "hub" else read_local(root, dataset)
        res = process_subset(dataset, raw, cfg)
        for example in res.examples:
            log.warning("malformed: %s", example)
        train = list(res.prompts["train"])
        rng.shuffle(train)
        train = train[: cfg.max_train_per_dataset] if cfg.max_train_per_dataset else train
        test = _cap(res.prompts["test"], cfg.max_test_per_dataset, rng)
        prompts["train"] += [{"prompt": p, "dataset": dataset} for p in train]
        prompts["test"] += [{"prompt": p, "dataset": dataset} for p in test]
        for split in ("train", "test"):
            pairs[split] += [{**p, "dataset": dataset} for p in res.pairs[split]]
        per[dataset] = {
            # Table 1 counts: the raw train split before the length filter and before the
            # test rows are taken from its end (paper section 5.1, ../shared/REFERENCE.md)
            "table1_raw_train_rows": len(raw.get("train", [])),
            "kept_train": len(train),
            "kept_test": len(test),
            "dropped_too_long": res.too_long,
            "dropped_malformed": res.malformed,
            "pairs_train": len(res.pairs["train"]),
            "pairs_test": len(res.pairs["test"]),
            "pairs_skipped": res.pairs_skipped,
            "malformed_examples": res.examples,
        }
    rng.shuffle(prompts["train"])
    rng.shuffle(pairs["train"])
    total = sum(d["kept_train"] + d["kept_test"] for d in per.values())
    for d in per.values():
        d["share"] = round((d["kept_train"] + d["kept_test"]) / total, 4) if total else 0.0
    metrics = {
        "datasets": per,
        "table1_raw_train_rows": sum(d["table1_raw_train_rows"] for d in per.values()),
        "total_prompts": total,
        "train_prompts": len(prompts["train"]),
        "test_prompts": len(prompts["test"]),
        "train_pairs": len(pairs["train"]),
        "test_pairs": len(pairs["test"]),
    }
    return prompts, pairs, metrics
