"""The outer loop every training method shares (SuperHF, PPO, RLOO, GRPO).

A method file builds its models and optimiser into a ``Trainee`` and describes itself with a
``Method`` (its stage name, its step, its reward-model queries per prompt); ``run_loop``
does the rest the same way for all: the seeded prompt schedule, resume from a matching
checkpoint, the EMA of the reward, MLflow rows, kept samples, snapshots for the
over-optimisation curve (every ``snapshot_every`` steps and where the EMA of the training KL
first reaches a ``snapshot_kl`` value; written before a checkpoint, so a kill between the two
never leaves a checkpoint past a snapshot that was not written), checkpoints, and the early
stop once that EMA reaches ``stop_kl``.

A run can be cut into timed pieces: with ``SUPERHF_PAUSE_AFTER_MIN=M`` in the environment, the
first step that ends M minutes or more after the loop started writes a checkpoint, the file
``<checkpoints>.paused.json`` beside it, and raises ``TrainingPaused`` (the stage exits with
status 3); the same command resumes from that checkpoint, to the weights of a run never
paused (as a resume after kill -9).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from tqdm.auto import tqdm

from superhf.checkpoints import Checkpointer, fingerprint, prompts_digest, resume, save_snapshot
from superhf.core import ema
from superhf.errors import TrainingPaused, UserError
from superhf.loop_schedule import (
    checkpoint_due,
    kl_crossings,
    kl_stop,
    kl_stopped,
    prompt_schedule,
    sample_due,
    snapshot_due,
    step_prompts,
)
from superhf.reward import model_hash
from superhf.tracking import NullRun
from superhf.training import log_row

log = logging.getLogger(__name__)
PAUSE_ENV = "SUPERHF_PAUSE_AFTER_MIN"


@dataclass(frozen=True)
class Trainee:
    """What a training step works on: the section's config, the accelerator, the prepared
    model and optimiser, the tokenizer, the reward scorer, the frozen reference (None under
    LoRA or when not needed) and a method's own objects (``extra``: PPO's KL controller,
    SuperHF's measure_kl). The steps take it whole instead of a long list of arguments."""

    cfg: Any
    acc: Accelerator
    model: Any
    tok: Any
    opt: Any
    sched: Any
    scorer: Any
    ref: Any = None
    extra: dict = field(default_factory=dict)


@dataclass
class Method:
    """How ``run_loop`` runs one method.

    ``step(trainee, prompts, step)`` runs one step on this process's prompts and returns
    (history row, sample candidates as ``{"prompt", "completion", "reward"}``; the first two
    are kept when samples are due). ``queries_per_prompt(cfg)``: completions scored per
    prompt (reward-model queries). ``policy(trainee)``: the plain policy a snapshot saves.
    ``save_state``/``load_state``: a method's own loop state in the checkpoint.
    ``kl_key``: the row key of the step's KL to the reference per completion (summed over
    its tokens), the scale of ``snapshot_kl`` and ``stop_kl`` for every method.
    """

    stage: str
    step: Callable[[Trainee, list[str], int], tuple[dict, list[dict]]]
    queries_per_prompt: Callable[[Any], int]
    postfix: tuple[str, str] = ("ema", "reward_ema")
    policy: Callable[[Trainee], Any] = lambda t: t.model
    save_state: Callable[[Trainee], dict] = lambda t: {}
    load_state: Callable[[Trainee, dict], None] = lambda t, state: None
    kl_key: str = "kl"  # the row's KL per completion (snapshot_kl, stop_kl)


def run_fingerprint(t: Trainee, policy_dir: str | Path, prompts: list[str]) -> str:
    """Identity of a run's inputs: params, start policy, reward model, the prompts' content
    (a hash: a resume after ``prepare`` changed them starts fresh), processes."""
    scorer_id = getattr(t.scorer, "hash", type(t.scorer).__name__)
    return fingerprint(
        # not the KL grid nor the stop: changing them mid-run keeps the checkpoint
        t.cfg.model_dump(exclude={"snapshot_kl", "stop_kl"}),
        model_hash(policy_dir),
        scorer_id,
        prompts_digest(prompts),
        t.acc.num_processes,
    )


