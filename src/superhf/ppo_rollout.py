"""How PPO turns sampled rollouts into what it scores and trains: the response token ids,
the reward model's inputs, the kept training prompts and the left-padded rollout batch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from superhf.core import IGNORE, build_sft_batch
from superhf.errors import BadInputError
from superhf.generation import Completion
from superhf.trimming import trim_completion

# A section class only named in annotations: imported for type checkers, not at run time,
# so the stages that run this module do not depend on (rerun for) that section's config.
if TYPE_CHECKING:
    from superhf.config.rlhf import RLHFConfig


def response_ids(c: Completion) -> list[int]:
    """The tokens PPO scores and trains for one rollout: the sampled ids cut at the trim
    point (an EOS only where the policy sampled one). A completion trimmed to nothing keeps
    its first sampled token, so its score lands on the token that ended it."""
    return list(c.ids) if c.ids else list(c.sampled_ids[:1])


def query_ids(tok, texts: list[str], max_prompt_tokens: int) -> list[list[int]]:
    """The prompt tokens exactly as ``generate`` saw them (cut from the left)."""
    return [tok(t, add_special_tokens=False)["input_ids"][-max_prompt_tokens:] for t in texts]


def rollout_responses(cfg: RLHFConfig, tok, texts: list[str], rollouts: list[Completion]):
    """The response token ids of each rollout under ``cfg.response``. sampled: the sampled
    ids cut at the trim point (``response_ids``). upstream: what the paper's RLHF run
    passed to TRL's step, the query again plus every sampled token, untrimmed (so the
    score sits on the last sampled token and the KL sums over the repeated query too)."""
    if cfg.response == "sampled":
        return [response_ids(c) for c in rollouts]
    queries = query_ids(tok, texts, cfg.generation.max_prompt_tokens)
    return [q + list(c.sampled_ids) for q, c in zip(queries, rollouts)]


def reward_inputs(
    cfg: RLHFConfig, tok, prompts: list[str], texts: list[str], rollouts: list[Completion]
) -> tuple[list[str], list[str]]:
    """(prompts, completions) for the reward model. sampled: the training prompts and the
    trimmed texts. upstream: the paper's run scored ``query + (query + " " + trimmed)``
    with the completion decoded without skipping special tokens; the scorer puts its
    preamble (an ``upstream`` reward model's) before the prompt, so the prompt passed is
    ``prompt + query`` (query = preamble + prompt, as the policy saw it)."""
    if cfg.response == "sampled":
        return prompts, [c.text for c in rollouts]
    raw = [tok.decode(c.sampled_ids, skip_special_tokens=False) for c in rollouts]
    return (
        [p + t for p, t in zip(prompts, texts)],
        [trim_completion(r, cfg.generation.trim) for r in raw],
    )


def filter_prompts(cfg: RLHFConfig, prompts: list[str]) -> list[str]:
    """The training prompts with ``len(generation.preamble + prompt) < max_prompt_chars``
    (the paper's RLHF script counted the preamble); all of them when it is null."""
    if cfg.max_prompt_chars is None:
        return prompts
    kept = [p for p in prompts if len(cfg.generation.preamble + p) < cfg.max_prompt_chars]
    if not kept:
        raise BadInputError(
            f"rlhf.max_prompt_chars ({cfg.max_prompt_chars}): no training prompt is shorter "
            "with rlhf.generation.preamble before it"
        )
    return kept


def rollout_batch(tok, texts: list[str], responses: list[list[int]], max_prompt_tokens: int):
    """Left-padded prompt+response rows; only the response tokens are in the mask.

    ``responses`` are sampled token ids (``response_ids``), never a re-tokenisation. The
    paper's code passed the prompt again inside the response, so PPO trained on a
    duplicated prompt; here a response is the sampled tokens alone.
    """
    batch = build_sft_batch(query_ids(tok, texts, max_prompt_tokens), responses, tok.pad_token_id)
    mask = (batch["labels"][:, 1:] != IGNORE).float()
    return batch["input_ids"], batch["attention_mask"], mask
