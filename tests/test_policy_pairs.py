"""Proxy pairs made of the base policy's own samples, ordered by the gold (Gao et al. 2022):
the pure pairing and hold-out, and the reward_model stage that samples, judges and trains on
them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import PROMPTS, TINY_GEN, make_tiny_models

from superhf import gold_labels
from superhf.config.common import GenerationConfig
from superhf.config.reward_model import RewardModelConfig
from superhf.errors import BadInputError
from superhf.io import read_jsonl
from superhf.models import load_causal_lm, load_tokenizer
from superhf.policy_pairs import judged_pairs, pick_prompts, sample_two, split_heldout
from superhf.stages import reward_model


def test_judged_pairs_chosen_is_the_judges_higher_and_drops_what_cannot_be_ordered() -> None:
    prompts = ["p1", "p2", "p3", "p4", "p5"]
    first = ["a", "same", "", "c", "e"]
    second = ["b", "same", "x", "d", "f"]
    pairs, dropped = judged_pairs(prompts, first, second, [0.1, 1, 1, 2, 3], [0.2, 2, 2, 2, -1])
    assert pairs == [
        {"prompt": "p1", "chosen": "b", "rejected": "a"},  # the second scored higher
        {"prompt": "p5", "chosen": "e", "rejected": "f"},
    ]
    assert dropped == {"same_text": 1, "empty": 1, "tie": 1}
    with pytest.raises(ValueError):  # lengths must match
        judged_pairs(prompts, first, second, [0.0], [1.0])


def test_split_heldout_is_seeded_disjoint_and_keeps_order() -> None:
    pairs = [{"i": i} for i in range(10)]
    train, held = split_heldout(pairs, 0.3, seed=4)
    assert len(held) == 3 and len(train) == 7
    assert sorted(p["i"] for p in train + held) == list(range(10))
    assert [p["i"] for p in train] == sorted(p["i"] for p in train)
    assert (train, held) == split_heldout(pairs, 0.3, seed=4)
    assert split_heldout(pairs, 0.0, seed=4) == (pairs, [])
    assert len(split_heldout(pairs[:3], 0.01, seed=0)[1]) == 1  # at least one held out


def test_pick_prompts_is_a_seeded_subset_without_repeats() -> None:
    rows = [{"prompt": f"q{i}"} for i in range(20)]
    a = pick_prompts(rows, 5, seed=1)
    assert len(set(a)) == 5 and a == pick_prompts(rows, 5, seed=1) and a != pick_prompts(rows, 5, 2)
    assert sorted(pick_prompts(rows, 50, seed=1)) == sorted(r["prompt"] for r in rows)


def test_sample_two_draws_two_per_prompt_in_one_seeded_call(tmp_path: Path) -> None:
    policy, _ = make_tiny_models(tmp_path)
    model, tok = load_causal_lm(policy).eval(), load_tokenizer(policy)
    gen = GenerationConfig(**TINY_GEN)
    a, b = sample_two(model, tok, PROMPTS, gen, seed=3)
    assert len(a) == len(b) == len(PROMPTS)
    assert (a, b) == sample_two(model, tok, PROMPTS, gen, seed=3)
    assert a != b  # two draws, not one repeated


def test_policy_pairs_need_gold_labels() -> None:
    with pytest.raises(ValueError, match="policy_pairs.prompts > 0 needs"):
        RewardModelConfig(policy_pairs={"prompts": 4})


PREFS = [{"prompt": f"\n\nHuman: q{i}\n\nAssistant:", "chosen": "Sure, here is a full answer.",
          "rejected": "no", "dataset": "d"} for i in range(12)]  # fmt: skip
SECTION = ("  name: tiny\n  batch_size: 4\n  max_length: 32\n  gold_split: disjoint_share\n"
           "  gold_share: 0.67\n  proxy_labels: gold\n  gold_recipe: {backbone: tiny}\n"
           f"  policy_pairs: {{prompts: 24, heldout_share: 0.25, keep_hh_pairs: KEEP, "
           f"generation: {json.dumps(TINY_GEN)}}}\n")  # fmt: skip


def run_stage(tmp_path: Path, keep: bool, with_policy: bool = True, *more: str) -> dict:
    (tmp_path / "prefs").mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        (tmp_path / "prefs" / f"{split}.jsonl").write_text(
            "".join(json.dumps(p) + "\n" for p in PREFS)
        )
    policy, _ = make_tiny_models(tmp_path)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p + f" {i}"}) + "\n"
                               for i in range(10) for p in PROMPTS))  # fmt: skip
    section = SECTION.replace("KEEP", str(keep).lower())
    (tmp_path / "params.yaml").write_text("reward_model:\n" + section)
    extra = ["--base", str(policy), "--prompts", str(prompts)] if with_policy else []
    reward_model.main(["--params", str(tmp_path / "params.yaml"), "--preferences", str(tmp_path / "prefs"),
                       "--out", str(tmp_path / "r"), "--gold-out", str(tmp_path / "g"),
                       "--metrics", str(tmp_path / "m.json"), *extra, *more])  # fmt: skip
    return json.loads((tmp_path / "m.json").read_text())


@pytest.mark.parametrize("keep", [True, False])
def test_stage_trains_the_proxy_on_gold_ordered_policy_samples(
    tmp_path: Path, monkeypatch, keep: bool
) -> None:
    trained: list[list[dict]] = []
    real = reward_model.train_reward_model
    monkeypatch.setattr(reward_model, "train_reward_model",
                        lambda m, t, pairs, **kw: trained.append(pairs) or real(m, t, pairs, **kw))  # fmt: skip
    # a gold that scores a text by its length: every policy pair's chosen is the longer
    monkeypatch.setattr(reward_model.RewardScorer, "score",
                        lambda self, prompts, comps: [float(len(c)) for c in comps])  # fmt: skip
    m = run_stage(tmp_path, keep)
    pp = m["policy_pairs"]
    gold_pairs, proxy_pairs = trained
    policy = [p for p in proxy_pairs if p["chosen"] not in {"no", "Sure, here is a full answer."}]
    assert len(policy) == pp["train_pairs"] > 0
    assert len(proxy_pairs) == pp["train_pairs"] + (4 if keep else 0)
    assert pp["prompts"] == 24 and pp["pairs"] + sum(pp["dropped"].values()) == 24
    assert pp["heldout_pairs"] == round(0.25 * pp["pairs"])
    assert all(len(p["chosen"]) > len(p["rejected"]) for p in policy)
    assert pp["gold_longer_wins"]["accuracy"] == 1.0
    assert pp["proxy_heldout"]["n"] == pp["heldout_pairs"]  # the proxy judged on held-out pairs
    assert not {p["prompt"] for p in gold_pairs} & {p["prompt"] for p in policy}


def test_stage_refuses_policy_pairs_without_a_base_before_training(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(reward_model, "train_reward_model", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(BadInputError, match="needs --base"):
        run_stage(tmp_path, True, with_policy=False)


def test_a_rebuild_trains_the_proxy_on_the_recorded_pairs_not_on_its_own_gold(
    tmp_path: Path, monkeypatch
) -> None:
    """The pairs the gold ordered are recorded beside the proxy; a run given the record
    (--proxy-pairs) trains the same proxy on them even when its own gold would order every
    pair the other way and its samples would differ (another CPU's last bits, in small)."""
    trained: list[list[dict]] = []
    real = reward_model.train_reward_model
    monkeypatch.setattr(reward_model, "train_reward_model",
                        lambda m, t, pairs, **kw: trained.append(pairs) or real(m, t, pairs, **kw))  # fmt: skip
    # the first run's gold prefers the shorter text: every hh pair swapped
    monkeypatch.setattr(reward_model.RewardScorer, "score",
                        lambda self, prompts, comps: [-float(len(c)) for c in comps])  # fmt: skip
    first = run_stage(tmp_path / "a", True)
    record = tmp_path / "a" / "r" / reward_model.PAIRS_FILE
    assert first["proxy_pairs"]["rows"] == 4 + first["policy_pairs"]["pairs"]
    assert first["relabelled"]["swapped"] == 4
    # the rebuild's gold prefers the longer text everywhere, and it must not sample at all
    monkeypatch.setattr(reward_model.RewardScorer, "score",
                        lambda self, prompts, comps: [float(len(c)) for c in comps])  # fmt: skip
    monkeypatch.setattr(gold_labels, "sample_two", lambda *a, **k: pytest.fail("sampled"))
    again = run_stage(tmp_path / "b", True, True, "--proxy-pairs", str(record))
    assert trained[3] == trained[1]  # the proxy's pairs, in order (the gold's differ: [0], [2])
    assert again["proxy_pairs"] == first["proxy_pairs"]
    assert (tmp_path / "b" / "r" / reward_model.PAIRS_FILE).read_bytes() == record.read_bytes()
    assert again["relabelled"] == first["relabelled"]
    for key in ("pairs", "train_pairs", "heldout_pairs", "gold_longer_wins"):
        assert again["policy_pairs"][key] == first["policy_pairs"][key]
    weights = lambda run: (tmp_path / run / "r" / "model.safetensors").read_bytes()  # noqa: E731
    assert weights("a") == weights("b")  # the same proxy, bit for bit on one machine


def test_a_record_of_other_data_is_refused_before_the_proxy_trains(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(reward_model.RewardScorer, "score",
                        lambda self, prompts, comps: [float(len(c)) for c in comps])  # fmt: skip
    run_stage(tmp_path / "a", True)
    rows = read_jsonl(tmp_path / "a" / "r" / reward_model.PAIRS_FILE)
    bad = tmp_path / "bad.jsonl"
    rows[0]["hh"] = (rows[0]["hh"] + 1) % len(PREFS)  # another pair than the proxy's share
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setattr(reward_model, "train_reward_model", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(BadInputError, match="not this run's proxy share"):
        run_stage(tmp_path / "b", True, True, "--proxy-pairs", str(bad))
    rows = read_jsonl(tmp_path / "a" / "r" / reward_model.PAIRS_FILE)
    hh_only = [r for r in rows if "hh" in r]  # a record without the policy pairs
    bad.write_text("".join(json.dumps(r) + "\n" for r in hh_only))
    with pytest.raises(
        BadInputError, match="0 policy pairs, but this run's policy_pairs.prompts is 24"
    ):
        run_stage(tmp_path / "d", True, True, "--proxy-pairs", str(bad))
    bad.write_text(json.dumps({"hh": 99, "swap": False}) + "\n")
    with pytest.raises(BadInputError, match=r"bad.jsonl row 1: expected"):
        run_stage(tmp_path / "c", True, True, "--proxy-pairs", str(bad))
