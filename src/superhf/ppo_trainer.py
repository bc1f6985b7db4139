"""The PPO training loop of the RLHF baseline (paper section 4.2), run by stage ``rlhf``.

Classic design (Ziegler et al. 2019, TRL 0.4, which the paper used): per-token reward
``-kl_coef * (logp - logp_ref)`` plus the reward-model score on the last response token,
a value head on the policy, GAE, whitened advantages, clipped policy and value losses,
``ppo_epochs`` passes over minibatches, an adaptive (or fixed) KL coefficient. Responses
are the tokens the policy sampled (cut at the trim point), so the ratio, advantages and
per-token KL act on what was sampled.

The pieces: ``ppo_policy`` (the value head), ``ppo_rollout`` (rollouts to tokens and
reward inputs), ``ppo_update`` (one PPO step), ``ppo_core`` (the maths).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import torch
from accelerate.utils import gather_object

from superhf.generation import distinct_n, sample_completions
from superhf.loop_schedule import prompts_per_step
from superhf.models import load_causal_lm, load_tokenizer
from superhf.ppo_core import AdaptiveKLController, FixedKLController
from superhf.ppo_policy import PolicyWithValueHead
from superhf.ppo_rollout import filter_prompts, reward_inputs, rollout_batch, rollout_responses
from superhf.ppo_update import ppo_step
from superhf.prompting import format_prompt
from superhf.reward import RewardScorer
from superhf.sharding import full_parameters
from superhf.trainer_loop import Method, Trainee, run_fingerprint, run_loop
from superhf.training import (
    build_optimizer,
    check_finite,
    frozen_reference,
    make_accelerator,
    maybe_lora,
    seed_everything,
)

# A section class only named in annotations: imported for type checkers, not at run time,
# so the stages that run this module do not depend on (rerun for) that section's config.
if TYPE_CHECKING:
    from superhf.config.rlhf import RLHFConfig


def train(
    cfg: RLHFConfig,
    policy_dir,
    reward_dir,
    prompts: list[str],
    checkpoint_dir,
    run: Any = None,
    scorer: Any = None,
    snapshot_dir: str | None = None,
):
    """The PPO loop. ``scorer`` (anything with ``score(prompts, completions)``) defaults to
    the reward model in ``reward_dir``."""
    acc = make_accelerator(cfg.optim.mixed_precision)
    sizes = prompts_per_step(
        cfg.num_prompts, cfg.batch_size, acc.num_processes, "rlhf", drop_last=cfg.drop_last
    )
    prompts = filter_prompts(cfg, prompts)
    seed_everything(cfg.seed + acc.process_index)
    tok = load_tokenizer(policy_dir)
    policy = maybe_lora(load_causal_lm(policy_dir), cfg.lora)
    ref = frozen_reference(policy, cfg.lora.enabled)
    model = PolicyWithValueHead(policy, cfg.value_head).train()
    preamble = cfg.generation.preamble  # an upstream-format reward model sees it
    scorer = scorer or RewardScorer(reward_dir, device=acc.device, preamble=preamble)
    n_steps = len(sizes)
    opt, sched = build_optimizer(model, cfg.optim, n_steps)  # the schedule steps per PPO step
    model, opt = acc.prepare(model, opt)
    if ref is not None:
        ref.to(acc.device)
    kl_ctl = (
        AdaptiveKLController(cfg.init_kl_coef, cfg.target, cfg.horizon)
        if cfg.adap_kl_ctrl
        else FixedKLController(cfg.init_kl_coef)
    )
    t = Trainee(cfg, acc, model, tok, opt, sched, scorer, ref, {"kl_ctl": kl_ctl})
    fp = run_fingerprint(t, policy_dir, prompts)
    history, samples = run_loop(METHOD, t, prompts, sizes, fp, checkpoint_dir, snapshot_dir, run)
    return model, tok, history, samples, acc


def _step(t: Trainee, batch_prompts: list[str], step: int) -> tuple[dict, list[dict]]:
    """One PPO iteration (``_ppo_iteration``) for the shared loop: (row, sample candidates)."""
    row, responses, scores = _ppo_iteration(t, batch_prompts, step)
    return row, [
        {"prompt": p, "completion": r, "reward": s}
        for p, r, s in zip(batch_prompts, responses, scores)
    ]


def _load_kl_coef(t: Trainee, state: dict) -> None:
    t.extra["kl_ctl"].value = state.get("kl_coef", t.extra["kl_ctl"].value)


# one rollout scored per prompt; the snapshot is the policy without its value head
METHOD = Method(
    "rlhf",
    _step,
    queries_per_prompt=lambda cfg: 1,
    postfix=("kl", "kl"),
    policy=lambda t: t.acc.unwrap_model(t.model).policy,
    save_state=lambda t: {"kl_coef": t.extra["kl_ctl"].value},
    load_state=_load_kl_coef,
)


def _ppo_iteration(t: Trainee, batch_prompts: list[str], step: int):
    """Roll out one sampled response per prompt, score the trimmed texts, take one PPO step
    on the sampled tokens. Returns (history row, responses, scores)."""
    cfg, acc, model, tok = t.cfg, t.acc, t.model, t.tok
    t0 = time.perf_counter()
    texts = [format_prompt(p, tok, cfg.generation) for p in batch_prompts]
    with full_parameters(model) as sharded:  # FSDP: gathered for sampling (superhf.sharding)
        policy = acc.unwrap_model(model).policy
        rollouts = sample_completions(policy, tok, texts, cfg.generation, **sharded)
    responses = [c.text for c in rollouts]
    t_gen = time.perf_counter()
    scores = t.scorer.score(*reward_inputs(cfg, tok, batch_prompts, texts, rollouts))
    check_finite("reward", sum(scores), step)
    t_score = time.perf_counter()
    input_ids, attn, mask = rollout_batch(
        tok, texts, rollout_responses(cfg, tok, texts, rollouts), cfg.generation.max_prompt_tokens
    )
    dev = acc.device
    stats = ppo_step(
        t, input_ids.to(dev), attn.to(dev), mask.to(dev), torch.tensor(scores, device=dev), step
    )
    t_update = time.perf_counter()
    row = {
        "step": step,
        "prompts": len(gather_object(scores)),
        **_reward_stats(scores, responses),
        **stats,
        "time_rollout": t_gen - t0,
        "time_score": t_score - t_gen,
        "time_update": t_update - t_score,
    }
    return row, responses, scores


def _reward_stats(scores: list[float], responses: list[str]) -> dict[str, float]:
    """The batch's reward and response statistics over every process."""
    all_scores, all_resp = gather_object(scores), gather_object(responses)
    n = len(all_scores)
    return {
        "reward_mean": sum(all_scores) / n,
        "reward_std": float(torch.tensor(all_scores).std()) if n > 1 else 0.0,
        "completion_chars": sum(map(len, all_resp)) / n,
        "empty_share": sum(not r for r in all_resp) / n,
        "distinct_1": distinct_n(all_resp, 1),
        "distinct_2": distinct_n(all_resp, 2),
    }
