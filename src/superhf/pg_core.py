"""Group policy-gradient maths (RLOO and GRPO) as small pure functions.

Both methods score S completions of each prompt (a *group*, SuperHF's superbatch of one
prompt) and take a policy-gradient step over all S:

- RLOO (Ahmadian et al. 2024, "Back to Basics", eq. 6): the baseline of completion i is
  the mean reward of the other S-1, ``A_i = R_i - mean_{j!=i} R_j``; the KL penalty sits in
  the reward, ``R_i = r_i - beta * sum_t (logp - logp_ref)`` (the k1 estimator summed over
  the sequence); the whole completion is one action.
- GRPO (Shao et al. 2024, DeepSeekMath eq. 3-4): ``A_i = (r_i - mean(r)) / std(r)`` over
  the group, the same for every token; a clipped ratio per token; the KL penalty in the loss
  per token with the k3 estimator ``exp(ref - logp) - (ref - logp) - 1``; each sequence's
  token losses averaged (``1/|o_i|``), then the group's.

Rewards are ``[groups, S]``; token tensors ``[rows, time]`` with a ``mask`` of response
tokens, rows ordered group by group. Every function is tested against a per-row loop and
against numbers worked out by hand in ``tests/test_pg_core.py``.
"""

from __future__ import annotations

from typing import Literal

import torch

Aggregation = Literal["sequence_mean", "token_mean", "sequence_sum"]


def leave_one_out_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """RLOO: ``A_i = R_i - mean_{j != i} R_j`` within each group (row) of ``[groups, S]``.

    Equal to ``S / (S - 1) * (R_i - mean(R))``. A group of one has no other sample to
    compare with: an error, not a silent zero.
    """
    s = rewards.shape[-1]
    if s < 2:
        raise ValueError("leave-one-out advantages need at least 2 completions per prompt")
    others = (rewards.sum(-1, keepdim=True) - rewards) / (s - 1)
    return rewards - others


def group_normalised_advantages(
    rewards: torch.Tensor, eps: float = 1e-4, scale: bool = True
) -> torch.Tensor:
    """GRPO: ``(r_i - mean_g) / (std_g + eps)`` within each group (row) of ``[groups, S]``.

    ``std_g`` is the sample standard deviation (n - 1), as DeepSeekMath's ``std`` and
    torch's default; ``scale=False`` keeps only the centring (Dr. GRPO, Liu et al. 2025).
    """
    centred = rewards - rewards.mean(-1, keepdim=True)
    if not scale:
        return centred
    std = rewards.std(-1, keepdim=True) if rewards.shape[-1] > 1 else torch.zeros_like(centred)
    return centred / (std + eps)


def k1_sequence_kl(
    logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Sequence-level k1 estimate of KL(policy || ref) per row: ``sum_t (logp - logp_ref)``
    over the response tokens (what RLOO subtracts from the reward, times beta): ``[rows]``."""
    return ((logprobs - ref_logprobs) * mask).sum(-1)


def k3_token_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(policy || ref) (Schulman 2020; DeepSeekMath eq. 4):
    ``exp(ref - logp) - (ref - logp) - 1``, non-negative, unbiased under samples of the
    policy: same shape as the inputs."""
    d = ref_logprobs - logprobs
    return torch.exp(d) - d - 1


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, how: Aggregation) -> torch.Tensor:
    """One number from per-token losses: ``sequence_mean`` averages each row's tokens, then
    the rows (GRPO); ``token_mean`` averages all tokens of the batch together (DAPO, Yu et
    al. 2025); ``sequence_sum`` sums each row's tokens, then averages the rows (the whole
    completion as one action: RLOO's REINFORCE on ``log pi(y|x)``)."""
    mask = mask.to(per_token.dtype)
    if how == "token_mean":
        return (per_token * mask).sum() / mask.sum().clamp(min=1)
    per_row = (per_token * mask).sum(-1)
    if how == "sequence_mean":
        per_row = per_row / mask.sum(-1).clamp(min=1)
    elif how != "sequence_sum":
        raise ValueError(f"unknown aggregation {how!r}")
    return per_row.mean()


def clipped_pg_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    cliprange: float | None,
    aggregation: Aggregation,
    kl_coef: float = 0.0,
    ref_logprobs: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, clip fraction, mean k3 KL per token) of one batch of completions.

    Per token: ``-min(ratio * A, clip(ratio, 1 - c, 1 + c) * A)`` with
    ``ratio = exp(logp - logp_old)`` and ``A`` the row's advantage (``[rows]``), plus
    ``kl_coef * k3`` when ``kl_coef > 0`` (KL in the loss); ``cliprange`` None: no clipping
    (``-ratio * A``). Then ``aggregate``. The KL is reported (detached) whenever
    ``ref_logprobs`` is given, else NaN.
    """
    ratio = torch.exp(logprobs - old_logprobs)
    adv = advantages[:, None]
    pg1 = -adv * ratio
    if cliprange is None:
        per_token, clipfrac = pg1, torch.zeros((), device=pg1.device)
    else:
        pg2 = -adv * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
        per_token = torch.maximum(pg1, pg2)
        m = mask.to(pg1.dtype)
        clipfrac = ((pg2 > pg1).to(pg1.dtype) * m).sum() / m.sum().clamp(min=1)
    kl = torch.full((), float("nan"), device=pg1.device)
    if ref_logprobs is not None:
        k3 = k3_token_kl(logprobs, ref_logprobs)
        if kl_coef > 0:
            per_token = per_token + kl_coef * k3
        m = mask.to(k3.dtype)
        kl = ((k3 * m).sum() / m.sum().clamp(min=1)).detach()
    elif kl_coef > 0:
        raise ValueError("kl_coef > 0 in the loss needs the reference log-probs")
    return aggregate(per_token, mask, aggregation), clipfrac.detach(), kl
