"""The maths of SuperHF as small pure functions (no models, no I/O), each tested against a
plain reference implementation in ``tests/test_core.py``."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

IGNORE = -100


def select_top_k(rewards: Sequence[float], valid: Sequence[bool], k: int) -> list[int]:
    """Indices of the ``k`` highest rewards among the valid completions of one prompt.

    Ties keep the earlier completion (stable). Fewer than ``k`` valid gives all of them.
    """
    order = sorted((i for i in range(len(rewards)) if valid[i]), key=lambda i: -rewards[i])
    return order[:k]


def build_sft_batch(
    prompt_ids: Sequence[Sequence[int]],
    completion_ids: Sequence[Sequence[int]],
    pad_id: int,
) -> dict[str, torch.Tensor]:
    """Left-padded ``prompt + completion`` rows with labels on the completion tokens only.

    The paper's code masked the first ``prompt_len`` positions although it padded on the
    left, so pad and prompt tokens leaked into the loss; here the mask is built per row
    from where its completion actually starts.
    """
    rows = [list(p) + list(c) for p, c in zip(prompt_ids, completion_ids)]
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    for i, (row, comp) in enumerate(zip(rows, completion_ids)):
        pad = width - len(row)
        input_ids[i, pad:] = torch.tensor(row)
        attention[i, pad:] = 1
        if comp:
            labels[i, width - len(comp) :] = torch.tensor(list(comp))
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


def accumulation_scales(minibatches: Sequence[int], accumulation: int) -> list[float]:
    """Loss scale of each minibatch index so that every optimiser step's gradient is the
    mean over the real minibatches of its group, on every process together.

    ``minibatches``: how many real minibatches each process has (the others run zero-weight
    fillers to keep collectives in step; DDP averages gradients over all processes).
    Minibatch m belongs to group ``m // accumulation``; its scale is processes / (real
    (process, minibatch) pairs in that group). One process: 1 / the group's size, so a
    last, shorter group is not divided by the full ``accumulation``."""
    world, n = len(minibatches), max(minibatches, default=0)
    scales = []
    for m in range(n):
        g = m // accumulation
        group = range(g * accumulation, min((g + 1) * accumulation, n))
        real = sum(1 for k in minibatches for j in group if j < k)
        scales.append(world / real)
    return scales


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that count real tokens only, so a left-padded row sees the same positions
    as an unpadded one (what ``generate`` uses; matters for absolute-position models)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def tail_columns(targets: torch.Tensor) -> int:
    """How many right-most columns a forward must return logits for so that every target
    token (``targets``: bool [batch, seq], True where a token is scored) is predicted.

    A token in column j is predicted at column j - 1, so that column is included. In a
    left-padded ``prompt + completion`` batch the completions sit at the right end, and the
    prompt's logits (most of the vocabulary-sized work) are never computed. Pass the result
    as ``logits_to_keep`` and slice ``input_ids``/``labels`` to the same last columns.
    """
    cols = targets[:, 1:].any(0).nonzero()  # column 0 has nothing to be predicted from
    if len(cols) == 0:
        return 1
    return targets.shape[1] - int(cols[0])


def tail_forward_inputs(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, keep: int
) -> dict[str, torch.Tensor | int]:
    """Keyword arguments for a causal LM forward over a left-padded batch that returns
    logits for the last ``keep`` columns only (see ``tail_columns``)."""
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "position_ids": position_ids(attention_mask),
        "logits_to_keep": keep,
    }


def shifted_logprobs(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """log p(token_t | tokens_<t) for t >= 1: shape [batch, seq-1]."""
    logp = F.log_softmax(logits[:, :-1].float(), dim=-1)
    return logp.gather(-1, input_ids[:, 1:, None]).squeeze(-1)


def completion_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-example mean negative log-likelihood of the labelled tokens: shape [batch]."""
    logp = F.log_softmax(logits[:, :-1].float(), dim=-1)
    target = labels[:, 1:]
    mask = target != IGNORE
    picked = logp.gather(-1, target.clamp(min=0)[..., None]).squeeze(-1)
    return -(picked * mask).sum(-1) / mask.sum(-1).clamp(min=1)


def kl_per_example(
    policy_logits: torch.Tensor, ref_logits: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Mean over labelled positions of the full-vocabulary KL(policy || reference): [batch].

    The original code computed KL(reference || policy) with KLDivLoss and clamped it at 0;
    this is the direction the later SuperHF paper writes, and it is non-negative exactly.
    """
    p_log = F.log_softmax(policy_logits[:, :-1].float(), dim=-1)
    q_log = F.log_softmax(ref_logits[:, :-1].float(), dim=-1)
    kl_tok = (p_log.exp() * (p_log - q_log)).sum(-1)
    mask = labels[:, 1:] != IGNORE
    return (kl_tok * mask).sum(-1) / mask.sum(-1).clamp(min=1)


def superhf_loss(
    policy_logits: torch.Tensor,
    labels: torch.Tensor,
    kl_coef: float = 0.0,
    ref_logits: torch.Tensor | None = None,
    inverse_loss_penalty: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, nll, kl): mean over examples of NLL + kl_coef * KL, plus
    ``inverse_loss_penalty / loss`` (the paper's linked run). ``kl`` is measured (detached)
    whenever ``ref_logits`` is given, whatever ``kl_coef``; without them it is NaN, never a
    zero that was not measured."""
    nll = completion_nll(policy_logits, labels)
    if ref_logits is None:
        if kl_coef > 0:
            raise ValueError("kl_coef > 0 needs the reference logits")
        kl = torch.full_like(nll, float("nan"))
    elif kl_coef > 0:
        kl = kl_per_example(policy_logits, ref_logits, labels)
    else:  # measured only: no gradient through it
        kl = kl_per_example(policy_logits.detach(), ref_logits, labels)
    per = nll + kl_coef * kl if kl_coef > 0 else nll
    loss = per.mean()
    if inverse_loss_penalty > 0:
        loss = loss + inverse_loss_penalty / loss
    return loss, nll.detach(), kl.detach()


def length_penalised(
    scores: Sequence[float], completions: Sequence[str], coef: float
) -> list[float]:
    """score - coef * log(completion characters) (the paper's linked run, coef 0.01); an
    empty completion counts as one character."""
    if coef == 0:
        return list(scores)
    return [s - coef * math.log(max(1, len(c))) for s, c in zip(scores, completions)]


def ema(values: Sequence[float], alpha: float = 0.9) -> list[float]:
    """Exponential moving average as in the paper's Figure 2: m_t = a m_{t-1} + (1-a) x_t.
    A NaN x_t (a superbatch with no non-empty completion to average) leaves m unchanged."""
    out: list[float] = []
    for v in values:
        if not out or math.isnan(out[-1]):
            out.append(v)
        else:
            out.append(out[-1] if math.isnan(v) else alpha * out[-1] + (1 - alpha) * v)
    return out
