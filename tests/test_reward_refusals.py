"""Reward folders that would silently score noise, or score the wrong text, are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoModelForSequenceClassification

from superhf.config.reward_model import RewardModelConfig
from superhf.materialise import materialise_pretrained
from superhf.models import ModelLoadError, load_reward_model, save_model
from superhf.reward import RewardScorer
from superhf.tiny import tiny_causal_lm, tiny_reward_backbone, tiny_tokenizer


def test_a_causal_lm_folder_is_not_a_reward_model(tmp_path: Path) -> None:
    tok = tiny_tokenizer()
    save_model(tiny_causal_lm(tok, seed=0), tok, tmp_path / "lm", {"input_format": "text"})
    # what the old loader did: a sequence classifier with a fresh, random head
    _, info = AutoModelForSequenceClassification.from_pretrained(
        tmp_path / "lm", num_labels=1, output_loading_info=True
    )
    assert info["missing_keys"]
    with pytest.raises(ModelLoadError, match=r"lm is not a trained reward model .*lacks score"):
        load_reward_model(tmp_path / "lm")
    with pytest.raises(ModelLoadError, match="not a trained reward model"):
        RewardScorer(tmp_path / "lm")
    cfg = RewardModelConfig(source="local", name=str(tmp_path / "lm"), input_format="text")
    with pytest.raises(ModelLoadError, match="not a trained reward model"):
        materialise_pretrained(cfg, cfg.name, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_backbone_without_its_head_is_refused(tmp_path: Path) -> None:
    """A checkpoint saved from the bare encoder (no classifier weights) is not a reward model."""
    tok = tiny_tokenizer(cls=True)
    rm = tiny_reward_backbone(tok, seed=0)
    backbone = getattr(rm, rm.base_model_prefix)
    backbone.save_pretrained(tmp_path / "enc")
    tok.save_pretrained(tmp_path / "enc")
    with pytest.raises(ModelLoadError, match=r"enc is not a trained reward model"):
        load_reward_model(tmp_path / "enc")


def test_a_reward_folder_without_meta_needs_its_format(tmp_path: Path) -> None:
    tok = tiny_tokenizer(cls=True)
    rm = tiny_reward_backbone(tok, seed=0)
    save_model(rm, tok, tmp_path / "rm", {"input_format": "pair", "max_length": 40})
    (tmp_path / "rm" / "superhf_meta.json").unlink()
    with pytest.raises(ModelLoadError, match=r"rm: no superhf_meta.json naming its input format"):
        RewardScorer(tmp_path / "rm")
    s = RewardScorer(tmp_path / "rm", input_format="text", max_length=48)
    assert (s.input_format, s.max_length) == ("text", 48)
    # stage reward_model: auto is refused for a folder without meta; explicit is recorded
    auto = RewardModelConfig(source="local", name=str(tmp_path / "rm"))
    with pytest.raises(ModelLoadError, match=r"'auto' but .*rm has no superhf_meta.json"):
        materialise_pretrained(auto, auto.name, tmp_path / "out")
    explicit = RewardModelConfig(source="local", name=str(tmp_path / "rm"), input_format="pair")
    materialise_pretrained(explicit, explicit.name, tmp_path / "out")
    meta = json.loads((tmp_path / "out" / "superhf_meta.json").read_text())
    assert meta["input_format"] == "pair" and meta["max_length"] == explicit.max_length
    assert RewardScorer(tmp_path / "out").input_format == "pair"
    # a folder we materialised before carries its meta, which auto reads
    materialise_pretrained(auto.model_copy(update={"name": str(tmp_path / "out")}),
                           str(tmp_path / "out"), tmp_path / "again")  # fmt: skip
    assert (
        json.loads((tmp_path / "again" / "superhf_meta.json").read_text())["input_format"] == "pair"
    )
