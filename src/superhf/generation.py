"""One generation module for SuperHF, PPO and evaluation: prompt formatting, batched
sampling with the KV cache, and trimming a completion where the model starts the next turn.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from superhf.config import GenerationConfig

# The next turn starts at "Human:", "Assistant:", or a "\n\n<Name>:" of one to three words.
# (The paper's code cut at "\n\n[^:]+:|Human|Assistant", which also cut a reply that merely
# mentions the word "Human".)
TURN_RE = re.compile(r"Human:|Assistant:|\n\n[^\s:]+(?: [^\s:]+){0,2}:")
_ROLE_RE = re.compile(r"\n\n(Human|Assistant):")


def trim_completion(text: str) -> str:
    """Cut ``text`` at the first sign of a new dialogue turn, and strip it."""
    m = TURN_RE.search(text)
    return (text[: m.start()] if m else text).strip()


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


def format_prompt(prompt: str, tokenizer: PreTrainedTokenizerBase, cfg: GenerationConfig) -> str:
    """The text the policy sees: preamble + raw dialogue, or the model's chat template."""
    if cfg.prompt_format == "chat":
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("generation.prompt_format is 'chat' but the tokenizer has no template")
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


@torch.inference_mode()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    cfg: GenerationConfig,
    *,
    do_sample: bool = True,
    **extra: object,
) -> list[str]:
    """Sample one raw completion (new tokens only, decoded) per formatted prompt text.

    Batches of ``cfg.batch_size`` rows, KV cache on. The caller seeds torch's RNG.
    ``extra`` goes to ``model.generate`` (the benchmarks pass ``min_new_tokens``).
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out: list[str] = []
    for start in range(0, len(texts), cfg.batch_size):
        enc = tokenize_prompts(
            tokenizer, texts[start : start + cfg.batch_size], cfg.max_prompt_tokens
        )
        enc = enc.to(device)
        kwargs = dict(
            max_new_tokens=cfg.max_new_tokens,
            repetition_penalty=cfg.repetition_penalty,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            use_cache=True,
        )
        if do_sample:
            kwargs.update(do_sample=True, temperature=cfg.temperature, top_p=cfg.top_p, top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        seqs = model.generate(**enc, **kwargs, **extra)
        new = seqs[:, enc["input_ids"].shape[1] :]
        out += tokenizer.batch_decode(new, skip_special_tokens=True)
    model.train(was_training)
    return out


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct n-grams over all n-grams of whitespace tokens (0 when there are none)."""
    grams = [
        tuple(words[i : i + n])
        for words in (t.split() for t in texts)
        for i in range(len(words) - n + 1)
    ]
    return len(set(grams)) / len(grams) if grams else 0.0
