"""RLOO and GRPO on SuperHF's superbatch, run by stages ``rloo`` and ``grpo``.

Each step samples and scores exactly as SuperHF does (``superhf_trainer.sample_superbatch``:
S completions per prompt from the current policy, trimmed sampled ids, the same reward
input and length penalty), so at equal params the methods spend the same reward-model
queries by construction. Then, instead of fine-tuning on the best: a forward of the policy
(old log-probs) and of the frozen reference over all S completions' sampled tokens, the
advantages of each prompt's group (``pg_core``), and ``update_epochs`` passes of the
clipped-ratio loss over minibatches.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import gather_object

from superhf.config.group_pg import GroupPGConfig
from superhf.core import accumulation_scales, shifted_logprobs, tail_columns, tail_forward_inputs
from superhf.generation import distinct_n
from superhf.loop_schedule import prompts_per_step
from superhf.models import load_causal_lm, load_tokenizer
from superhf.packing import (
    logit_positions,
    pack_shared_prompts,
    packed_logprobs,
    scatter_logprobs,
)
from superhf.pg_core import (
    clipped_pg_loss,
    group_normalised_advantages,
    k1_sequence_kl,
    leave_one_out_advantages,
)
from superhf.ppo_rollout import response_ids, rollout_batch
from superhf.reward import RewardScorer
from superhf.superhf_trainer import sample_superbatch
from superhf.trainer_loop import Method, Trainee, run_fingerprint, run_loop
from superhf.training import (
    build_optimizer,
    check_finite,
    frozen_reference,
    make_accelerator,
    maybe_lora,
    seed_everything,
)


def train(
    cfg: GroupPGConfig,
    policy_dir: str | Path,
    reward_dir: str | Path,
    prompts: list[str],
    checkpoint_dir: str | Path,
    run: Any = None,
    snapshot_dir: str | Path | None = None,
) -> tuple[Any, Any, list[dict], list[dict], Any]:
    """The RLOO/GRPO loop (``cfg.SECTION`` names the stage). Returns (model, tokenizer,
    per-step history, samples, accelerator)."""
    stage = cfg.SECTION
    acc = make_accelerator(cfg.optim.mixed_precision)
    sizes = prompts_per_step(cfg.num_prompts, cfg.prompt_accumulation, acc.num_processes, stage)
    seed_everything(cfg.seed + acc.process_index)
    tok = load_tokenizer(policy_dir)
    model = maybe_lora(load_causal_lm(policy_dir), cfg.lora)
    model.train()
    ref = frozen_reference(model, cfg.lora.enabled)  # None under LoRA: the adapter off
    scorer = RewardScorer(reward_dir, device=acc.device, preamble=cfg.generation.preamble)
    opt, sched = build_optimizer(model, cfg.optim, optimizer_steps(cfg, sizes))
    model, opt = acc.prepare(model, opt)
    if ref is not None:
        ref.to(acc.device)
    t = Trainee(cfg, acc, model, tok, opt, sched, scorer, ref)
    fp = run_fingerprint(t, policy_dir, prompts)
    method = Method(
        stage, group_step, queries_per_prompt=lambda c: c.superbatch_size, postfix=("kl", "kl")
    )
    history, samples = run_loop(method, t, prompts, sizes, fp, checkpoint_dir, snapshot_dir, run)
    return model, tok, history, samples, acc


def optimizer_steps(cfg: GroupPGConfig, sizes: list[int]) -> int:
    """Optimiser steps of the whole run (for the LR schedule): per step and epoch, the S
    completions of each prompt in minibatches, grouped by ``gradient_accumulation``."""
    per_mb = (math.ceil(p * cfg.superbatch_size / cfg.minibatch_size) for p in sizes)
    return sum(math.ceil(n / cfg.gradient_accumulation) * cfg.update_epochs for n in per_mb)


def group_step(t: Trainee, batch_prompts: list[str], step: int) -> tuple[dict, list[dict]]:
    """One step: SuperHF's superbatch, then the policy-gradient update over all of it.
    Returns (history row, sample candidates: each prompt's first completion)."""
    cfg, acc, S, P = t.cfg, t.acc, t.cfg.superbatch_size, len(batch_prompts)
    t0 = time.perf_counter()
    texts, completions, rm_scores, rewards, t_gen = sample_superbatch(t, batch_prompts, step)
    t_score = time.perf_counter()
    ids, attn, mask = rollout_batch(
        t.tok,
        [x for x in texts for _ in range(S)],
        [response_ids(c) for c in completions],
        cfg.generation.max_prompt_tokens,
    )
    ids, attn, mask = ids.to(acc.device), attn.to(acc.device), mask.to(acc.device)
    with torch.no_grad():
        old_logp = _logprobs(t, t.model, ids, attn, mask)
        ref_logp = _logprobs(t, t.ref, ids, attn, mask)
    kl_seq = k1_sequence_kl(old_logp, ref_logp, mask)
    seq_reward = torch.tensor(rewards, device=acc.device).view(P, S)
    if cfg.kl_in == "reward" and cfg.kl_coef > 0:
        seq_reward = seq_reward - cfg.kl_coef * kl_seq.view(P, S)
    adv = advantages(cfg, seq_reward).flatten()
    stats = _update(t, GroupRollouts(ids, attn, mask, old_logp, ref_logp, adv), step)
    t_train = time.perf_counter()
    comp_texts = [c.text for c in completions]
    row = {
        "step": step,
        "prompts": sum(gather_object([P])),
        **_reward_stats(rewards, rm_scores, comp_texts),
        **stats,
        "kl": _mean_all([float(k) for k in kl_seq]),
        "adv_abs_mean": float(adv.abs().mean()),
        "time_generate": t_gen - t0,
        "time_score": t_score - t_gen,
        "time_train": t_train - t_score,
        "tokens_trained": int(mask.sum()),
    }
    samples = [
        {"prompt": batch_prompts[j], "completion": comp_texts[j * S], "reward": rewards[j * S]}
        for j in range(P)
    ]
    return row, samples


def advantages(cfg: GroupPGConfig, rewards: torch.Tensor) -> torch.Tensor:
    """The advantages of ``[prompts, S]`` sequence rewards, per ``cfg.advantage``."""
    if cfg.advantage == "leave_one_out":
        return leave_one_out_advantages(rewards)
    return group_normalised_advantages(
        rewards, cfg.adv_eps, scale=cfg.advantage == "group_normalised"
    )


def _logprobs(t: Trainee, model, ids, attn, mask) -> torch.Tensor:
    """Per-token log-probs ``[rows, seq-1]`` of the sampled tokens under ``model`` (None: the
    policy with its LoRA adapter off), computed in minibatches over the response columns."""
    out = torch.zeros_like(mask)
    for s in range(0, ids.shape[0], t.cfg.minibatch_size):
        rows = slice(s, s + t.cfg.minibatch_size)
        logp, keep = _forward(t, model, ids[rows], attn[rows], mask[rows])
        out[rows, -(keep - 1) :] = logp.float()
    return out


def _forward(t: Trainee, model, ids, attn, mask) -> tuple[torch.Tensor, int]:
    """(log-probs of the last ``keep - 1`` tokens, keep): logits for the response only;
    with ``pack_prompts`` one packed sequence, each distinct prompt computed once."""
    if t.cfg.pack_prompts:
        return _packed_forward(t, model, ids, attn, mask), ids.shape[1]
    targets = torch.cat([torch.zeros_like(mask[:, :1]), mask], 1).bool()
    keep = max(2, tail_columns(targets))
    fwd = tail_forward_inputs(ids, attn, keep)
    with t.acc.autocast():
        if model is None:  # LoRA: the reference is the base weights
            with t.acc.unwrap_model(t.model).disable_adapter():
                logits = t.model(**fwd).logits
        else:
            logits = model(**fwd).logits
    return shifted_logprobs(logits, ids[:, -keep:]), keep


def _packed_forward(t: Trainee, model, ids, attn, mask) -> torch.Tensor:
    """Log-probs ``[rows, seq-1]`` (zero off the response) from one forward over the rows
    packed so that rows sharing a prompt share its forward (``packing``)."""
    pk = pack_shared_prompts(ids, attn, mask)
    positions, at = logit_positions(pk)  # each once: repeats' CPU backward is unordered
    net = t.acc.unwrap_model(t.model)
    impl = net.config._attn_implementation
    if impl not in ("sdpa", "eager"):
        raise ValueError(f"{t.cfg.SECTION}.pack_prompts needs sdpa or eager attention, not {impl}")
    fwd = {
        "input_ids": pk.input_ids,
        "position_ids": pk.position_ids,
        "attention_mask": pk.attention_mask(None if impl == "sdpa" else net.dtype),
        "logits_to_keep": positions,
    }
    with t.acc.autocast():
        if model is None:  # LoRA: the reference is the base weights
            with net.disable_adapter():
                logits = t.model(**fwd).logits
        else:
            logits = model(**fwd).logits
    logp = packed_logprobs(logits[0], at, pk.targets)
    return scatter_logprobs(pk, logp, (ids.shape[0], ids.shape[1] - 1))


@dataclass(frozen=True)
class GroupRollouts:
    """A step's S completions of each prompt, as ``_update`` trains on them: prompt+response
    token ids, attention mask, response mask ``[rows, seq-1]``, the per-token log-probs of
    the sampled tokens under the policy before the update and under the reference, and one
    advantage per row."""

    ids: torch.Tensor
    attn: torch.Tensor
    mask: torch.Tensor
    old_logp: torch.Tensor
    ref_logp: torch.Tensor
    adv: torch.Tensor


def _update(t: Trainee, ro: GroupRollouts, step: int) -> dict:
    """``update_epochs`` passes over seeded minibatches (one shuffle per step, the same each
    epoch); an optimiser step every ``gradient_accumulation`` minibatches and at the end."""
    cfg, acc = t.cfg, t.acc
    ids, attn, mask = ro.ids, ro.attn, ro.mask
    n = ids.shape[0]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(step)).to(ids.device)
    batches = [perm[s : s + cfg.minibatch_size] for s in range(0, n, cfg.minibatch_size)]
    beta = cfg.kl_coef if cfg.kl_in == "loss" else 0.0
    # every process has the same minibatches; a last, shorter group is its own mean
    scales = accumulation_scales([len(batches)] * acc.num_processes, cfg.gradient_accumulation)
    losses, clips, k3s = [], [], []
    for _ in range(cfg.update_epochs):
        for m, idx in enumerate(batches):
            logp, keep = _forward(t, t.model, ids[idx], attn[idx], mask[idx])
            cols = slice(-(keep - 1), None)
            loss, clip, k3 = clipped_pg_loss(
                logp.float(),
                ro.old_logp[idx][:, cols],
                ro.adv[idx],
                mask[idx][:, cols],
                cfg.cliprange,
                cfg.aggregation,
                beta,
                ro.ref_logp[idx][:, cols],
            )
            check_finite("loss", loss.detach(), step)
            acc.backward(loss * scales[m])
            losses.append(float(loss.detach()))
            clips.append(float(clip))
            k3s.append(float(k3))
            if (m + 1) % cfg.gradient_accumulation == 0 or m == len(batches) - 1:
                if cfg.optim.max_grad_norm:
                    acc.clip_grad_norm_(t.model.parameters(), cfg.optim.max_grad_norm)
                t.opt.step()
                t.sched.step()
                t.opt.zero_grad(set_to_none=True)
    return {
        "loss": _mean_all(losses),
        "clipfrac": _mean_all(clips),
        "kl_k3": _mean_all(k3s),
        "lr": t.sched.get_last_lr()[0],
    }


def _mean_all(values: list[float]) -> float:
    """The mean over every process's values."""
    got = gather_object(values)
    return sum(got) / len(got) if got else float("nan")


def _reward_stats(rewards: list[float], rm_scores: list[float], comps: list[str]) -> dict:
    """The superbatch's reward and completion statistics over every process."""
    all_rewards, all_rm, all_comps = (
        gather_object(rewards),
        gather_object(rm_scores),
        gather_object(comps),
    )
    n = len(all_rewards)
    return {
        "reward_mean": sum(all_rewards) / n,
        "reward_std": float(torch.tensor(all_rewards).std()) if n > 1 else 0.0,
        "reward_max": max(all_rewards),
        "reward_model_mean": sum(all_rm) / n,
        "completion_chars": sum(map(len, all_comps)) / n,
        "empty_share": sum(not c for c in all_comps) / n,
        "distinct_1": distinct_n(all_comps, 1),
        "distinct_2": distinct_n(all_comps, 2),
    }
