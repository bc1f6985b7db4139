"""Stage ``rlhf``: the paper's baseline (section 4.2), RLHF with PPO and a KL penalty.

Classic design (Ziegler et al. 2019, TRL 0.4, which the paper used): per-token reward
``-kl_coef * (logp - logp_ref)`` plus the reward-model score on the last response token,
a value head on the policy, GAE, whitened advantages, clipped policy and value losses,
``ppo_epochs`` passes over minibatches, an adaptive (or fixed) KL coefficient.

    python -m superhf.stages.rlhf --params params.yaml --policy models/base --reward models/reward \
        --prompts data/prompts/train.jsonl --out models/rlhf --checkpoints checkpoints/rlhf \
        --metrics metrics/rlhf.json --curve metrics/rlhf_curve.csv \
        --samples metrics/rlhf_samples.jsonl
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable

from superhf.cli import run
from superhf.config.rlhf import RLHFConfig
from superhf.ppo_trainer import train
from superhf.stages.common import TrainingStage, run_training_stage, training_parser

STAGE = TrainingStage(
    "rlhf",
    RLHFConfig,
    train,
    completions_per_prompt=lambda cfg: 1,
    final_model=lambda model: model.policy,  # the value head is not part of the policy
    extra_metrics=lambda h: {"ppo_steps": len(h), "kl_coef_final": h[-1]["kl_coef"]},
)


def parser() -> argparse.ArgumentParser:
    return training_parser("rlhf", __doc__)


def main(argv: Iterable[str] | None = None) -> None:
    run_training_stage(STAGE, argv, __doc__)


if __name__ == "__main__":
    run(main)
