"""The command line both training stages share (SuperHF and PPO): parse, validate, track,
train, save the model, write metrics/curve/samples from rank 0, remove the checkpoints."""

from __future__ import annotations

import argparse
import csv
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from superhf.io import atomic_path, read_jsonl, write_json, write_jsonl
from superhf.params import load_section, read_params
from superhf.tracking import TrackingConfig, stage_run
from superhf.training import discard_checkpoints, save_final

log = logging.getLogger(__name__)


def summarise(history: list[dict], wall: float, completions_total: int) -> dict:
    rewards = [h["reward_mean"] for h in history]
    q = max(1, len(rewards) // 4)
    return {
        "reward_first": rewards[0],
        "reward_final": rewards[-1],
        "reward_average": sum(rewards) / len(rewards),
        "reward_first_quarter": sum(rewards[:q]) / q,
        "reward_last_quarter": sum(rewards[-q:]) / q,
        "reward_gain": sum(rewards[-q:]) / q - sum(rewards[:q]) / q,
        "reward_ema_final": history[-1]["reward_ema"],
        "kl_final": history[-1]["kl"],
        "wall_seconds": wall,
        "completions_per_second": completions_total / wall if wall > 0 else float("nan"),
    }


def write_curve(path: str | Path, history: list[dict]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(history[0]))
        w.writeheader()
        w.writerows(history)


def run_training_stage(
    stage: str,
    config_cls: type,
    train_fn: Callable[..., tuple],
    argv: Iterable[str] | None,
    description: str,
    rollouts_per_prompt: Callable[[Any], int],
    final_model: Callable[[Any], Any] = lambda m: m,
    extra_metrics: Callable[[list[dict]], dict] = lambda h: {},
) -> dict:
    """The command line of a training stage (SuperHF or PPO): parse, validate, track, train,
    save the model, write metrics/curve/samples from rank 0, remove the checkpoints."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--params", default="params.yaml")
    for name in (
        "policy",
        "reward",
        "prompts",
        "out",
        "checkpoints",
        "metrics",
        "curve",
        "samples",
    ):
        ap.add_argument(f"--{name}", required=True)
    args = ap.parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = load_section(stage, config_cls, args.params)
    tracking = load_section("tracking", TrackingConfig, args.params)
    raw = read_params(args.params)
    prompts = [r["prompt"] for r in read_jsonl(args.prompts)]
    if not prompts:
        raise SystemExit(f"{stage}: no prompts in {args.prompts}")
    main_proc = int(os.environ.get("RANK", "0")) == 0
    t0 = time.perf_counter()
    with stage_run(stage, {stage: raw[stage]}, tracking, main_process=main_proc,
                   profile=str(raw.get("profile", "unknown"))) as run:  # fmt: skip
        model, tok, history, samples, acc = train_fn(
            cfg, args.policy, args.reward, prompts, args.checkpoints, run
        )
        n_rollouts = rollouts_per_prompt(cfg) * sum(h["prompts"] for h in history)
        metrics = {
            **summarise(history, time.perf_counter() - t0, n_rollouts),
            **extra_metrics(history),
        }
        metrics["mlflow_run_id"] = run.run_id
        meta = {"stage": stage, "mlflow_run_id": run.run_id, "base": str(args.policy)}
        save_final(final_model(acc.unwrap_model(model)), tok, args.out, acc, meta)
        discard_checkpoints(args.checkpoints, acc)
        if acc.is_main_process:
            write_json(args.metrics, metrics)
            write_curve(args.curve, history)
            write_jsonl(args.samples, samples)
            run.log_artifact(args.samples)
            run.log_artifact(args.curve)
            log.info("%s: reward %.3f -> %.3f (first vs last quarter), final KL %.3f", stage,
                     metrics["reward_first_quarter"], metrics["reward_last_quarter"], metrics["kl_final"])  # fmt: skip
    return metrics
