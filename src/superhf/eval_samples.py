"""A policy's samples on the test prompts and what evaluation measures of them: the rows
drawn, their proxy and gold scores, and their log-ratio to the base policy; ``unwarped_point``
puts these together as the KL to the base and the rewards of the unwarped policy, for the
evaluation table (``superhf.evaluation``) and every over-optimisation point
(``superhf.eval_curves``).

Samples per prompt: ``evaluate.samples_per_prompt`` (k) completions of every test prompt,
drawn in one call (each prompt repeated k times, prompt-major, ``draws``); the prompt is the
unit of every mean and interval (its k samples averaged first, ``superhf.stats``), the KL too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from superhf.config.common import GenerationConfig, unwarped
from superhf.config.evaluate import EvaluateConfig
from superhf.core import (
    IGNORE,
    build_sft_batch,
    shifted_logprobs,
    tail_columns,
    tail_forward_inputs,
)
from superhf.generation import Completion, sample_completions
from superhf.overopt import kl_estimate
from superhf.prompting import format_prompt
from superhf.reward import RewardScorer
from superhf.stats import summary, unit_means


def draws(cfg: EvaluateConfig, test: list[dict]) -> list[dict]:
    """Every test prompt ``samples_per_prompt`` times, prompt-major: the rows sampled."""
    k = cfg.samples_per_prompt
    return [t for t in test for _ in range(k)]


def score_all(
    scorers: dict[str, RewardScorer], prompts: list[str], comps: list[str]
) -> dict[str, list[float]]:
    return {name: s.score(prompts, comps) for name, s in scorers.items()}


def sample_scored(
    cfg: EvaluateConfig, gen: GenerationConfig, model, tok, test: list[dict], scorers
) -> tuple[list[Completion], dict[str, list[float]]]:
    """``model``'s completions for the test prompts (``draws``: k per prompt) under sampler
    ``gen`` (seed ``cfg.seed``) and their proxy and gold scores."""
    prompts = [t["prompt"] for t in draws(cfg, test)]
    texts = [format_prompt(p, tok, gen) for p in prompts]
    torch.manual_seed(cfg.seed)
    sampled = sample_completions(model, tok, texts, gen)
    return sampled, score_all(scorers, prompts, [c.text for c in sampled])


@torch.inference_mode()
def sequence_logprobs(
    model,
    tok,
    texts: Sequence[str],
    completion_ids: Sequence[Sequence[int]],
    bs: int = 16,
    max_prompt_tokens: int | None = None,
) -> list[float]:
    """log p(completion | prompt text) under ``model``, one number per row; the completion
    is given as the token ids the policy sampled (cut at the trim point), never re-tokenised.
    ``max_prompt_tokens``: the prompt is cut from the left as generation cut it, so the
    tokens are scored under the context they were sampled from."""
    out = []
    for s in tqdm(
        range(0, len(texts), bs), desc="KL log-probs", disable=None, delay=2, leave=False
    ):
        p = [tok(t, add_special_tokens=False)["input_ids"] for t in texts[s : s + bs]]
        if max_prompt_tokens:
            p = [ids[-max_prompt_tokens:] for ids in p]
        c = [list(x) for x in completion_ids[s : s + bs]]
        b = build_sft_batch(p, c, tok.pad_token_id)
        b = {k: v.to(next(model.parameters()).device) for k, v in b.items()}
        keep = tail_columns(b["labels"] != IGNORE)  # logits for the completion columns only
        logits = model(**tail_forward_inputs(b["input_ids"], b["attention_mask"], keep)).logits
        lp = shifted_logprobs(logits, b["input_ids"][:, -keep:])
        mask = b["labels"][:, -keep:][:, 1:] != IGNORE
        out += (lp * mask).sum(1).tolist()
    return out


def log_ratios(
    cfg: EvaluateConfig,
    model,
    tok,
    sampled: list[Completion],
    test: list[dict],
    base_model,
    base_tok,
) -> list[float]:
    """Per completion log p_model(y|x) - log p_base(y|x), y every token ``model`` sampled (up
    to and including EOS, before trimming: the sequence the sampler stopped on), scored by
    both models on the model's own ids (zeros when ``model`` is the base)."""
    if model is base_model:
        return [0.0] * len(sampled)  # log p_base - log p_base
    gen, cut, bs = cfg.generation, cfg.generation.max_prompt_tokens, cfg.kl_batch_size
    rows = draws(cfg, test)
    texts = [format_prompt(t["prompt"], tok, gen) for t in rows]
    base_texts = [format_prompt(t["prompt"], base_tok, gen) for t in rows]
    ids = [c.sampled_ids for c in sampled]
    lp_model = sequence_logprobs(model, tok, texts, ids, bs, cut)
    lp_base = sequence_logprobs(base_model, base_tok, base_texts, ids, bs, cut)
    return [a - b for a, b in zip(lp_model, lp_base)]


def unwarped_point(
    cfg: EvaluateConfig,
    model,
    tok,
    test: list[dict],
    scorers,
    base_model,
    base_tok,
    table: tuple | None = None,
) -> dict[str, Any]:
    """KL(model || base) of the unwarped model (``kl_estimate`` over its prompts, each
    prompt's samples averaged: mean and standard error) and the proxy and gold summaries of
    the same samples. ``table``: the (completions, scores) already drawn with
    ``evaluate.generation``, reused when that sampler is already unwarped (same seed: the
    same draws)."""
    gen, k = unwarped(cfg.generation), cfg.samples_per_prompt
    if table is not None and gen == cfg.generation:
        sampled, scores = table
    else:
        sampled, scores = sample_scored(cfg, gen, model, tok, test, scorers)
    ratios = log_ratios(cfg, model, tok, sampled, test, base_model, base_tok)
    kl, se = kl_estimate(unit_means(ratios, k))
    if model is base_model:
        kl, se = 0.0, 0.0  # exactly: every log-ratio is zero
    boot = (cfg.bootstrap_samples, cfg.seed, k)
    return {
        "kl": kl,
        "kl_se": se,
        "proxy": summary(scores["proxy"], *boot),
        "gold": summary(scores["gold"], *boot),
    }
