"""What stages ``rloo`` and ``grpo`` share: ``run_training_stage`` with the group
policy-gradient trainer (``superhf.pg_trainer``), its section named by the stage."""

from __future__ import annotations

from collections.abc import Iterable

from superhf.pg_trainer import train
from superhf.stages.common import run_training_stage


def run_group_pg_stage(stage: str, config_cls: type, argv: Iterable[str] | None,
                       description: str) -> dict:  # fmt: skip
    """Parse, validate, train (or write the disabled markers), save, write the outputs."""
    return run_training_stage(
        stage, config_cls, train, argv, description,
        completions_per_prompt=lambda cfg: cfg.superbatch_size,  # reward-model queries
        extra_metrics=lambda h: {"steps": len(h)},
    )  # fmt: skip
