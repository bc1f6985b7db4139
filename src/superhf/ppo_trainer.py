"""The PPO training loop of the RLHF baseline (paper section 4.2), run by stage ``rlhf``.

Classic design (Ziegler et al. 2019, TRL 0.4, which the paper used): per-token reward
``-kl_coef * (logp - logp_ref)`` plus the reward-model score on the last response token,
a value head on the policy, GAE, whitened advantages, clipped policy and value losses,
``ppo_epochs`` passes over minibatches, an adaptive (or fixed) KL coefficient.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import torch
from accelerate.utils import gather_object
from tqdm.auto import tqdm

from superhf.config import RLHFConfig
from superhf.core import (
    IGNORE,
    build_sft_batch,
    ema,
    shifted_logprobs,
    tail_columns,
    tail_forward_inputs,
)
from superhf.generation import distinct_n, format_prompt, generate, trim_completion
from superhf.models import load_causal_lm, load_tokenizer
from superhf.ppo_core import (
    AdaptiveKLController,
    FixedKLController,
    entropy_from_logits,
    gae,
    masked_mean,
    masked_whiten,
    per_token_rewards,
    policy_loss,
    value_loss,
)
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


class PolicyWithValueHead(torch.nn.Module):
    """A causal LM plus a scalar value head on its last hidden state."""

    def __init__(self, policy: torch.nn.Module) -> None:
        super().__init__()
        self.policy = policy
        hidden = policy.config.get_text_config().hidden_size
        self.value_head = torch.nn.Linear(hidden, 1)
        torch.nn.init.zeros_(self.value_head.weight)
        torch.nn.init.zeros_(self.value_head.bias)

    def forward(self, input_ids, attention_mask, position_ids=None, logits_to_keep: int = 0):
        """(logits, values) for the last ``logits_to_keep`` columns (0: all of them)."""
        out = self.policy(input_ids=input_ids, attention_mask=attention_mask,
                          position_ids=position_ids, logits_to_keep=logits_to_keep,
                          output_hidden_states=True)  # fmt: skip
        hidden = (
            out.hidden_states[-1][:, -logits_to_keep:] if logits_to_keep else out.hidden_states[-1]
        )
        values = self.value_head(hidden.float()).squeeze(-1)
        return out.logits, values


def rollout_batch(tok, texts: list[str], responses: list[str], max_prompt_tokens: int):
    """Left-padded prompt+response rows; only response tokens (plus EOS) are in the mask.

    The paper's code passed the prompt again inside the response, so PPO trained on a
    duplicated prompt; here responses are the trimmed generated text alone.
    """
    p_ids = [tok(t, add_special_tokens=False)["input_ids"][-max_prompt_tokens:] for t in texts]
    r_ids = [tok(r, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for r in responses]
    batch = build_sft_batch(p_ids, r_ids, tok.pad_token_id)
    mask = (batch["labels"][:, 1:] != IGNORE).float()
    return batch["input_ids"], batch["attention_mask"], mask


def ppo_step(cfg: RLHFConfig, acc, model, ref, opt, sched, kl_ctl, input_ids, attn, mask, scores,
             step, *, reuse_forward: bool = True):  # fmt: skip
    """One PPO step on a batch of rollouts; returns its statistics.

    Logits and values are computed for the response columns only (``tail_columns``): the
    prompt's vocabulary-sized logits are never used. With one minibatch per epoch, the
    rollout forward (old log-probs and values) is the first epoch's forward: it runs once,
    with gradients, instead of twice (``reuse_forward=False`` runs it twice; same result).
    """
    unwrapped = acc.unwrap_model(model)
    n = input_ids.shape[0]
    targets = torch.cat([torch.zeros_like(mask[:, :1]), mask], 1).bool()
    keep = max(2, tail_columns(targets))
    fwd = tail_forward_inputs(input_ids, attn, keep)
    ids, mask = input_ids[:, -keep:], mask[:, -(keep - 1) :]
    reuse = reuse_forward and cfg.minibatch_size >= n
    t0 = time.perf_counter()
    first_logits = first_values = None
    if reuse:
        with acc.autocast():
            first_logits, first_values = model(**fwd)
        logits, values = first_logits.detach(), first_values.detach()
    else:
        with torch.no_grad():
            logits, values = model(**fwd)
    with torch.no_grad():
        old_logp = shifted_logprobs(logits, ids)
        if ref is None:  # LoRA: the reference is the base weights
            with unwrapped.policy.disable_adapter():
                ref_logits = unwrapped.policy(**fwd).logits
        else:
            ref_logits = ref(**fwd).logits
        ref_logp = shifted_logprobs(ref_logits, ids)
        del logits, ref_logits
        old_values = values[:, :-1] * mask
        if cfg.whiten_scores:
            scores = (scores - scores.mean()) / (scores.std() + 1e-8) if len(scores) > 1 else scores
        rewards, kl = per_token_rewards(scores, old_logp, ref_logp, mask, kl_ctl.value)
        adv, returns = gae(old_values, rewards, mask, cfg.gamma, cfg.lam)
        adv = masked_whiten(adv, mask) * mask
    t_forward = time.perf_counter() - t0
    stats: dict[str, list[float]] = {
        k: [] for k in ("pg_loss", "vf_loss", "pg_clipfrac", "vf_clipfrac", "approx_kl", "entropy")
    }
    gen = torch.Generator().manual_seed(step)
    for epoch in range(cfg.ppo_epochs):
        perm = torch.randperm(n, generator=gen)
        for s in range(0, n, cfg.minibatch_size):
            idx = perm[s : s + cfg.minibatch_size].to(input_ids.device)
            if reuse and epoch == 0:
                new_logits, new_values = first_logits[idx], first_values[idx]
            else:
                with acc.autocast():
                    new_logits, new_values = model(**{k: v[idx] if torch.is_tensor(v) else v
                                                      for k, v in fwd.items()})  # fmt: skip
            logp = shifted_logprobs(new_logits, ids[idx])
            m = mask[idx]
            pg, pg_clip, approx = policy_loss(logp, old_logp[idx], adv[idx], m, cfg.cliprange)
            vf, vf_clip = value_loss(
                new_values[:, :-1] * m, old_values[idx], returns[idx], m, cfg.cliprange_value
            )
            loss = pg + cfg.vf_coef * vf
            check_finite("loss", loss.detach(), step)
            acc.backward(loss)
            if cfg.optim.max_grad_norm:
                acc.clip_grad_norm_(model.parameters(), cfg.optim.max_grad_norm)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            with torch.no_grad():
                ent = masked_mean(entropy_from_logits(new_logits[:, :-1]), m)
            for k, v in zip(stats, (pg, vf, pg_clip, vf_clip, approx, ent)):
                stats[k].append(float(v.detach()))
        first_logits = first_values = None  # epoch 0 is done with them
    mean_kl = sum(gather_object([float(kl.sum(1).mean())])) / acc.num_processes
    kl_coef_used = kl_ctl.value
    kl_ctl.update(mean_kl, n * acc.num_processes)
    out = {k: sum(v) / len(v) for k, v in stats.items()}
    out.update(kl=mean_kl, kl_coef=kl_coef_used, response_tokens=float(mask.sum(1).mean()),
               batch_tokens=float(attn.sum()),
               time_forward=t_forward, time_optimise=time.perf_counter() - t0 - t_forward)  # fmt: skip
    return out


def train(cfg: RLHFConfig, policy_dir, reward_dir, prompts: list[str], checkpoint_dir, run: Any = None,
          scorer: Any = None):  # fmt: skip
    """The PPO loop. ``scorer`` (anything with ``score(prompts, completions)``) defaults to
    the reward model in ``reward_dir``."""
    acc = make_accelerator(cfg.optim.mixed_precision)
    seed_everything(cfg.seed + acc.process_index)
    tok = load_tokenizer(policy_dir)
    policy = maybe_lora(load_causal_lm(policy_dir), cfg.lora)
    ref = frozen_reference(policy, cfg.lora.enabled)
    model = PolicyWithValueHead(policy).train()
    scorer = scorer or RewardScorer(reward_dir, device=acc.device)
    world, B = acc.num_processes, cfg.batch_size
    n_steps = math.ceil(cfg.num_prompts / (B * world))
    updates = cfg.ppo_epochs * math.ceil(B / cfg.minibatch_size)
    opt, sched = build_optimizer(model, cfg.optim, n_steps * updates)
    model, opt = acc.prepare(model, opt)
    if ref is not None:
        ref.to(acc.device)
    kl_ctl = (AdaptiveKLController(cfg.init_kl_coef, cfg.target, cfg.horizon)
              if cfg.adap_kl_ctrl else FixedKLController(cfg.init_kl_coef))  # fmt: skip
    schedule = prompt_schedule(len(prompts), n_steps * B * world, cfg.seed)
    fp = fingerprint(
        cfg.model_dump(),
        model_hash(policy_dir),
        getattr(scorer, "hash", type(scorer).__name__),
        len(prompts),
        world,
    )
    ckpt = Checkpointer(checkpoint_dir, fp, acc)
    start, history, samples = 0, [], []
    resumed = ckpt.load(model, opt, sched)
    if resumed:
        start, state = resumed
        history, samples, kl_ctl.value = state["history"], state["samples"], state["kl_coef"]
    run = run or NullRun()
    bar = tqdm(range(start, n_steps), desc="rlhf", disable=None if acc.is_main_process else True)
    for step in bar:
        t0 = time.perf_counter()
        base = step * B * world + acc.process_index * B
        batch_prompts = [prompts[schedule[base + j]] for j in range(B)]
        texts = [format_prompt(p, tok, cfg.generation) for p in batch_prompts]
        responses = [
            trim_completion(c)
            for c in generate(acc.unwrap_model(model).policy, tok, texts, cfg.generation)
        ]
        t_gen = time.perf_counter()
        scores = scorer.score(batch_prompts, responses)
        check_finite("reward", sum(scores), step)
        t_score = time.perf_counter()
        input_ids, attn, mask = rollout_batch(
            tok, texts, responses, cfg.generation.max_prompt_tokens
        )
        dev = acc.device
        stats = ppo_step(cfg, acc, model, ref, opt, sched, kl_ctl, input_ids.to(dev), attn.to(dev),
                         mask.to(dev), torch.tensor(scores, device=dev), step)  # fmt: skip
        t_update = time.perf_counter()
        all_scores, all_resp = gather_object(scores), gather_object(responses)
        mean = sum(all_scores) / len(all_scores)
        row = {"step": step, "reward_mean": mean,
               "reward_std": float(torch.tensor(all_scores).std()) if len(all_scores) > 1 else 0.0,
               **stats, "completion_chars": sum(map(len, all_resp)) / len(all_resp),
               "empty_share": sum(not r for r in all_resp) / len(all_resp),
               "distinct_1": distinct_n(all_resp, 1), "distinct_2": distinct_n(all_resp, 2),
               "time_rollout": t_gen - t0, "time_score": t_score - t_gen, "time_update": t_update - t_score}  # fmt: skip
        row["reward_ema"] = ema([h["reward_mean"] for h in history] + [mean])[-1]
        history.append(row)
        if acc.is_main_process:
            run.log_metrics(
                {f"rlhf/{k}": v for k, v in row.items() if k != "step" and math.isfinite(v)}, step
            )
            bar.set_postfix(reward=f"{mean:.3f}", kl=f"{stats['kl']:.3f}")
            if step % cfg.sample_every == 0 or step == n_steps - 1:
                samples += [{"step": step, "prompt": p, "completion": r, "reward": s}
                            for p, r, s in list(zip(batch_prompts, responses, scores))[:2]]  # fmt: skip
        if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < n_steps:
            ckpt.save(
                model,
                opt,
                sched,
                step + 1,
                {"history": history, "samples": samples, "kl_coef": kl_ctl.value},
            )
    return model, tok, history, samples, acc
