"""Stage ``rloo``: RLOO (Ahmadian et al. 2024, "Back to Basics") on SuperHF's superbatch.

S completions per prompt, sampled and scored exactly as SuperHF's; the advantage of each is
its reward minus the mean of the other S-1 (KL in the reward, k1, beta 0.05), and a
REINFORCE step over all S (no clipping, one update per batch). Params section ``rloo``.

    python -m superhf.stages.rloo --params params.yaml --policy models/base \
        --reward models/reward --prompts data/prompts/train.jsonl --out models/rloo \
        --checkpoints checkpoints/rloo --metrics metrics/rloo.json \
        --curve metrics/rloo_curve.csv --samples metrics/rloo_samples.jsonl
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable

from superhf.cli import run
from superhf.config.group_pg import RLOOConfig
from superhf.stages.common import training_parser
from superhf.stages.group_pg import run_group_pg_stage


def parser() -> argparse.ArgumentParser:
    return training_parser("rloo", __doc__)


def main(argv: Iterable[str] | None = None) -> None:
    run_group_pg_stage("rloo", RLOOConfig, argv, __doc__)


if __name__ == "__main__":
    run(main)
