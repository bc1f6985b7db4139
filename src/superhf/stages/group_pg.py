"""What stages ``rloo`` and ``grpo`` share: ``run_training_stage`` with the group
policy-gradient trainer (``superhf.pg_trainer``), its section named by the stage."""

from __future__ import annotations

from collections.abc import Iterable

from superhf.pg_trainer import train
from superhf.stages.common import TrainingStage, run_training_stage


def run_group_pg_stage(
    stage: str, config_cls: type, argv: Iterable[str] | None, description: str
) -> dict:
    """Parse, validate, train (or write the disabled markers), save, write the outputs."""
    spec = TrainingStage(
        stage,
        config_cls,
        train,
        completions_per_prompt=lambda cfg: cfg.superbatch_size,  # reward-model queries
        extra_metrics=lambda h: {"steps": len(h)},
    )
    return run_training_stage(spec, argv, description)
