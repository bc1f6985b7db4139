"""Stage ``grpo``: GRPO (DeepSeekMath, Shao et al. 2024) on SuperHF's superbatch.

S completions per prompt, sampled and scored exactly as SuperHF's; group-normalised
advantages (r - mean) / std, a clipped ratio (0.2) per token, the KL in the loss (k3 per
token, beta 0.04), each completion's token losses averaged. Params section ``grpo``.

    python -m superhf.stages.grpo --params params.yaml --policy models/base \
        --reward models/reward --prompts data/prompts/train.jsonl --out models/grpo \
        --checkpoints checkpoints/grpo --metrics metrics/grpo.json \
        --curve metrics/grpo_curve.csv --samples metrics/grpo_samples.jsonl
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable

from superhf.cli import run
from superhf.config.group_pg import GRPOConfig
from superhf.stages.common import training_parser
from superhf.stages.group_pg import run_group_pg_stage


def parser() -> argparse.ArgumentParser:
    return training_parser("grpo", __doc__)


def main(argv: Iterable[str] | None = None) -> None:
    run_group_pg_stage("grpo", GRPOConfig, argv, __doc__)


if __name__ == "__main__":
    run(main)
