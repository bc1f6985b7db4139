"""Loading and materialising models: one safe loader for every stage.

Rules: ``trust_remote_code`` only when a param allows it; weights as safetensors where the
repo (or the revision) has them, else ``pytorch_model.bin`` through transformers'
``torch.load(weights_only=True)`` (never arbitrary unpickling), and the log says which.
Every model a later stage needs is written to ``models/`` with ``save_pretrained`` so DVC
caches it and other users can ``dvc pull`` it.
"""

from __future__ import annotations

import json
import logging
import os
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

from superhf.errors import UserError

log = logging.getLogger(__name__)


class ModelLoadError(UserError, RuntimeError):
    """A model folder or id cannot be used: missing, not a model, or not what was expected."""


def check_model_dir(path: str | Path) -> Path:
    """The cheap structural checks of a model folder (no tokenizer, no weights read):
    config.json is a JSON object, the weights are in one format, safetensors headers are
    whole. :func:`superhf.model_check.check_model_folder` adds the rest."""
    path = Path(path)
    if not path.is_dir():
        raise ModelLoadError(f"model folder not found: {path}")
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"{path} is not a model folder: it has no config.json")
    read_json_object(path / "config.json", "re-save the model with save_pretrained")
    safetensors = sorted(path.glob("*.safetensors"))
    pickled = sorted(path.glob("pytorch_model*.bin"))
    if safetensors and pickled:
        raise ModelLoadError(
            f"{path} holds weights in two formats ({safetensors[0].name} and "
            f"{pickled[0].name}); only {safetensors[0].name} would be read: delete the file "
            "that is not this model's weights"
        )
    for weights in safetensors:
        check_safetensors(weights)
    return path


def read_json_object(path: Path, fix: str) -> dict:
    """A JSON object file; anything else is one error naming the file, where and ``fix``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ModelLoadError(f"{path}: not UTF-8 text; {fix}") from None
    except json.JSONDecodeError as exc:
        raise ModelLoadError(
            f"{path}: not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg}); {fix}"
        ) from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path}: holds a {type(data).__name__}, not a JSON object; {fix}")
    return data


def check_safetensors(path: Path) -> None:
    """Read a safetensors header (no weights): a truncated or foreign file fails here, with
    its name, instead of as a deserialisation error deep inside transformers."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        try:
            if n <= 0 or 8 + n > size:
                raise ValueError("header length past the end of the file")
            header = json.loads(f.read(n))
            ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"]
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise ModelLoadError(
                f"{path}: not a readable safetensors file ({exc}); truncated or corrupt?"
            ) from None
    need = 8 + n + max(ends, default=0)
    if size < need:
        raise ModelLoadError(
            f"{path}: truncated ({size} bytes, its header needs {need}); copy or download it again"
        )


def _is_local(name: str) -> bool:
    return Path(name).exists()


def load_tokenizer(
    name: str | Path, *, revision: str | None = None, trust_remote_code: bool = False
) -> PreTrainedTokenizerBase:
    tok = AutoTokenizer.from_pretrained(
        str(name), revision=revision, trust_remote_code=trust_remote_code
    )
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise ModelLoadError(f"{name}: the tokenizer has neither a pad nor an EOS token")
        tok.pad_token = tok.eos_token
    return tok


def pick_device() -> torch.device:
    """The device every stage puts its models and batches on: the first GPU when there is
    one, else the CPU (what the trainers' ``Accelerator`` picks in a single process).
    ``SUPERHF_REQUIRE_CUDA=1`` makes a missing GPU an error instead of a CPU fallback (the
    GPU check, ``benchmarks/gpu_device.sh``, sets it)."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if os.environ.get("SUPERHF_REQUIRE_CUDA") == "1":
        raise RuntimeError("SUPERHF_REQUIRE_CUDA=1 but torch sees no CUDA device")
    return torch.device("cpu")


def torch_dtype(precision: str) -> torch.dtype:
    """``fp32`` or ``bf16`` (a params value) as a torch dtype."""
    return {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]


def from_pretrained_safe(auto_cls: Any, name: str | Path, **kw: Any) -> tuple[Any, str]:
    """``auto_cls.from_pretrained`` preferring safetensors; a repo (or revision) with only
    ``pytorch_model.bin`` is read by transformers' ``torch.load(weights_only=True)``.

    Returns (what from_pretrained returned, the weights format read) and logs the format.
    """
    where = f"{name}" + (f"@{kw['revision']}" if kw.get("revision") else "")
    try:
        out = auto_cls.from_pretrained(str(name), use_safetensors=True, **kw)
        fmt = "safetensors"
    except OSError as exc:
        if "safetensors" not in str(exc):
            raise
        out = auto_cls.from_pretrained(str(name), use_safetensors=False, weights_only=True, **kw)
        fmt = "pytorch_model.bin (torch.load weights_only=True)"
    log.info("%s: read %s weights", where, fmt)
    return out, fmt


def load_causal_lm(
    name: str | Path,
    *,
    revision: str | None = None,
    trust_remote_code: bool = False,
    dtype: torch.dtype = torch.float32,
) -> PreTrainedModel:
    """A causal LM from a hub id or a save_pretrained folder (safetensors preferred)."""
    if _is_local(str(name)):
        check_model_dir(name)
    try:
        model, _ = from_pretrained_safe(
            AutoModelForCausalLM,
            name,
            revision=revision,
            trust_remote_code=trust_remote_code,
            dtype=dtype,
        )
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load a causal LM from {name}: {exc}") from exc
    return model


def load_reward_model(
    name: str | Path,
    *,
    revision: str | None = None,
    trust_remote_code: bool = False,
    dtype: torch.dtype = torch.float32,
) -> PreTrainedModel:
    """A sequence classifier with exactly one output (the reward) whose every weight, the
    classification head included, was read from the checkpoint: a causal LM or a bare
    backbone would get a randomly initialised head and score noise, so it is refused."""
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
        (model, info), _ = from_pretrained_safe(
            AutoModelForSequenceClassification,
            name,
            revision=revision,
            trust_remote_code=trust_remote_code,
            num_labels=1,
            dtype=dtype,
            output_loading_info=True,
        )
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load a reward model from {name}: {exc}") from exc
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        arch = ", ".join(config.architectures or ["unknown architecture"])
        shown = ", ".join(missing[:6]) + (
            f" (+{len(missing) - 6} more)" if len(missing) > 6 else ""
        )
        raise ModelLoadError(
            f"{name} is not a trained reward model ({arch}): its checkpoint lacks {shown}, "
            "which would be randomly initialised"
        )
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
    fix = "delete it and materialise the model again (stage reward_model or base_policy)"
    return read_json_object(meta, fix) if meta.is_file() else {}


def is_disabled(folder: str | Path) -> bool:
    """Whether a model folder is the marker a training stage with ``enabled: false`` writes
    (``superhf_meta.json`` with ``disabled: true`` and no model): its method is skipped."""
    folder = Path(folder)
    meta = folder / "superhf_meta.json"
    if (folder / "config.json").is_file() or not meta.is_file():
        return False
    return bool(json.loads(meta.read_text()).get("disabled"))
