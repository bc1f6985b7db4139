"""The reward_model stage with an independent gold: its own recipe and share of the pairs,
the proxy on gold labels, and the held-out report on both."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from superhf import gold_labels, reward
from superhf.config.reward_model import RewardModelConfig
from superhf.materialise import load_reward_backbone
from superhf.packaged import cache_root
from superhf.stages import reward_model

PREFS = [{"prompt": f"\n\nHuman: q{i}\n\nAssistant:", "chosen": "Sure, here is a full answer.",
          "rejected": "no", "dataset": "d"} for i in range(12)]  # fmt: skip


def run_stage(tmp_path: Path, section: str) -> dict:
    (tmp_path / "prefs").mkdir(exist_ok=True)
    for split in ("train", "test"):
        (tmp_path / "prefs" / f"{split}.jsonl").write_text(
            "".join(json.dumps(p) + "\n" for p in PREFS)
        )
    (tmp_path / "params.yaml").write_text("reward_model:\n" + section)
    reward_model.main(["--params", str(tmp_path / "params.yaml"), "--preferences", str(tmp_path / "prefs"),
                       "--out", str(tmp_path / "r"), "--gold-out", str(tmp_path / "g"),
                       "--metrics", str(tmp_path / "m.json")])  # fmt: skip
    return json.loads((tmp_path / "m.json").read_text())


def test_gold_labels_the_proxy_pairs_and_trains_on_its_own_share(
    tmp_path: Path, monkeypatch
) -> None:
    trained: list[tuple[list[dict], float]] = []
    real = reward_model.train_reward_model
    monkeypatch.setattr(reward_model, "train_reward_model",
                        lambda m, t, pairs, **kw: trained.append((pairs, kw["lr"])) or real(m, t, pairs, **kw))  # fmt: skip
    # a gold that prefers the rejected "no" on every pair: the proxy must see every pair swapped
    fake = lambda s, pairs: ([0.0] * len(pairs), [1.0] * len(pairs))  # noqa: E731
    monkeypatch.setattr(reward_model, "score_pairs", fake)  # held-out scoring
    monkeypatch.setattr(gold_labels, "score_pairs", fake)  # the relabelling
    m = run_stage(tmp_path, "  name: tiny\n  batch_size: 4\n  max_length: 32\n  lr: 1.0e-4\n"
                  "  gold_split: disjoint_share\n  gold_share: 0.67\n  proxy_labels: gold\n"
                  "  gold_recipe: {backbone: tiny, lr: 3.0e-4}\n")  # fmt: skip
    (gold_pairs, gold_lr), (proxy_pairs, proxy_lr) = trained  # the gold first
    assert (len(gold_pairs), len(proxy_pairs)) == (8, 4) and (gold_lr, proxy_lr) == (3e-4, 1e-4)
    assert all(p["chosen"] == "no" for p in proxy_pairs)
    assert not {p["prompt"] for p in gold_pairs} & {p["prompt"] for p in proxy_pairs}
    assert m["relabelled"] == {"pairs": 4, "swapped": 4, "share_swapped": 1.0}
    assert (m["gold"]["train_pairs"], m["proxy"]["train_pairs"]) == (8, 4)
    h = m["heldout"]
    assert h["proxy"]["accuracy"] == 0.0 and h["gold"]["accuracy"] == 0.0  # the faked gold's scores
    assert h["length_baselines"]["longer_wins"]["accuracy"] == 1.0
    assert h["agreement"]["agreement"] == 1.0 and h["proxy"]["n"] == 12


def test_human_labels_keep_the_pairs(tmp_path: Path) -> None:
    m = run_stage(tmp_path, "  name: tiny\n  batch_size: 4\n  max_length: 32\n")
    assert "relabelled" not in m and m["proxy"]["train_pairs"] == m["gold"]["train_pairs"] == 6
    h = m["heldout"]
    assert h["proxy"]["ci_low"] <= h["proxy"]["accuracy"] <= h["proxy"]["ci_high"]
    assert m["proxy"]["test_accuracy"] == h["proxy"]["accuracy"]


@pytest.mark.skipif(not (cache_root() / "packaged" / "smollm2-135m-instruct").is_dir()
                    or not (cache_root() / "packaged" / "all-minilm-l6-v2").is_dir(),
                    reason="packaged models not fetched")  # fmt: skip
def test_smollm2_gold_is_another_architecture_with_5x_the_parameters() -> None:
    cfg = RewardModelConfig()
    gold, gtok = load_reward_backbone(cfg, 1, name="smollm2-135m-instruct")
    proxy, _ = load_reward_backbone(cfg, 0)
    assert type(gold).__name__ != type(proxy).__name__
    assert gold.num_parameters() >= 5 * proxy.num_parameters()
    enc = reward.encode(
        gtok, ["\n\nHuman: hi\n\nAssistant:"] * 2, ["Hello!", "Hello! How are you?"], "text", 64
    )
    alone = reward.encode(gtok, ["\n\nHuman: hi\n\nAssistant:"], ["Hello!"], "text", 64)
    # right padding: a text's score does not depend on its batch-mates' lengths
    assert gold(**enc).logits[0, 0].item() == pytest.approx(
        gold(**alone).logits[0, 0].item(), abs=1e-4
    )
