"""The SuperHF training loop (paper section 4.1), run by stage ``superhf``.

For each superbatch: take ``prompt_accumulation`` prompts, sample ``superbatch_size``
completions of each from the current policy, score them with the reward model, keep the
top-K per prompt, and fine-tune on the kept completions' sampled tokens (prompt masked,
EOS appended unless ``append_eos`` is false).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from accelerate.utils import gather_object

from superhf.core import (
    IGNORE,
    accumulation_scales,
    build_sft_batch,
    length_penalised,
    select_top_k,
    superhf_loss,
    tail_columns,
    tail_forward_inputs,
)
from superhf.generation import Completion, distinct_n, sample_completions
from superhf.loop_schedule import prompts_per_step
from superhf.models import load_causal_lm, load_tokenizer
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
    from superhf.config.superhf import SuperHFConfig


def train(
    cfg: SuperHFConfig,
    policy_dir: str | Path,
    reward_dir: str | Path,
    prompts: list[str],
    checkpoint_dir: str | Path,
    run: Any = None,
    snapshot_dir: str | Path | None = None,
) -> tuple[Any, Any, list[dict], list[dict], Any]:
    """The SuperHF loop. Returns (model, tokenizer, per-superbatch history, samples, acc)."""
    acc = make_accelerator(cfg.optim.mixed_precision)
    sizes = prompts_per_step(cfg.num_prompts, cfg.prompt_accumulation, acc.num_processes, "superhf")
    seed_everything(cfg.seed + acc.process_index)
    tok, model, ref, measure_kl = load_policy(cfg, policy_dir)
    scorer = RewardScorer(reward_dir, device=acc.device, preamble=cfg.generation.preamble)
    opt, sched = build_optimizer(model, cfg.optim, optimizer_steps(cfg, sizes))
    model, opt = acc.prepare(model, opt)
    if ref is not None:
        ref.to(acc.device)
    t = Trainee(cfg, acc, model, tok, opt, sched, scorer, ref, {"measure_kl": measure_kl})
    fp = run_fingerprint(t, policy_dir, prompts)
    history, samples = run_loop(METHOD, t, prompts, sizes, fp, checkpoint_dir, snapshot_dir, run)
    return model, tok, history, samples, acc


def _step(t: Trainee, batch_prompts: list[str], step: int) -> tuple[dict, list[dict]]:
    """One superbatch (``_superbatch``) for the shared loop: (row, sample candidates)."""
    row, kept = _superbatch(t, batch_prompts, step)
    return row, [
        {"prompt": batch_prompts[j], "completion": c.text, "reward": r} for j, c, r in kept
    ]


def optimizer_steps(cfg: SuperHFConfig, sizes: list[int]) -> int:
    """Optimiser steps of the whole run (for the LR schedule): per superbatch, the kept rows
    in minibatches, grouped by ``gradient_accumulation``."""
    per_mb = (math.ceil(p * cfg.top_k / cfg.minibatch_size) for p in sizes)
    return sum(math.ceil(n / cfg.gradient_accumulation) for n in per_mb)


def _superbatch(t: Trainee, batch_prompts: list[str], step: int):
    """One superbatch: sample S completions of each prompt, score them (minus the optional
    length penalty), keep the top-K of each prompt and fine-tune on their sampled tokens.
    Returns (history row, kept)."""
    cfg, S, P = t.cfg, t.cfg.superbatch_size, len(batch_prompts)
    t0 = time.perf_counter()
    texts, completions, rm_scores, rewards, t_gen = sample_superbatch(t, batch_prompts, step)
    comp_texts = [c.text for c in completions]
    t_score = time.perf_counter()
    kept = keep_top_k(completions, rewards, P, S, cfg.top_k)
    loss_v, nll_v, kl_v, kl_seq_v, n_tokens = _finetune(t, texts, kept, step)
    t_train = time.perf_counter()
    row = {
        "step": step,
        **_reward_stats(rewards, rm_scores, kept, comp_texts, P, cfg.reward_mean_over),
        "loss": loss_v,
        "nll": nll_v,
        "kl": kl_v,
        "kl_seq": kl_seq_v,
        "lr": t.sched.get_last_lr()[0],
        "time_generate": t_gen - t0,
        "time_score": t_score - t_gen,
        "time_train": t_train - t_score,
        "tokens_trained": n_tokens,
    }
    return row, kept


def sample_superbatch(t: Trainee, batch_prompts: list[str], step: int):
    """Sample S completions of each prompt from the current policy and score them (minus
    the optional length penalty); RLOO and GRPO sample and score with this too. Returns
    (prompt texts, completions, reward-model scores, rewards, time.perf_counter() after
    generation)."""
    cfg, acc, model, tok = t.cfg, t.acc, t.model, t.tok
    S = cfg.superbatch_size
    texts = [format_prompt(p, tok, cfg.generation) for p in batch_prompts]
    with full_parameters(model) as sharded:  # FSDP: gathered for sampling (superhf.sharding)
        rows = [t for t in texts for _ in range(S)]
        completions = sample_completions(
            acc.unwrap_model(model), tok, rows, cfg.generation, **sharded
        )
    t_gen = time.perf_counter()
    comp_texts = [c.text for c in completions]
    rm_scores = t.scorer.score([p for p in batch_prompts for _ in range(S)], comp_texts)
    rewards = length_penalised(rm_scores, comp_texts, cfg.length_penalty)
    check_finite("reward", sum(rewards), step)
    return texts, completions, rm_scores, rewards, t_gen


def load_policy(cfg: SuperHFConfig, policy_dir: str | Path):
    """(tokenizer, policy in train mode, frozen reference or None, whether KL is measured).

    The reference measures KL (and is its prior when kl_coef > 0). Under LoRA it is the
    base weights with the adapter off (None here); otherwise a frozen copy of the policy:
    one more model in memory, which ``measure_kl: false`` saves when kl_coef is 0.
    """
    tok = load_tokenizer(policy_dir)
    model = maybe_lora(load_causal_lm(policy_dir), cfg.lora)
    model.train()
    measure_kl = cfg.kl_coef > 0 or cfg.measure_kl
    ref = frozen_reference(model, cfg.lora.enabled) if measure_kl else None
    return tok, model, ref, measure_kl


def keep_top_k(
    completions: list[Completion], rewards: list[float], P: int, S: int, K: int
) -> list[tuple[int, Completion, float]]:
    """(prompt index j, completion, reward) of the K best non-empty completions of each of
    the P prompts, whose S completions sit together in ``completions``."""
    kept = []
    for j in range(P):
        r, c = rewards[j * S : (j + 1) * S], completions[j * S : (j + 1) * S]
        for i in select_top_k(r, [bool(x.text) for x in c], K):
            kept.append((j, c[i], r[i]))
    return kept


def _reward_stats(
    rewards, rm_scores, kept, comp_texts, P: int, over: str = "all"
) -> dict[str, float]:
    """The superbatch's reward and completion statistics over every process; the reward
    statistics over every completion, or (``over`` nonempty) those not trimmed to empty."""
    all_comps = gather_object(comp_texts)
    counted = [over == "all" or bool(c) for c in all_comps]
    all_rewards = [r for r, k in zip(gather_object(rewards), counted) if k]
    all_rm = [r for r, k in zip(gather_object(rm_scores), counted) if k]
    kept_rewards = gather_object([k[2] for k in kept])
    # how many completions each prompt kept: K, never more, never borrowed across prompts
    kept_per_prompt = gather_object([sum(k[0] == j for k in kept) for j in range(P)])
    n, nan = len(all_rewards), float("nan")
    return {
        "reward_mean": sum(all_rewards) / n if n else nan,
        "reward_std": float(torch.tensor(all_rewards).std()) if n > 1 else 0.0,
        "reward_max": max(all_rewards, default=nan),
        "reward_kept": sum(kept_rewards) / len(kept_rewards) if kept_rewards else nan,
        "prompts": len(kept_per_prompt),
        "kept": sum(kept_per_prompt),
        "kept_per_prompt_max": max(kept_per_prompt),
        "reward_model_mean": sum(all_rm) / n if n else nan,  # before the length penalty
        "completion_chars": sum(map(len, all_comps)) / len(all_comps),
        "empty_share": sum(not c for c in all_comps) / len(all_comps),
        "distinct_1": distinct_n(all_comps, 1),
        "distinct_2": distinct_n(all_comps, 2),
    }


def training_rows(
    tok, texts, kept, append_eos: bool, keep_sampled_eos: bool = True
) -> list[tuple[str, list[int]]]:
    """(prompt text, target ids) per kept completion: its sampled ids, cut at the trim
    point, without a sampled EOS unless ``keep_sampled_eos``, plus EOS when ``append_eos``
    and none ends it."""
    eos = tok.eos_token_id
    rows = []
    for j, c, _ in kept:
        ids = list(c.ids)
        if not keep_sampled_eos and eos is not None and ids and ids[-1] == eos:
            ids = ids[:-1]
        if append_eos and eos is not None and (not ids or ids[-1] != eos):
            ids.append(eos)
        rows.append((texts[j], ids))
    return rows


def _finetune(t: Trainee, texts: list[str], kept, step: int):
    """Fine-tune on the kept completions; every process runs the same number of minibatches.
    Each optimiser step's gradient is the mean over its group's real minibatches on all
    processes (``accumulation_scales``); returns mean loss, NLL, KL per token and KL per
    completion (both over every process's rows), and the number of completion tokens trained
    on (targets, not prompts). Nothing kept on any process: NaNs and 0."""
    cfg, acc, tok = t.cfg, t.acc, t.tok
    rows = training_rows(tok, texts, kept, cfg.append_eos, cfg.keep_sampled_eos)
    mb = cfg.minibatch_size
    per_process = gather_object([math.ceil(len(rows) / mb)])
    n_mb = max(per_process)
    if n_mb == 0:
        return float("nan"), float("nan"), float("nan"), float("nan"), 0
    scales = accumulation_scales(per_process, cfg.gradient_accumulation)
    losses, nlls, kls, kl_seqs = [], [], [], []
    n_tokens = 0
    filler = tok.eos_token_id if tok.eos_token_id is not None else tok.pad_token_id
    for m in range(n_mb):
        chunk = rows[m * mb : (m + 1) * mb]
        weight = scales[m]
        if not chunk:  # this process ran out: a zero-weight row keeps collectives in step
            chunk, weight = [(texts[0], [filler])], 0.0
        p_ids = [  # the prompt tokens exactly as generate saw them (cut from the left)
            tok(p, add_special_tokens=False)["input_ids"][-cfg.generation.max_prompt_tokens :]
            for p, _ in chunk
        ]
        batch = build_sft_batch(p_ids, [c for _, c in chunk], tok.pad_token_id)
        batch = {k: v.to(acc.device) for k, v in batch.items()}
        n_tokens += int((batch["labels"] != IGNORE).sum()) if weight else 0
        loss, nll, kl = _minibatch_loss(t, batch)
        check_finite("loss", loss.detach(), step)
        acc.backward(loss * weight)
        if weight:
            losses.append(loss.item())
            nlls += nll.tolist()
            kls += kl.tolist()
            # per completion: the per-token KL times the completion's predicted tokens
            kl_seqs += (kl * (batch["labels"][:, 1:] != IGNORE).sum(-1)).tolist()
        if (m + 1) % cfg.gradient_accumulation == 0 or m == n_mb - 1:
            if cfg.optim.max_grad_norm:
                acc.clip_grad_norm_(t.model.parameters(), cfg.optim.max_grad_norm)
            t.opt.step()
            t.sched.step()
            t.opt.zero_grad(set_to_none=True)
    mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
    # KL over every process's kept rows (snapshot_kl/stop_kl: every process decides alike)
    pairs = gather_object(list(zip(kls, kl_seqs)))  # one collective for both KLs
    kl, kl_seq = mean([k for k, _ in pairs]), mean([k for _, k in pairs])
    return mean(losses), mean(nlls), kl, kl_seq, n_tokens


def _minibatch_loss(t: Trainee, batch: dict):
    """(loss, nll, kl) of one minibatch; logits only where completion tokens are predicted
    (the prompt's are never used). KL is measured against the reference when
    ``t.extra["measure_kl"]``, else NaN."""
    cfg, acc, model, ref = t.cfg, t.acc, t.model, t.ref
    keep = tail_columns(batch["labels"] != IGNORE)
    fwd = tail_forward_inputs(batch["input_ids"], batch["attention_mask"], keep)
    with acc.autocast():
        out = model(**fwd)
        ref_logits = None
        if t.extra["measure_kl"]:
            with torch.no_grad():
                if ref is None:  # LoRA: the reference is the base weights
                    with acc.unwrap_model(model).disable_adapter():
                        ref_logits = model(**fwd).logits
                else:
                    ref_logits = ref(**fwd).logits
        labels = batch["labels"][:, -keep:]
        return superhf_loss(
            out.logits,
            labels,
            cfg.kl_coef,
            ref_logits,
            inverse_loss_penalty=cfg.inverse_loss_penalty,
        )


# every completion of the superbatch is scored: S reward-model queries per prompt
METHOD = Method(
    "superhf", _step, queries_per_prompt=lambda cfg: cfg.superbatch_size, kl_key="kl_seq"
)
