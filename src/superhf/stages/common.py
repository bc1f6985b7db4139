"""The command line both training stages share (SuperHF and PPO): parse, validate, track,
train, save the model, write metrics/curve/samples from rank 0, remove the checkpoints."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from superhf.checkpoints import discard_checkpoints, save_final
from superhf.cli import add_params_arg, stage_parser
from superhf.errors import BadInputError
from superhf.io import atomic_path, read_jsonl, write_json, write_jsonl
from superhf.model_check import check_model_folder
from superhf.params import load_section, read_params
from superhf.prompting import check_context
from superhf.tracking import TrackingConfig, stage_run

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
        # null when KL was not measured (superhf.measure_kl false): never a typed-in 0
        "kl_final": history[-1]["kl"] if math.isfinite(history[-1]["kl"]) else None,
        "wall_seconds": wall,
        "completions_per_second": completions_total / wall if wall > 0 else float("nan"),
    }


def write_curve(path: str | Path, history: list[dict]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(history[0]))
        w.writeheader()
        w.writerows(history)


TRAINING_ARGS = {
    "policy": "model folder of the policy to start from (save_pretrained: config.json, "
    "safetensors, tokenizer)",
    "reward": "reward model folder (a sequence classifier with one output)",
    "prompts": 'JSONL of training prompts, one {"prompt": ...} object per line',
    "out": "output folder for the trained policy",
    "checkpoints": "folder for resumable checkpoints (removed when the run finishes)",
    "metrics": "output JSON of summary metrics",
    "curve": "output CSV, one row per training step",
    "samples": "output JSONL of sampled completions with their rewards",
}


def training_parser(stage: str, doc: str) -> argparse.ArgumentParser:
    """The command line of a training stage: --params plus the folders and files above."""
    ap = stage_parser(f"superhf.stages.{stage}", doc)
    add_params_arg(ap)
    for name, text in TRAINING_ARGS.items():
        ap.add_argument(f"--{name}", required=True, help=text)
    return ap


def check_training_inputs(stage: str, cfg: Any, args: argparse.Namespace) -> list[str]:
    """Every input checked before a model loads; returns the prompts."""
    chat = cfg.generation.prompt_format == "chat"
    check_model_folder(args.policy, "policy", chat=chat)
    check_model_folder(args.reward, "reward", input_format=True)
    check_context(args.policy, cfg.generation, f"{stage}.generation")
    prompts = [r["prompt"] for r in read_jsonl(args.prompts, fields=("prompt",))]
    if not prompts:
        raise BadInputError(f"{args.prompts}: no prompts")
    return prompts


def write_snapshot_index(folder: str | Path, n_steps: int) -> list[dict]:
    """``folder/index.json``: the snapshots of this run (step, reward-model queries, path;
    ``kl_grid`` for a snapshot of the ``snapshot_kl`` grid).

    The folder always exists afterwards (a DVC output), empty of snapshots when
    ``snapshot_every`` is 0. Snapshots from a longer earlier run are left out.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    index = []
    for meta_path in sorted(folder.glob("step-*/superhf_meta.json")):
        meta = json.loads(meta_path.read_text())
        if meta["step"] < n_steps:
            index.append(
                {
                    "step": meta["step"],
                    "reward_queries": meta["reward_queries"],
                    "path": meta_path.parent.name,
                    **({"kl_grid": meta["kl_grid"]} if "kl_grid" in meta else {}),
                }
            )
    write_json(folder / "index.json", index)
    return index


@dataclass(frozen=True)
class TrainingStage:
    """What differs between the training stages: the stage (and params section) name, its
    config class, the trainer's ``train``, the completions scored per prompt (reward-model
    queries), the part of the trained model saved as the policy, the stage's own metrics."""

    name: str
    config_cls: type
    train_fn: Callable[..., tuple]
    completions_per_prompt: Callable[[Any], int]
    final_model: Callable[[Any], Any] = lambda m: m
    extra_metrics: Callable[[list[dict]], dict] = lambda h: {}