def run_loop(
    method: Method,
    t: Trainee,
    prompts: list[str],
    sizes: list[int],
    fp: str,
    checkpoint_dir: str | Path,
    snapshot_dir: str | Path | None,
    run: Any = None,
) -> tuple[list[dict], list[dict]]:
    """Every step of the run from the last matching checkpoint; (history, samples)."""
    cfg, acc = t.cfg, t.acc
    schedule = prompt_schedule(len(prompts), cfg.num_prompts, cfg.seed)
    ckpt = Checkpointer(checkpoint_dir, fp, acc)
    deadline = pause_deadline(os.environ.get(PAUSE_ENV), time.monotonic())
    start, state = resume(ckpt, t.model, t.opt, t.sched, snapshot_dir, acc)
    history, samples = state.get("history", []), state.get("samples", [])
    method.load_state(t, state)
    run = run or NullRun()
    n_steps = len(sizes)
    # resumed past the stop (stop_kl lowered since): train no further
    if kl_stopped(kl_ema(history, method.kl_key), cfg.stop_kl):
        start = n_steps
    bar = tqdm(
        range(start, n_steps), desc=method.stage, disable=None if acc.is_main_process else True
    )
    for step in bar:
        batch_prompts = step_prompts(prompts, schedule, sizes, step, acc)
        row, candidates = method.step(t, batch_prompts, step)
        row["reward_ema"] = ema([h["reward_mean"] for h in history] + [row["reward_mean"]])[-1]
        history.append(row)
        smoothed = kl_ema(history, method.kl_key)
        # a stop makes this step the run's last: no snapshot or checkpoint, the final save
        end = step + 1 if kl_stop(smoothed, cfg.stop_kl) else n_steps
        if acc.is_main_process:
            log_row(run, method.stage, row, step)
            label, key = method.postfix
            bar.set_postfix({"reward": f"{row['reward_mean']:.3f}", label: f"{row[key]:.3f}"})
            if sample_due(cfg.sample_every, step, end):
                samples += [{"step": step, **c} for c in candidates[:2]]
        # the snapshot first: a kill between the two never leaves a checkpoint past a
        # snapshot that was not written
        crossed = kl_crossings(smoothed, cfg.snapshot_kl) if step + 1 < end else []
        if crossed or snapshot_due(cfg.snapshot_every, step, end):  # over-optimisation curve
            n = queries(method, t, sizes, step)
            snapshot(method, t, snapshot_dir, step, n_queries=n, crossed=crossed, kl=smoothed[-1])
        pause = step + 1 < end and time_is_up(deadline, acc)
        if pause or checkpoint_due(cfg.checkpoint_every, step, end):
            state = {"history": history, "samples": samples, **method.save_state(t)}
            ckpt.save(t.model, t.opt, t.sched, step + 1, state)
        if pause:
            paused(method, acc, checkpoint_dir, step + 1, n_steps)
        if end == step + 1 < n_steps:
            log_stop(method, acc, step, n_steps, smoothed[-1], cfg.stop_kl)
            break
    if acc.is_main_process:  # trained to its end: no longer paused (kept until here, so a
        paused_file(checkpoint_dir).unlink(missing_ok=True)  # resumed part that dies says so)
    return history, samples


def pause_deadline(minutes: str | None, now: float) -> float | None:
    """The monotonic time after which the loop pauses (``SUPERHF_PAUSE_AFTER_MIN``, minutes
    from ``now``), None when unset or empty."""
    if minutes is None or not minutes.strip():
        return None
    try:
        value = float(minutes)
    except ValueError:
        value = float("nan")
    if not value >= 0:
        raise UserError(f"{PAUSE_ENV}={minutes!r}: must be a number of minutes >= 0")
    return now + 60 * value


def time_is_up(deadline: float | None, acc) -> bool:
    """Whether the pause deadline has passed, as the main process sees it (every process
    takes its answer, so all pause at the same step)."""
    if deadline is None:
        return False
    flag = [time.monotonic() >= deadline]
    if acc.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        broadcast_object_list(flag)
    return bool(flag[0])


def paused_file(checkpoint_dir: str | Path) -> Path:
    """``<checkpoints>.paused.json``: beside the checkpoint folder, which a save replaces."""
    folder = Path(checkpoint_dir)
    return folder.with_name(folder.name + ".paused.json")


def paused(method: Method, acc, checkpoint_dir: str | Path, done: int, n_steps: int) -> None:
    """Record the pause beside the checkpoint just saved and raise ``TrainingPaused``."""
    if acc.is_main_process:
        info = {"stage": method.stage, "step": done, "steps": n_steps}
        paused_file(checkpoint_dir).write_text(json.dumps(info) + "\n")
    acc.wait_for_everyone()
    raise TrainingPaused(
        f"paused after step {done} of {n_steps} ({PAUSE_ENV}); its checkpoint "
        f"is in {checkpoint_dir}: run the same command again to resume"
    )


def snapshot(
    method: Method,
    t: Trainee,
    snapshot_dir: str | Path | None,
    step: int,
    *,
    n_queries: int,
    crossed: list[float],
    kl: float,
) -> None:
    """Save the policy after ``step`` for the over-optimisation curve (``n_queries``: the
    run's reward-model queries so far); ``crossed``: the ``snapshot_kl`` values the smoothed
    training KL ``kl`` reached at this step (the highest is the snapshot's ``kl_grid``;
    several when the KL jumped)."""
    meta = {"stage": method.stage, "reward_queries": n_queries}
    if crossed:
        meta |= {"kl_grid": crossed[-1], "kl_grid_crossed": crossed, "kl_train_ema": kl}
    save_snapshot(method.policy(t), t.tok, snapshot_dir, step + 1, t.acc, meta)


def log_stop(method: Method, acc, step: int, n_steps: int, kl: float, stop_kl: float) -> None:
    """One info line: the run stopped after ``step`` because its smoothed KL reached stop_kl."""
    if acc.is_main_process:
        log.info(
            "%s: stopped after step %d of %d: the EMA of the training KL, %.4f, reached stop_kl %s",
            *(method.stage, step + 1, n_steps, kl, stop_kl),
        )


def queries(method: Method, t: Trainee, sizes: list[int], step: int) -> int:
    """Reward-model queries of the whole run up to and including ``step``."""
    return sum(sizes[: step + 1]) * method.queries_per_prompt(t.cfg) * t.acc.num_processes


def kl_ema(history: list[dict], key: str = "kl") -> list[float]:
    """The EMA (``superhf.core.ema``, as the reward's) of every step's training KL: what
    ``snapshot_kl`` and ``stop_kl`` compare with, so one noisy batch triggers neither.
    Every trainer's row holds the KL over all processes, so all processes agree."""
    return ema([h[key] for h in history])
