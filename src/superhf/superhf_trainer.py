"""The SuperHF training loop (paper section 4.1), run by stage ``superhf``.

For each superbatch: take ``prompt_accumulation`` prompts, sample ``superbatch_size``
completions of each from the current policy, score them with the reward model, keep the
top-K per prompt, and fine-tune on the kept completions (prompt masked, EOS appended).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import gather_object
from tqdm.auto import tqdm

from superhf.config import SuperHFConfig
from superhf.core import (
    IGNORE,
    build_sft_batch,
    ema,
    select_top_k,
    superhf_loss,
    tail_columns,
    tail_forward_inputs,
)
from superhf.generation import distinct_n, format_prompt, generate, trim_completion
from superhf.models import load_causal_lm, load_tokenizer
from superhf.reward import RewardScorer, model_hash
from superhf.tracking import NullRun
from superhf.training import (
    Checkpointer,
    build_optimizer,
    check_finite,
    fingerprint,
    frozen_reference,
    make_accelerator,
    maybe_lora,
    prompt_schedule,
    seed_everything,
)

log = logging.getLogger(__name__)


def train(
    cfg: SuperHFConfig,
    policy_dir: str | Path,
    reward_dir: str | Path,
    prompts: list[str],
    checkpoint_dir: str | Path,
    run: Any = None,
) -> tuple[Any, Any, list[dict], list[dict], Any]:
    """The SuperHF loop. Returns (model, tokenizer, per-superbatch history, samples, acc)."""
    acc = make_accelerator(cfg.optim.mixed_precision)
    seed_everything(cfg.seed + acc.process_index)
    tok = load_tokenizer(policy_dir)
    model = maybe_lora(load_causal_lm(policy_dir), cfg.lora)
    model.train()
    ref = frozen_reference(model, cfg.lora.enabled) if cfg.kl_coef > 0 else None
    scorer = RewardScorer(reward_dir, device=acc.device)

    world, P, S, K = acc.num_processes, cfg.prompt_accumulation, cfg.superbatch_size, cfg.top_k
    n_super = math.ceil(cfg.num_prompts / (P * world))
    steps_per_super = math.ceil(math.ceil(P * K / cfg.minibatch_size) / cfg.gradient_accumulation)
    opt, sched = build_optimizer(model, cfg.optim, n_super * steps_per_super)
    model, opt = acc.prepare(model, opt)
    if ref is not None:
        ref.to(acc.device)
    schedule = prompt_schedule(len(prompts), n_super * P * world, cfg.seed)
    fp = fingerprint(cfg.model_dump(), model_hash(policy_dir), scorer.hash, len(prompts), world)
    ckpt = Checkpointer(checkpoint_dir, fp, acc)
    start, history, samples = 0, [], []
    resumed = ckpt.load(model, opt, sched)
    if resumed:
        start, state = resumed
        history, samples = state["history"], state["samples"]
    run = run or NullRun()
    eos = tok.eos_token or ""
    bar = tqdm(range(start, n_super), desc="superhf", disable=None if acc.is_main_process else True)
    for step in bar:
        t0 = time.perf_counter()
        base = step * P * world + acc.process_index * P
        batch_prompts = [prompts[schedule[base + j]] for j in range(P)]
        texts = [format_prompt(p, tok, cfg.generation) for p in batch_prompts]
        raw = generate(
            acc.unwrap_model(model), tok, [t for t in texts for _ in range(S)], cfg.generation
        )
        completions = [trim_completion(c) for c in raw]
        t_gen = time.perf_counter()
        rewards = scorer.score([p for p in batch_prompts for _ in range(S)], completions)
        check_finite("reward", sum(rewards), step)
        t_score = time.perf_counter()
        kept: list[tuple[int, str, float]] = []  # (prompt j, completion, reward)
        for j in range(P):
            r, c = rewards[j * S : (j + 1) * S], completions[j * S : (j + 1) * S]
            for i in select_top_k(r, [bool(x) for x in c], K):
                kept.append((j, c[i], r[i]))
        loss_v, nll_v, kl_v, n_tokens = _finetune(
            cfg, acc, model, ref, opt, sched, tok, texts, kept, eos, step
        )
        t_train = time.perf_counter()

        all_rewards = gather_object(rewards)
        all_comps = gather_object(completions)
        kept_rewards = gather_object([k[2] for k in kept])
        mean = sum(all_rewards) / len(all_rewards)
        row = {
            "step": step,
            "reward_mean": mean,
            "reward_std": float(torch.tensor(all_rewards).std()) if len(all_rewards) > 1 else 0.0,
            "reward_max": max(all_rewards),
            "reward_kept": sum(kept_rewards) / len(kept_rewards) if kept_rewards else float("nan"),
            "loss": loss_v,
            "nll": nll_v,
            "kl": kl_v,
            "lr": sched.get_last_lr()[0],
            "completion_chars": sum(map(len, all_comps)) / len(all_comps),
            "empty_share": sum(not c for c in all_comps) / len(all_comps),
            "distinct_1": distinct_n(all_comps, 1),
            "distinct_2": distinct_n(all_comps, 2),
            "time_generate": t_gen - t0,
            "time_score": t_score - t_gen,
            "time_train": t_train - t_score,
            "tokens_trained": n_tokens,
        }
        row["reward_ema"] = ema([h["reward_mean"] for h in history] + [mean])[-1]
        history.append(row)
        if acc.is_main_process:
            run.log_metrics(
                {f"superhf/{k}": v for k, v in row.items() if k != "step" and math.isfinite(v)},
                step,
            )
            bar.set_postfix(reward=f"{mean:.3f}", ema=f"{row['reward_ema']:.3f}")
            if step % cfg.sample_every == 0 or step == n_super - 1:
                samples += [{"step": step, "prompt": batch_prompts[j], "completion": c, "reward": r, "kept": True}
                            for j, c, r in kept[:2]]  # fmt: skip
        if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < n_super:
            ckpt.save(model, opt, sched, step + 1, {"history": history, "samples": samples})
    return model, tok, history, samples, acc


def _finetune(cfg, acc, model, ref, opt, sched, tok, texts, kept, eos, step):
    """Fine-tune on the kept completions; every process runs the same number of minibatches."""
    rows = [(texts[j], c + eos) for j, c, _ in kept]
    mb = cfg.minibatch_size
    n_local = math.ceil(len(rows) / mb)
    n_mb = max(gather_object([n_local]))
    if n_mb == 0:
        return float("nan"), float("nan"), float("nan"), 0
    losses, nlls, kls = [], [], []
    n_tokens = 0
    for m in range(n_mb):
        chunk = rows[m * mb : (m + 1) * mb]
        weight = 1.0
        if not chunk:  # this process ran out: a zero-weight row keeps collectives in step
            chunk, weight = [(texts[0], eos or " ")], 0.0
        p_ids = [
            tok(p, add_special_tokens=False)["input_ids"][-cfg.generation.max_prompt_tokens :]
            for p, _ in chunk
        ]
        c_ids = [tok(c, add_special_tokens=False)["input_ids"] for _, c in chunk]
        batch = build_sft_batch(p_ids, c_ids, tok.pad_token_id)
        batch = {k: v.to(acc.device) for k, v in batch.items()}
        n_tokens += int(batch["attention_mask"].sum()) if weight else 0
        # logits only where completion tokens are predicted (the prompt's are never used)
        keep = tail_columns(batch["labels"] != IGNORE)
        fwd = tail_forward_inputs(batch["input_ids"], batch["attention_mask"], keep)
        with acc.autocast():
            out = model(**fwd)
            ref_logits = None
            if cfg.kl_coef > 0:
                with torch.no_grad():
                    if ref is None:  # LoRA: the reference is the base weights
                        with acc.unwrap_model(model).disable_adapter():
                            ref_logits = model(**fwd).logits
                    else:
                        ref_logits = ref(**fwd).logits
            labels = batch["labels"][:, -keep:]
            loss, nll, kl = superhf_loss(out.logits, labels, cfg.kl_coef, ref_logits)
        check_finite("loss", loss.detach(), step)
        acc.backward(loss * weight / cfg.gradient_accumulation)
        if weight:
            losses.append(loss.item())
            nlls += nll.tolist()
            kls += kl.tolist()
        if (m + 1) % cfg.gradient_accumulation == 0 or m == n_mb - 1:
            if cfg.optim.max_grad_norm:
                acc.clip_grad_norm_(model.parameters(), cfg.optim.max_grad_norm)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
    mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
    return mean(losses), mean(nlls), mean(kls), n_tokens
