"""The training loop's schedule: how many prompts each process takes at each step, the
seeded order of the prompts, each process's share of a step, and after which steps
samples, checkpoints and snapshots are due (every so many steps, or when the smoothed KL to
the reference reaches a grid value) and when the KL stops the run."""

from __future__ import annotations

import math
import random

from accelerate import Accelerator

from superhf.params import ParamsError


def prompts_per_step(
    num_prompts: int, per_step: int, world: int, section: str, drop_last: bool = False
) -> list[int]:
    """Prompts each process takes at each step, so that a run uses exactly ``num_prompts``.

    Full steps take ``per_step`` prompts per process; a remainder becomes one last, smaller
    step (the same size on every process), or is dropped with ``drop_last`` (TRL's
    dataloader: the paper's RLHF run used 1984 of 2000 prompts in 62 steps). A remainder
    that cannot be split evenly across the processes is an error rather than a silent
    rounding.
    """
    if num_prompts % world:
        raise ParamsError(
            f"{section}.num_prompts ({num_prompts}) must be a multiple of the number of "
            f"processes ({world}), so that every process takes the same prompts per step"
        )
    full, rest = divmod(num_prompts, per_step * world)
    if drop_last and not full:
        raise ParamsError(
            f"{section}.num_prompts ({num_prompts}) is less than one full step "
            f"({per_step} x {world} processes) and drop_last drops it: nothing to train"
        )
    return [per_step] * full + ([rest // world] if rest and not drop_last else [])


def prompt_schedule(n_prompts: int, total: int, seed: int) -> list[int]:
    """Indices of the training prompts in the order they are used (reshuffled per pass)."""
    rng = random.Random(seed)
    order: list[int] = []
    while len(order) < total:
        block = list(range(n_prompts))
        rng.shuffle(block)
        order += block
    return order[:total]


def step_prompts(
    prompts: list[str], schedule: list[int], sizes: list[int], step: int, accelerator: Accelerator
) -> list[str]:
    """This process's prompts at ``step``: its own slice of the step's block of the seeded
    schedule, so processes see disjoint prompts."""
    n = sizes[step]
    base = sum(sizes[:step]) * accelerator.num_processes + accelerator.process_index * n
    return [prompts[schedule[base + j]] for j in range(n)]


def sample_due(every: int, step: int, n_steps: int) -> bool:
    """Samples are kept every ``every`` steps (0-based, from step 0) and at the last step."""
    return step % every == 0 or step == n_steps - 1


def checkpoint_due(every: int, step: int, n_steps: int) -> bool:
    """A checkpoint after every ``every`` steps, but not after the last (the final save)."""
    return (step + 1) % every == 0 and step + 1 < n_steps


def snapshot_due(every: int, step: int, n_steps: int) -> bool:
    """After ``step`` (0-based) of ``n_steps``: is a snapshot due? Never after the last step
    (the final model is the curve's last point) and never when ``every`` is 0."""
    return every > 0 and (step + 1) % every == 0 and step + 1 < n_steps


def kl_crossings(kl_ema: list[float], grid: list[float]) -> list[float]:
    """The grid values (ascending) the smoothed KL reaches for the first time at the last
    step of ``kl_ema`` (the EMA of every step's KL so far): those above the highest EMA of
    the earlier steps and at most the last one. A NaN (KL not measured) reaches nothing. A
    function of the history alone, so a resumed run finds the same crossings."""
    if not kl_ema or math.isnan(kl_ema[-1]):
        return []
    before = max((k for k in kl_ema[:-1] if not math.isnan(k)), default=-math.inf)
    return [g for g in grid if before < g <= kl_ema[-1]]


def kl_stop(kl_ema: list[float], stop_kl: float | None) -> bool:
    """Does the run stop after the last step of ``kl_ema``: its smoothed KL reached
    ``stop_kl`` (None: never)."""
    return stop_kl is not None and bool(kl_ema) and kl_ema[-1] >= stop_kl


def kl_stopped(kl_ema: list[float], stop_kl: float | None) -> bool:
    """Did any step of ``kl_ema`` reach ``stop_kl``: a run resumed past its stop trains no
    further."""
    return stop_kl is not None and any(k >= stop_kl for k in kl_ema)