def run_training_stage(spec: TrainingStage, argv: Iterable[str] | None, description: str) -> dict:
    """The command line of a training stage (SuperHF, PPO, RLOO, GRPO): parse, validate,
    track, train, save the model, write metrics/curve/samples from rank 0, remove the
    checkpoints. A section with ``enabled: false`` writes ``write_disabled``'s markers."""
    stage = spec.name
    ap = training_parser(stage, description)
    ap.add_argument(
        "--snapshots", default=None, help="folder for the snapshots (snapshot_every, snapshot_kl)"
    )
    args = ap.parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = load_section(stage, spec.config_cls, args.params)
    if not getattr(cfg, "enabled", True):
        return write_disabled(stage, args)
    tracking = load_section("tracking", TrackingConfig, args.params)
    raw = read_params(args.params)
    prompts = check_training_inputs(stage, cfg, args)
    main_proc = int(os.environ.get("RANK", "0")) == 0
    t0 = time.perf_counter()
    with stage_run(
        stage,
        {stage: raw[stage]},
        tracking,
        main_process=main_proc,
        profile=str(raw.get("profile", "unknown")),
    ) as run:
        model, tok, history, samples, acc = spec.train_fn(
            cfg,
            args.policy,
            args.reward,
            prompts,
            args.checkpoints,
            run,
            snapshot_dir=args.snapshots,
        )
        # completions scored = reward-model queries (the last step may be smaller)
        n_rollouts = spec.completions_per_prompt(cfg) * sum(h["prompts"] for h in history)
        metrics = {
            **summarise(history, time.perf_counter() - t0, n_rollouts),
            **spec.extra_metrics(history),
        }
        metrics["mlflow_run_id"] = run.run_id
        meta = {
            "stage": stage,
            "mlflow_run_id": run.run_id,
            "base": str(args.policy),
            "step": len(history),
            "reward_queries": n_rollouts,
        }
        save_final(spec.final_model(acc.unwrap_model(model)), tok, args.out, acc, meta)
        discard_checkpoints(args.checkpoints, acc)
        if acc.is_main_process:
            write_training_outputs(stage, args, metrics, history, samples, run)
    return metrics


def write_training_outputs(
    stage: str, args: argparse.Namespace, metrics: dict, history: list[dict], samples, run
) -> None:
    """Rank 0's files of a trained stage: the snapshot index, the metrics, the curve and the
    samples (the last two also logged to the MLflow run)."""
    if args.snapshots:
        write_snapshot_index(args.snapshots, len(history))
    write_json(args.metrics, metrics)
    write_curve(args.curve, history)
    write_jsonl(args.samples, samples)
    run.log_artifact(args.samples)
    run.log_artifact(args.curve)
    log.info(
        "%s: reward %.3f -> %.3f (first vs last quarter), final KL %s",
        stage,
        metrics["reward_first_quarter"],
        metrics["reward_last_quarter"],
        metrics["kl_final"],
    )


DISABLED = {"disabled": True}


def write_disabled(stage: str, args: argparse.Namespace) -> dict:
    """The outputs of a stage whose section says ``enabled: false``: a model folder holding
    only ``superhf_meta.json`` with ``disabled: true`` (evaluate, report and summary skip the
    method), ``{"disabled": true}`` as metrics, a curve of no rows, no samples, no
    snapshots. Nothing is trained and nothing is typed in."""
    log.info("%s: %s.enabled is false; writing the disabled markers", stage, stage)
    with atomic_path(args.out) as tmp:
        tmp.mkdir()
        write_json(tmp / "superhf_meta.json", {"stage": stage, **DISABLED})  # is_disabled
    write_json(args.metrics, DISABLED)
    with atomic_path(args.curve) as tmp:
        tmp.write_text("step,reward_mean,reward_ema\n")
    write_jsonl(args.samples, [])
    if args.snapshots:
        start_fresh = Path(args.snapshots)
        for old in start_fresh.glob("step-*"):
            shutil.rmtree(old, ignore_errors=True)
        write_snapshot_index(args.snapshots, 0)
    return dict(DISABLED)
