"""The hh study's four-way split by first prompt (prepare.parts)."""

from __future__ import annotations

import pytest
from conftest import SHARED_DATA, needs_shared

from superhf.config.prepare import PrepareConfig
from superhf.data_extract import extract_prompt
from superhf.data_parts import assign_parts, run_parts
from superhf.errors import BadInputError
from superhf.profile import resolve


def first_prompt(pair: dict) -> str:
    return extract_prompt("harmless_base", {"chosen": pair["prompt"] + " " + pair["chosen"]})


def test_assign_parts_fills_in_order_and_long_prompts_skip_prompt_parts() -> None:
    fits = {f"p{i}": i % 5 != 0 for i in range(40)}
    want = {"eval": 5, "validation": 3, "policy": 10, "reward_heldout": 6}
    part = assign_parts(fits, want, seed=0)
    counts = {p: sum(v == p for v in part.values()) for p in (*want, "reward_train")}
    assert counts == {**want, "reward_train": 16}
    assert all(part[p] in ("reward_heldout", "reward_train") for p, ok in fits.items() if not ok)
    assert assign_parts(fits, want, seed=0) == part and assign_parts(fits, want, seed=1) != part
    with pytest.raises(BadInputError, match=r"policy \(24 of 40\)"):
        assign_parts(fits, {**want, "policy": 40}, seed=0)


@needs_shared
def test_the_hh_profile_split_of_the_real_files_is_disjoint_and_counted() -> None:
    section = resolve("hh")["prepare"]
    cfg = PrepareConfig(**{**section, "data_dir": str(SHARED_DATA)})
    prompts, pairs, m = run_parts(cfg)
    assert sum(d["rows"] for d in m["datasets"].values()) == 8552  # the four test files
    assert sum(p["rows"] for p in m["parts"].values()) == 8552 - sum(
        d.get("malformed", 0) for d in m["datasets"].values())  # fmt: skip
    parts = {
        "eval": {p["prompt"] for p in prompts["test"]},
        "validation": {p["prompt"] for p in prompts["val"]},
        "policy": {p["prompt"] for p in prompts["train"] if p["dataset"] not in ("red_team", "webgpt")},
        "reward_heldout": {first_prompt(p) for p in pairs["test"]},
        "reward_train": {first_prompt(p) for p in pairs["train"]},
    }  # fmt: skip
    names = list(parts)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not parts[a] & parts[b], (a, b)
    extra = {p["prompt"] for p in prompts["train"] if p["dataset"] in ("red_team", "webgpt")}
    assert extra and not extra & set().union(*parts.values())
    p = cfg.parts
    assert len(prompts["test"]) == len(parts["eval"]) == p.eval_prompts >= 256
    assert len(prompts["val"]) == p.validation_prompts and len(parts["policy"]) == p.policy_prompts
    assert m["parts"]["reward_heldout"]["prompts"] == p.reward_heldout_prompts
    assert (m["test_pairs"], m["train_pairs"]) == (len(pairs["test"]), len(pairs["train"]))
    assert m["train_pairs"] > 4000 and m["test_pairs"] > 700
    assert run_parts(cfg)[0] == prompts  # seeded


def test_hh_profile_meets_the_issue() -> None:
    p = resolve("hh")
    ev, rm = p["evaluate"], p["reward_model"]
    assert p["prepare"]["parts"]["eval_prompts"] >= 256 and ev["max_test_prompts"] >= 256
    assert ev["best_of_n_curve"] >= 256 and ev["best_of_n_curve_prompts"] >= 128
    assert ev["best_of_n_pool"] >= ev["best_of_n_curve"]
    assert rm["proxy_labels"] == "gold" and rm["gold_split"] == "disjoint_share"
    assert rm["gold_share"] / (1 - rm["gold_share"]) >= 2  # the gold gets twice the pairs
    assert rm["gold_recipe"]["backbone"] not in (None, rm["name"])
    for method in ("superhf", "rlhf", "rloo", "grpo"):  # one KL grid to 8 nats, a stop at 10
        assert p[method]["snapshot_kl"] == [0.125, 0.25, 0.5, 1, 2, 4, 8], method
        assert p[method]["stop_kl"] >= 10, method
