"""One PPO update on a batch of rollouts: old log-probs and values, per-token rewards, GAE
advantages, then ``ppo_epochs`` passes of the clipped policy and value losses over
minibatches, the learning-rate schedule and the KL controller stepped once per update."""

from __future__ import annotations

import time

import torch
from accelerate.utils import gather_object

from superhf.core import shifted_logprobs, tail_columns, tail_forward_inputs
from superhf.ppo_core import (
    entropy_from_logits,
    gae,
    masked_mean,
    masked_whiten,
    per_token_rewards,
    policy_loss,
    value_loss,
)
from superhf.trainer_loop import Trainee
from superhf.training import check_finite


def ppo_step(t: Trainee, input_ids, attn, mask, scores, step, *, reuse_forward: bool = True):
    """One PPO step on a batch of rollouts; returns its statistics. ``t`` holds the config,
    accelerator, model (with its value head), reference, optimiser, schedule and, in
    ``t.extra["kl_ctl"]``, the KL controller.

    Logits and values are computed for the response columns only (``tail_columns``): the
    prompt's vocabulary-sized logits are never used. With one minibatch per epoch, the
    rollout forward (old log-probs and values) is the first epoch's forward: it runs once,
    with gradients, instead of twice (``reuse_forward=False`` runs it twice; same result).
    The learning-rate schedule steps once per PPO step, as TRL 0.4's did.
    """
    cfg = t.cfg
    n = input_ids.shape[0]
    targets = torch.cat([torch.zeros_like(mask[:, :1]), mask], 1).bool()
    keep = max(2, tail_columns(targets))
    fwd = tail_forward_inputs(input_ids, attn, keep)
    ids, mask = input_ids[:, -keep:], mask[:, -(keep - 1) :]
    reuse = reuse_forward and cfg.minibatch_size >= n
    t0 = time.perf_counter()
    first = None
    if reuse:
        with t.acc.autocast():
            first = t.model(**fwd)
    ro = _rollout(t, fwd, ids, mask, scores, first)
    t_forward = time.perf_counter() - t0
    stats: dict[str, list[float]] = {
        k: [] for k in ("pg_loss", "vf_loss", "pg_clipfrac", "vf_clipfrac", "approx_kl", "entropy")
    }
    gen = torch.Generator().manual_seed(step)
    for _ in range(cfg.ppo_epochs):
        perm = torch.randperm(n, generator=gen)
        for s in range(0, n, cfg.minibatch_size):
            idx = perm[s : s + cfg.minibatch_size].to(input_ids.device)
            new_logits, new_values = _minibatch_forward(t, fwd, first, idx)
            loss, values = _minibatch_loss(
                cfg, ro, new_logits, new_values, ids[idx], mask[idx], idx
            )
            _optimiser_step(t, loss, step)
            for k, v in zip(stats, values):
                stats[k].append(float(v.detach()))
        first = None  # epoch 0 is done with it
    out = {k: sum(v) / len(v) for k, v in stats.items()}
    out.update(
        _advance_schedules(t, ro, n),
        response_tokens=float(mask.sum(1).mean()),
        batch_tokens=float(attn.sum()),
        time_forward=t_forward,
        time_optimise=time.perf_counter() - t0 - t_forward,
    )
    return out


def _minibatch_forward(t: Trainee, fwd: dict, first, idx):
    """(logits, values) of the minibatch rows ``idx``: taken from the rollout forward
    ``first`` in epoch 0 of a single minibatch, else a forward with gradients."""
    if first is not None:
        return first[0][idx], first[1][idx]
    with t.acc.autocast():
        return t.model(**{k: v[idx] if torch.is_tensor(v) else v for k, v in fwd.items()})


def _optimiser_step(t: Trainee, loss, step: int) -> None:
    """Backward, the optional gradient-norm clip, one optimiser step."""
    check_finite("loss", loss.detach(), step)
    t.acc.backward(loss)
    if t.cfg.optim.max_grad_norm:
        t.acc.clip_grad_norm_(t.model.parameters(), t.cfg.optim.max_grad_norm)
    t.opt.step()
    t.opt.zero_grad(set_to_none=True)


def _advance_schedules(t: Trainee, ro: dict, n: int) -> dict[str, float]:
    """Step the learning-rate schedule and the KL controller once per PPO step; returns
    the batch's mean KL over every process and the KL coefficient and learning rate the
    step used."""
    lr_used = t.sched.get_last_lr()[0]
    t.sched.step()
    mean_kl = sum(gather_object([float(ro["kl"].sum(1).mean())])) / t.acc.num_processes
    kl_ctl = t.extra["kl_ctl"]
    kl_coef_used = kl_ctl.value
    kl_ctl.update(mean_kl, n * t.acc.num_processes)
    return {"kl": mean_kl, "kl_coef": kl_coef_used, "lr": lr_used}


def _minibatch_loss(cfg, ro: dict, new_logits, new_values, ids, m, idx):
    """The clipped PPO loss of one minibatch (rows ``idx`` of the rollout ``ro``) and its
    statistics (pg_loss, vf_loss, pg_clipfrac, vf_clipfrac, approx_kl, entropy)."""
    adv = ro["adv"][idx]
    if cfg.whiten_advantages == "minibatch":  # TRL 0.4: inside each minibatch's loss
        adv = masked_whiten(adv, m) * m
    logp = shifted_logprobs(new_logits, ids)
    pg, pg_clip, approx = policy_loss(logp, ro["old_logp"][idx], adv, m, cfg.cliprange)
    vf, vf_clip = value_loss(
        new_values[:, :-1] * m, ro["old_values"][idx], ro["returns"][idx], m, cfg.cliprange_value
    )
    with torch.no_grad():
        ent = masked_mean(entropy_from_logits(new_logits[:, :-1]), m)
    return pg + cfg.vf_coef * vf, (pg, vf, pg_clip, vf_clip, approx, ent)


@torch.no_grad()
def _rollout(t: Trainee, fwd: dict, ids, mask, scores, first) -> dict:
    """Old log-probs and values, per-token rewards and KL, GAE advantages and returns of a
    batch of rollouts (advantages whitened over the batch unless per minibatch)."""
    cfg = t.cfg
    if first is not None:
        logits, values = first[0].detach(), first[1].detach()
    else:
        logits, values = t.model(**fwd)
    old_logp = shifted_logprobs(logits, ids)
    policy = t.acc.unwrap_model(t.model).policy
    if t.ref is None:  # LoRA: the reference is the base weights
        with policy.disable_adapter():
            ref_logits = policy(**fwd).logits
    else:
        ref_logits = t.ref(**fwd).logits
    ref_logp = shifted_logprobs(ref_logits, ids)
    del logits, ref_logits
    old_values = values[:, :-1] * mask
    if cfg.whiten_scores:
        scores = (scores - scores.mean()) / (scores.std() + 1e-8) if len(scores) > 1 else scores
    rewards, kl = per_token_rewards(scores, old_logp, ref_logp, mask, t.extra["kl_ctl"].value)
    adv, returns = gae(old_values, rewards, mask, cfg.gamma, cfg.lam)
    if cfg.whiten_advantages == "batch":
        adv = masked_whiten(adv, mask) * mask
    return {
        "old_logp": old_logp,
        "old_values": old_values,
        "adv": adv,
        "returns": returns,
        "kl": kl,
    }
