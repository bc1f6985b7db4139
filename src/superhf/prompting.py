"""How a prompt reaches the policy: the text it sees (a preamble and the raw dialogue, or
the model's chat template), its left-padded token batch, and the check that prompt and
completion fit the model's context.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from superhf.config.common import GenerationConfig
from superhf.params import ParamsError

_ROLE_RE = re.compile(r"\n\n(Human|Assistant):")


def dialogue_messages(prompt: str) -> list[dict[str, str]]:
    """``\\n\\nHuman: a\\n\\nAssistant: b ...`` -> chat messages (the last empty turn dropped)."""
    parts = _ROLE_RE.split(prompt)
    messages = []
    for role, text in zip(parts[1::2], parts[2::2]):
        text = text.strip()
        if text:
            messages.append({"role": "user" if role == "Human" else "assistant", "content": text})
    if not messages:
        messages.append({"role": "user", "content": prompt.strip()})
    return messages


def check_context(model_dir: str | Path, cfg: GenerationConfig, key: str) -> None:
    """Before any model loads: prompt budget plus new tokens must fit the model's context
    (``config.json``'s position limit); ``key`` names the params section in the error."""
    config = json.loads((Path(model_dir) / "config.json").read_text())
    names = ("max_position_embeddings", "n_positions", "n_ctx")
    limit = next((config[n] for n in names if isinstance(config.get(n), int)), None)
    need = cfg.max_prompt_tokens + cfg.max_new_tokens
    if limit is not None and need > limit:
        raise ParamsError(
            f"{key}.max_prompt_tokens + {key}.max_new_tokens = {need} tokens, more than the "
            f"{limit}-token context of {model_dir}"
        )


def format_prompt(prompt: str, tokenizer: PreTrainedTokenizerBase, cfg: GenerationConfig) -> str:
    """The text the policy sees: preamble + raw dialogue, or the model's chat template."""
    if cfg.prompt_format == "chat":
        if not getattr(tokenizer, "chat_template", None):
            raise ParamsError(
                "generation.prompt_format is 'chat' but the tokenizer has no template"
            )
        messages = dialogue_messages(prompt)
        if cfg.preamble:
            messages = [{"role": "system", "content": cfg.preamble}, *messages]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return cfg.preamble + prompt if cfg.preamble else prompt


def tokenize_prompts(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_prompt_tokens: int
) -> dict[str, torch.Tensor]:
    """Left-padded prompt batch; long prompts lose their beginning, never their end."""
    tokenizer.padding_side = "left"
    tokenizer.truncation_side = "left"
    return tokenizer(
        list(texts),
        return_tensors="pt",
        padding=True,
        truncation=True,
        max_length=max_prompt_tokens,
        add_special_tokens=False,
    )
