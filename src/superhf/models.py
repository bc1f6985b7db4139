"""Loading and materialising models: one safe loader for every stage.

Rules: ``trust_remote_code`` only when a param allows it; weights as safetensors; any
``torch.load`` with ``weights_only=True``. Every model a later stage needs is written to
``models/`` with ``save_pretrained`` so DVC caches it and other users can ``dvc pull`` it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)


class ModelLoadError(RuntimeError):
    """A model folder or id cannot be used: missing, not a model, or not what was expected."""


def check_model_dir(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise ModelLoadError(f"model folder not found: {path}")
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"{path} is not a model folder: it has no config.json")
    return path


def _is_local(name: str) -> bool:
    return Path(name).exists()


def load_tokenizer(
    name: str | Path, *, revision: str | None = None, trust_remote_code: bool = False
) -> PreTrainedTokenizerBase:
    tok = AutoTokenizer.from_pretrained(
        str(name), revision=revision, trust_remote_code=trust_remote_code
    )
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(
    name: str | Path,
    *,
    revision: str | None = None,
    trust_remote_code: bool = False,
    dtype: torch.dtype = torch.float32,
) -> PreTrainedModel:
    """A causal LM from a hub id or a save_pretrained folder, safetensors only."""
    if _is_local(str(name)):
        check_model_dir(name)
    try:
        return AutoModelForCausalLM.from_pretrained(
            str(name),
            revision=revision,
            trust_remote_code=trust_remote_code,
            use_safetensors=True,
            dtype=dtype,
        )
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load a causal LM from {name}: {exc}") from exc


def load_reward_model(
    name: str | Path, *, revision: str | None = None, trust_remote_code: bool = False
) -> PreTrainedModel:
    """A sequence classifier with exactly one output (the reward)."""
    if _is_local(str(name)):
        check_model_dir(name)
    try:
        config = AutoConfig.from_pretrained(
            str(name), revision=revision, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read a model config from {name}: {exc}") from exc
    if (
        getattr(config, "num_labels", 1) != 1
        and config.architectures
        and any(a.endswith("ForSequenceClassification") for a in config.architectures)
    ):
        raise ModelLoadError(
            f"{name} has {config.num_labels} outputs; a reward model must have exactly 1"
        )
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            str(name),
            revision=revision,
            trust_remote_code=trust_remote_code,
            use_safetensors=True,
            num_labels=1,
        )
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load a reward model from {name}: {exc}") from exc
    return model


def load_gguf_as_plain(folder: Path, gguf_file: str) -> tuple[PreTrainedModel, Any]:
    """De-quantise a GGUF checkpoint into a plain fp32 model that save_pretrained accepts.

    transformers loads GGUF with ``gguf_file=`` but marks the model as quantised, and
    ``save_pretrained`` then refuses it; rebuilding the same architecture from the config
    without ``quantization_config`` and loading the state dict gives identical logits.
    """
    tok = AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf_file)
    quantised = AutoModelForCausalLM.from_pretrained(
        str(folder), gguf_file=gguf_file, dtype=torch.float32
    )
    config = quantised.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(quantised.state_dict(), strict=False)
    missing = [k for k in missing if "lm_head" not in k or not config.tie_word_embeddings]
    if missing or unexpected:
        raise ModelLoadError(f"GGUF conversion mismatch: missing {missing}, extra {unexpected}")
    plain.tie_weights()
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return plain.eval(), tok


def save_model(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, out: Path, meta: dict
) -> None:
    """save_pretrained (safetensors) + tokenizer + a small provenance file, into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / "superhf_meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def read_meta(path: str | Path) -> dict:
    meta = Path(path) / "superhf_meta.json"
    return json.loads(meta.read_text()) if meta.is_file() else {}
