"""Refuse a model folder that is not what it claims, before any stage loads weights.

Every stage calls :func:`check_model_folder` at its start for every model folder it names
(policy, reward, gold, evaluated models, reference models, local sources). Nothing heavy
loads: config.json, the safetensors headers, the tokenizer files and superhf_meta.json are
read, and the model is built on the ``meta`` device (no memory) to know the shapes its
config describes. Each failure is one :class:`~superhf.models.ModelLoadError` naming the
folder, the file and what to do:

1. config.json parses, the weights are in one format, the safetensors headers are whole
   (:func:`superhf.models.check_model_dir`);
2. every tensor in the safetensors files has the shape config.json describes;
3. tokenizer files exist and load, and the tokenizer is not a degenerate fallback (an empty
   vocabulary that maps every word to one unknown token);
4. its vocabulary fits the model's embedding rows (a larger one crashes inside the
   forward) and covers most of them (a much smaller one is another model's);
5. the special tokens the role needs exist (a pad or EOS token; EOS the one config.json
   names; a chat template when the prompts use it);
6. superhf_meta.json parses, and a reward model's names an input format SuperHF knows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import torch
from safetensors import safe_open
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedTokenizerBase,
)

from superhf.models import ModelLoadError, check_model_dir, read_meta

Role = Literal["policy", "reward", "backbone"]
INPUT_FORMATS = ("text", "pair", "upstream")
# a tokenizer of this model covers all but a few padding rows of its embedding (phi-2: 1.8%
# unused, Qwen2.5: 0.2%); one covering less than this share is another model's
MIN_VOCAB_COVERAGE = 0.9
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "vocab.json",
    "vocab.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.tiktoken",
)
PROBE = "The quick brown fox jumps over the lazy dog. Paris is the capital of France, 42!"
RESAVE = "re-save the model with save_pretrained, or copy the folder again"


def check_model_folder(
    path: str | Path,
    role: Role,
    *,
    trust_remote_code: bool = False,
    input_format: bool = False,
    chat: bool = False,
) -> Path:
    """Every check above for the folder at ``path``, used as ``role``: ``policy`` (a
    causal LM), ``reward`` (a sequence classifier with one output) or ``backbone`` (a
    model a reward head is trained on). ``input_format``: superhf_meta.json must name the
    reward model's input format; ``chat``: the tokenizer must have a chat template."""
    folder = check_model_dir(path)
    config = read_config(folder, trust_remote_code)
    check_weight_shapes(folder, config, role)
    tok = check_tokenizer(folder, trust_remote_code)
    check_vocabulary(folder, tok, config)
    check_special_tokens(folder, tok, config, role, chat)
    check_meta(folder, input_format)
    return folder


def read_config(folder: Path, trust_remote_code: bool):
    try:
        return AutoConfig.from_pretrained(str(folder), trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(
            f"{folder}/config.json: not a config transformers can read "
            f"({_first_line(exc)}); {RESAVE}"
        ) from None


def expected_shapes(folder: Path, config, role: Role) -> tuple[dict[str, tuple], str] | None:
    """Tensor name -> shape of the model config.json describes, built on the meta device;
    None for remote-code models (their classes are not imported to check a folder) and
    quantised ones (their packed tensors have other shapes)."""
    if getattr(config, "auto_map", None) or getattr(config, "quantization_config", None):
        return None
    cls = AutoModelForCausalLM if role == "policy" else AutoModelForSequenceClassification
    if role != "policy":
        config.num_labels = 1
    try:
        with torch.device("meta"):
            model = cls.from_config(config)
    except ValueError as exc:
        kind = "a causal LM" if role == "policy" else "a sequence classifier"
        raise ModelLoadError(
            f"{folder}/config.json describes a {config.model_type} model, which is not {kind} "
            f"({_first_line(exc)}): name a {kind.split()[-1]} folder here"
        ) from None
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    return shapes, model.base_model_prefix


def check_weight_shapes(folder: Path, config, role: Role) -> None:
    """Each tensor of the safetensors files against the shape config.json implies (names
    with or without the base model's prefix); tensors the model does not have are left to
    the loader."""
    files = sorted(folder.glob("*.safetensors"))
    found = expected_shapes(folder, config, role) if files else None
    if found is None:
        return
    shapes, prefix = found
    for file in files:
        with safe_open(str(file), framework="pt") as st:
            for name in st.keys():  # noqa: SIM118 - safe_open has no __iter__
                candidates = (name, f"{prefix}.{name}", name.removeprefix(f"{prefix}."))
                want = next((shapes[c] for c in candidates if c in shapes), None)
                got = tuple(st.get_slice(name).get_shape())
                if want is not None and got != want:
                    raise ModelLoadError(
                        f"{file}: tensor {name} has shape {list(got)} but config.json "
                        f"describes {list(want)}: the weights and config.json are of "
                        f"different models; {RESAVE}"
                    )


def check_tokenizer(folder: Path, trust_remote_code: bool) -> PreTrainedTokenizerBase:
    """The folder's tokenizer, loaded; refused when its files are missing, do not load, or
    give a degenerate fallback that maps every word of a probe sentence to one token."""
    if not any((folder / f).is_file() for f in TOKENIZER_FILES) and not list(
        folder.glob("*.tiktoken")
    ):
        raise ModelLoadError(
            f"{folder}: no tokenizer files (tokenizer.json, vocab.txt, tokenizer.model, ...): "
            "copy this model's tokenizer into it (tokenizer.save_pretrained(folder))"
        )
    try:
        tok = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=trust_remote_code)
    except Exception as exc:  # tokenizers fail with many types; each is this folder's fault
        raise ModelLoadError(
            f"{folder}: its tokenizer files do not load ({type(exc).__name__}: "
            f"{_first_line(exc)}); copy this model's tokenizer into it again"
        ) from None
    ids = tok(PROBE, add_special_tokens=False)["input_ids"]
    unknown = tok.unk_token_id is not None and all(i == tok.unk_token_id for i in ids)
    if len(set(ids)) < 2 or unknown:
        raise ModelLoadError(
            f"{folder}: its tokenizer ({len(tok)} tokens) maps every word to one token: an "
            "empty fallback, not this model's tokenizer; copy this model's tokenizer into it"
        )
    return tok


