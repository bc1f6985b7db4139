"""Stage ``superhf``: supervised fine-tuning from human feedback (paper section 4.1).

For each superbatch: take ``prompt_accumulation`` prompts, sample ``superbatch_size``
completions of each from the current policy, score them with the reward model, keep the
top-K per prompt, and fine-tune on the kept completions' sampled tokens (prompt masked,
EOS appended unless superhf.append_eos is false).

    python -m superhf.stages.superhf --params params.yaml --policy models/base \
        --reward models/reward --prompts data/prompts/train.jsonl --out models/superhf \
        --checkpoints checkpoints/superhf --metrics metrics/superhf.json \
        --curve metrics/superhf_curve.csv --samples metrics/superhf_samples.jsonl

Multi-process (prompts sharded, gradients synced, files written by rank 0):
    torchrun --nproc_per_node 2 -m superhf.stages.superhf ...   # CPU: gloo
    accelerate launch --config_file configs/accelerate/ddp.yaml -m superhf.stages.superhf ...
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable

from superhf.cli import run
from superhf.config.superhf import SuperHFConfig
from superhf.stages.common import TrainingStage, run_training_stage, training_parser
from superhf.superhf_trainer import train

STAGE = TrainingStage(
    "superhf",
    SuperHFConfig,
    train,
    completions_per_prompt=lambda cfg: cfg.superbatch_size,
    extra_metrics=lambda h: {"superbatches": len(h)},
)


def parser() -> argparse.ArgumentParser:
    return training_parser("superhf", __doc__)


def main(argv: Iterable[str] | None = None) -> None:
    run_training_stage(STAGE, argv, __doc__)


if __name__ == "__main__":
    run(main)
