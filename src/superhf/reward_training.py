"""Training and judging reward models on preference pairs: the Bradley-Terry loss and its
trainer, the proxy/gold split of the pairs, pair accuracy, and relabelling pairs by a judge.
Scoring itself (:class:`RewardScorer`, the input encoding) is in ``reward``.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase, get_scheduler

from superhf.errors import BadInputError
from superhf.reward import RewardScorer, encode

# A section class only named in annotations: imported for type checkers, not at run time,
# so the stages that run this module do not depend on (rerun for) that section's config.
if TYPE_CHECKING:
    from superhf.config.reward_model import RewardModelConfig

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- maths
def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """Mean of -log sigmoid(r_chosen - r_rejected): the pairwise preference likelihood."""
    return -F.logsigmoid(r_chosen - r_rejected).mean()


def pair_accuracy(chosen: Sequence[float], rejected: Sequence[float]) -> float:
    """Share of pairs where chosen scores higher; a tie counts one half."""
    if not chosen:
        return float("nan")
    wins = sum(1.0 if c > r else 0.5 if c == r else 0.0 for c, r in zip(chosen, rejected))
    return wins / len(chosen)


# ----------------------------------------------------------------------------- training
def transformer_blocks(model: PreTrainedModel) -> torch.nn.ModuleList:
    """The backbone's stack of transformer blocks: the ModuleList under ``base_model`` with
    ``config.num_hidden_layers`` entries (Llama's ``layers``, BERT's ``encoder.layer``)."""
    n = model.config.num_hidden_layers
    for module in model.base_model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n:
            return module
    raise BadInputError(
        f"reward_model.gold_recipe.train_layers: {type(model).__name__} has no list of its "
        f"{n} transformer blocks to freeze; use null (train every weight)"
    )


def train_top_layers(model: PreTrainedModel, n: int | None) -> int:
    """Freeze every weight registered before the top ``n`` transformer blocks (the
    embeddings and the lower blocks; None = train all); the top blocks, what follows them
    (final norm, pooler) and the reward head stay trainable. Frozen blocks run forward only,
    so a step costs about (1 + 2 n / L) / 3 of a full one. Returns the trainable count."""
    if n is not None:
        blocks = transformer_blocks(model)
        if n > len(blocks):
            raise BadInputError(
                f"reward_model.gold_recipe.train_layers: {n} is more than the backbone's "
                f"{len(blocks)} transformer blocks"
            )
        first = next(blocks[len(blocks) - n].parameters())
        below = True
        for p in model.parameters():  # registration order: embeddings, blocks, norm, head
            below = below and p is not first
            p.requires_grad_(not below)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def train_reward_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[dict],
    *,
    epochs: float,
    lr: float,
    batch_size: int,
    max_length: int,
    weight_decay: float = 0.0,
    warmup_ratio: float = 0.1,
    seed: int = 0,
    input_format: str = "text",
    device: str | torch.device = "cpu",
    mixed_precision: str = "fp32",
) -> list[float]:
    """Fine-tune ``model`` with the Bradley-Terry loss on ``device`` (weights fp32, bf16
    autocast when ``mixed_precision`` says so); returns the per-step losses."""
    device = torch.device(device)
    model.to(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=mixed_precision == "bf16")
    gen = torch.Generator().manual_seed(seed)
    steps_per_epoch = math.ceil(len(pairs) / batch_size)
    total = max(1, math.ceil(epochs * steps_per_epoch))
    params = [p for p in model.parameters() if p.requires_grad]  # see train_top_layers
    fused = all(p.device.type in ("cpu", "cuda") for p in params)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused)
    sched = get_scheduler("linear", opt, int(warmup_ratio * total), total)
    model.train()
    losses: list[float] = []
    order: list[int] = []
    every, start = max(1, total // 20), time.perf_counter()  # a log line each ~5% of steps
    for _ in tqdm(range(total), desc="reward model", disable=None):
        if not order:
            order = torch.randperm(len(pairs), generator=gen).tolist()
        batch = [pairs[i] for i in order[:batch_size]]
        order = order[batch_size:]
        prompts = [p["prompt"] for p in batch] * 2
        comps = [p["chosen"] for p in batch] + [p["rejected"] for p in batch]
        enc = encode(tokenizer, prompts, comps, input_format, max_length).to(device)
        with autocast:
            r = model(**enc).logits[:, 0].float()
        loss = bradley_terry_loss(r[: len(batch)], r[len(batch) :])
        if not torch.isfinite(loss):
            raise FloatingPointError(f"reward-model loss is {loss.item()} at step {len(losses)}")
        loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if len(losses) % every == 0 or len(losses) == total:
            log_progress(losses, total, time.perf_counter() - start, every)
    model.eval()
    return losses


def log_progress(losses: list[float], total: int, elapsed: float, window: int) -> None:
    """One line a long run can be watched by: step, mean loss of the last ``window`` steps,
    seconds per step so far and the time left at that pace."""
    done = len(losses)
    recent = losses[-window:]
    per_step = elapsed / done
    mean, left_min = sum(recent) / len(recent), per_step * (total - done) / 60
    msg = "reward model step %d/%d: loss %.4f (mean of last %d), %.1f s/step, ~%.0f min left"
    log.info(msg, done, total, mean, len(recent), per_step, left_min)


# ----------------------------------------------------------------------------- pairs
def split_pairs(pairs: list[dict], cfg: RewardModelConfig) -> tuple[list[dict], list[dict]]:
    """Training pairs of the proxy and of the gold model (disjoint halves by default)."""
    pairs = pairs[: cfg.max_train_pairs] if cfg.max_train_pairs else pairs
    if cfg.gold_split == "all":
        return pairs, pairs
    idx = list(range(len(pairs)))
    random.Random(cfg.seed).shuffle(idx)
    half = len(idx) // 2
    if cfg.gold_split == "disjoint_share":
        half = len(idx) - round(cfg.gold_share * len(idx))
    return [pairs[i] for i in idx[:half]], [pairs[i] for i in idx[half:]]


def score_pairs(scorer: RewardScorer, pairs: list[dict]) -> tuple[list[float], list[float]]:
    """(chosen scores, rejected scores) of preference pairs."""
    prompts = [p["prompt"] for p in pairs]
    chosen = scorer.score(prompts, [p["chosen"] for p in pairs])
    return chosen, scorer.score(prompts, [p["rejected"] for p in pairs])


def evaluate_pairs(scorer: RewardScorer, pairs: list[dict]) -> float:
    return pair_accuracy(*score_pairs(scorer, pairs))


def length_baseline(pairs: list[dict]) -> float:
    return pair_accuracy([len(p["chosen"]) for p in pairs], [len(p["rejected"]) for p in pairs])


def relabel_pairs(
    pairs: Sequence[dict], chosen: Sequence[float], rejected: Sequence[float]
) -> tuple[list[dict], int]:
    """The pairs as a judge labels them (Gao et al. 2022's synthetic setup): chosen and
    rejected swapped wherever the judge scores the rejected answer higher; a tie keeps the
    human label. Returns (relabelled pairs, how many were swapped)."""
    out, swapped = [], 0
    for pair, c, r in zip(pairs, chosen, rejected, strict=True):
        if r > c:
            out.append({**pair, "chosen": pair["rejected"], "rejected": pair["chosen"]})
            swapped += 1
        else:
            out.append(dict(pair))
    return out, swapped