def check_vocabulary(folder: Path, tok: PreTrainedTokenizerBase, config) -> None:
    """The tokenizer's ids must index the embedding (``vocab_size`` rows) and cover most
    of it; a model whose config names no vocabulary size is not checked."""
    rows = getattr(config.get_text_config(), "vocab_size", None)
    if not isinstance(rows, int):
        return
    n = len(tok)
    if n > rows:
        raise ModelLoadError(
            f"{folder}: the tokenizer has {n} tokens but config.json has {rows} embedding "
            "rows (ids past the last row crash the model): the tokenizer is another model's; "
            "copy this model's tokenizer into the folder"
        )
    if n < MIN_VOCAB_COVERAGE * rows:
        raise ModelLoadError(
            f"{folder}: the tokenizer has {n} tokens for {rows} embedding rows in config.json "
            f"(under {MIN_VOCAB_COVERAGE:.0%}): it is another model's tokenizer, whose ids "
            "mean other tokens here; copy this model's tokenizer into the folder"
        )


def check_special_tokens(folder: Path, tok, config, role: Role, chat: bool) -> None:
    """A pad or EOS token (batches are padded with it); a policy's EOS is an end of text
    config.json names (generation stops on it); a chat template when prompts use one."""
    if tok.pad_token is None and tok.eos_token is None:
        raise ModelLoadError(f"{folder}: the tokenizer has neither a pad nor an EOS token")
    eos_ids = _eos_ids(folder, config)
    known = role != "policy" or tok.eos_token_id is None or not eos_ids
    if not known and tok.eos_token_id not in eos_ids:
        raise ModelLoadError(
            f"{folder}: the tokenizer's EOS {tok.eos_token!r} is id {tok.eos_token_id} but "
            f"config.json ends text with {sorted(eos_ids)}: the tokenizer is another "
            "model's; copy this model's tokenizer into the folder"
        )
    if chat and not getattr(tok, "chat_template", None):
        raise ModelLoadError(
            f"{folder}: generation.prompt_format is 'chat' but the tokenizer has no chat "
            "template (tokenizer_config.json chat_template); use prompt_format: raw"
        )


def check_meta(folder: Path, input_format: bool) -> None:
    """superhf_meta.json parses (read_meta), and names a known input format when asked."""
    meta = read_meta(folder)
    if input_format and meta.get("input_format") not in INPUT_FORMATS:
        raise ModelLoadError(
            f"{folder}/superhf_meta.json: input_format is {meta.get('input_format')!r}, not one "
            f"of {', '.join(INPUT_FORMATS)}: materialise the reward model with stage "
            "reward_model (source: local, input_format: text|pair|upstream)"
        )


def _eos_ids(folder: Path, config) -> set[int]:
    """End-of-text ids named by config.json and generation_config.json (int or list)."""
    named = [getattr(config.get_text_config(), "eos_token_id", None)]
    gen = folder / "generation_config.json"
    if gen.is_file():
        try:
            named.append(json.loads(gen.read_text()).get("eos_token_id"))
        except (ValueError, AttributeError):
            raise ModelLoadError(f"{gen}: not a JSON object; {RESAVE}") from None
    ids: set[int] = set()
    for x in named:
        ids.update(x if isinstance(x, list) else [x] if isinstance(x, int) else [])
    return ids


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
