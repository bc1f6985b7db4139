"""Sampling completions for SuperHF, PPO and evaluation: batched generation with the KV
cache (rows that share a prompt share its prefill), each completion trimmed where the model
starts the next turn. The prompt batch comes from ``prompting``, the logits processors from
``decoding``, the trim rules from ``trimming``.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from superhf.config.common import GenerationConfig
from superhf.core import tail_forward_inputs
from superhf.decoding import InverseCDFSample, decode_processors, fast_cpu_head
from superhf.prompting import tokenize_prompts
from superhf.trimming import cut_ids_at_trim, trim_completion


@dataclass(frozen=True)
class Completion:
    """One sampled completion: ``text`` is trimmed and stripped (what is scored and shown);
    ``ids`` are the sampled token ids cut at the trim point (what is trained on and what
    the KL diagnostic scores); ``sampled_ids`` are every sampled id, up to and including a
    sampled EOS, without padding."""

    text: str
    ids: list[int]
    sampled_ids: list[int]


def cache_kwarg(model: PreTrainedModel) -> str:
    """The name this transformers version gives the KV-cache argument (``cache`` from 5.x's
    rename on, ``past_key_values`` before it)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return (
        "cache"
        if "cache" in inspect.signature(type(base).forward).parameters
        else "past_key_values"
    )


def prefill_shared(model: PreTrainedModel, enc: dict[str, torch.Tensor], rows: torch.Tensor):
    """Run every distinct prompt (all tokens but its last) through the model once, then copy
    its KV cache to each row that samples from it. ``generate`` given this cache feeds only
    the last prompt token, so S completions of one prompt cost one prefill, not S."""
    cache = DynamicCache(config=model.config)
    ids, attn = enc["input_ids"][:, :-1], enc["attention_mask"][:, :-1]
    model(**tail_forward_inputs(ids, attn, 1), use_cache=True, **{cache_kwarg(model): cache})
    cache.batch_select_indices(rows)
    return cache


def sampled_ids(new_tokens: torch.Tensor, eos_id: int | None) -> list[list[int]]:
    """Each row's sampled ids: up to and including its first EOS (the padding after it
    dropped), or all of them when it never sampled EOS."""
    out = []
    for row in new_tokens.tolist():
        if eos_id is not None and eos_id in row:
            row = row[: row.index(eos_id) + 1]
        out.append(row)
    return out


@torch.inference_mode()
def generate_ids(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    cfg: GenerationConfig,
    *,
    do_sample: bool = True,
    share_prefill: bool = True,
    **extra: object,
) -> list[list[int]]:
    """Sample one completion per formatted prompt text: its new token ids (``sampled_ids``).

    Batches of ``cfg.batch_size`` rows, KV cache on. Rows with the same prompt (SuperHF's
    superbatch, best-of-n) share one prefill (``prefill_shared``) unless ``share_prefill``
    is False. The caller seeds torch's RNG. ``extra`` goes to ``model.generate`` (the
    benchmarks pass ``min_new_tokens``).
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out: list[list[int]] = []
    kwargs = dict(
        max_new_tokens=cfg.max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        use_cache=True,
    )
    # generate's own repetition penalty and warpers off: ours run, in order, in their place
    procs = decode_processors(cfg, do_sample)
    if do_sample and cfg.sampler == "multinomial":
        kwargs.update(do_sample=True, temperature=1.0, top_p=1.0, top_k=0)
    else:  # greedy; with the inverse-CDF sampler the last processor has drawn the token
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if do_sample:
            procs.append(InverseCDFSample())
    kwargs["logits_processor"] = procs
    with fast_cpu_head(model):
        batches = range(0, len(texts), cfg.batch_size)
        for start in tqdm(
            batches, desc="generate", unit="batch", disable=None, delay=2, leave=False
        ):
            chunk = list(texts[start : start + cfg.batch_size])
            distinct = list(dict.fromkeys(chunk)) if share_prefill else chunk
            inputs = tokenize_prompts(tokenizer, distinct, cfg.max_prompt_tokens).to(device)
            cached = {}
            if len(distinct) < len(chunk):  # tokenized once per prompt, then one row per text
                where = {t: i for i, t in enumerate(distinct)}
                rows = torch.tensor([where[t] for t in chunk], device=device)
                if int(inputs["attention_mask"].sum(1).min()) >= 2:
                    cached[cache_kwarg(model)] = prefill_shared(model, inputs, rows)
                inputs = {k: v[rows] for k, v in inputs.items()}
            seqs = model.generate(**inputs, **kwargs, **cached, **extra)
            out += sampled_ids(seqs[:, inputs["input_ids"].shape[1] :], tokenizer.eos_token_id)
    model.train(was_training)
    return out


def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    cfg: GenerationConfig,
    **kwargs: object,
) -> list[str]:
    """Sample one raw completion (new tokens only, decoded) per formatted prompt text;
    arguments as ``generate_ids``."""
    ids = generate_ids(model, tokenizer, texts, cfg, **kwargs)
    return tokenizer.batch_decode(ids, skip_special_tokens=True)


def sample_completions(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    cfg: GenerationConfig,
    **kwargs: object,
) -> list[Completion]:
    """Sample, then trim each completion under ``cfg.trim``: its text and its sampled ids
    cut at the trim point (``cut_ids_at_trim``). Arguments as ``generate_ids``."""
    rows = generate_ids(model, tokenizer, texts, cfg, **kwargs)

    def decode(ids: list[int]) -> str:
        return tokenizer.decode(ids, skip_special_tokens=True)

    return [
        Completion(
            trim_completion(decode(ids), cfg.trim), cut_ids_at_trim(ids, decode, cfg.trim), ids
        )
        for ids in rows
    ]


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct n-grams over all n-grams of whitespace tokens (0 when there are none)."""
    grams = [
        tuple(words[i : i + n])
        for words in (t.split() for t in texts)
        for i in range(len(words) - n + 1)
    ]
    return len(set(grams)) / len(grams) if grams else 0.0
