"""The PPO training loop of the RLHF baseline (paper section 4.2), run by stage ``rlhf``.

Classic design (Ziegler et al. 2019, TRL 0.4, which the paper used): per-token reward
``-kl_coef * (logp - logp_ref)`` plus the reward-model score on the last response token,
a value head on the policy, GAE, whitened advantages, clipped policy and value losses,
``ppo_epochs`` passes over minibatches, an adaptive (or fixed) KL coefficient. Responses
are the tokens the policy sampled (cut at the trim point), so the ratio, advantages and
per-token KL act on what was sampled.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import torch
from accelerate.utils import gather_object

from superhf.core import (
    IGNORE,
    build_sft_batch,
    shifted_logprobs,
    tail_columns,
    tail_forward_inputs,
)
from superhf.errors import BadInputError
from superhf.generation import Completion, distinct_n, sample_completions
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
    prompts_per_step,
    seed_everything,
)
from superhf.trimming import trim_completion

# A section class only named in annotations: imported for type checkers, not at run time,
# so the stages that run this module do not depend on (rerun for) that section's config.
if TYPE_CHECKING:
    from superhf.config.rlhf import RLHFConfig


class PolicyWithValueHead(torch.nn.Module):
    """A causal LM plus a scalar value head on its last hidden state. ``head`` zero: a
    zero-initialised linear head; trl: TRL 0.4's, PyTorch's default init after dropout 0.1
    (active in train mode, as TRL's head was during the rollout forward too)."""

    def __init__(self, policy: torch.nn.Module, head: str = "zero") -> None:
        super().__init__()
        self.policy = policy
        hidden = policy.config.get_text_config().hidden_size
        self.dropout = torch.nn.Dropout(0.1 if head == "trl" else 0.0)
        self.value_head = torch.nn.Linear(hidden, 1)
        if head == "zero":
            torch.nn.init.zeros_(self.value_head.weight)
            torch.nn.init.zeros_(self.value_head.bias)

    def forward(self, input_ids, attention_mask, position_ids=None, logits_to_keep: int = 0):
        """(logits, values) for the last ``logits_to_keep`` columns (0: all of them)."""
        out = self.policy(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            logits_to_keep=logits_to_keep,
            output_hidden_states=True,
        )
        hidden = (
            out.hidden_states[-1][:, -logits_to_keep:] if logits_to_keep else out.hidden_states[-1]
        )
        values = self.value_head(self.dropout(hidden.float())).squeeze(-1)
        return out.logits, values


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
