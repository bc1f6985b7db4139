"""The ``evaluate`` section: test sampling, best-of-n, the over-optimisation curves and the
capability benchmarks (``BenchmarkConfig``, its ``benchmarks`` key)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from superhf.config.common import GenerationConfig
from superhf.params import Section


class BenchmarkConfig(Section):
    enabled: bool = Field(True, description="run the benchmarks (Table 4 columns)")
    source: Literal["fixture", "local", "hub"] = Field(
        "fixture",
        description="fixture: small sets we wrote; local: data_dir laid out like "
        "../shared/data/eval; hub: datasets.load_dataset (network)",
    )
    data_dir: str | None = Field(None, description="for source=local")
    max_examples: dict[Literal["hhh", "lambada", "wsc", "tweets", "squad"], int | None] = Field(
        default_factory=dict, description="per task cap (seeded subsample); null = all"
    )
    tweet_shots: int = Field(0, ge=0, description="k-shot examples from the val split")
    batch_size: int = Field(16, gt=0, description="rows per log-likelihood forward")
    protocol: Literal["standard", "paper", "both"] = Field(
        "standard",
        description="standard: lm-eval-style tasks named for what they are; paper: Table 4 "
        "as tests/evaluate_lm.py@6035753 measured it (binary tweets, QNLI, WNLI, LAMBADA, HHH "
        "by whole-dialogue mean log-likelihood); both: every column of both",
    )
    paper_quirks: bool = Field(
        True,
        description="paper protocol: reproduce the script's right padding without attention "
        "mask and its accuracy denominators rounded up to a multiple of 8",
    )
    paper_data_dir: str | None = Field(
        None,
        description="paper protocol: folder holding <owner>/<name> copies of the hub repos "
        "(laid out like the hub); null = the hub",
    )
    lm_eval_tasks: list[str] = Field(
        default_factory=list,
        description="lm-evaluation-harness task names (or paths of task YAML files/folders) "
        "run on every evaluated model; needs the [eval] extra, skipped with a message without",
    )
    lm_eval_limit: int | None = Field(
        None, gt=0, description="lm-eval's limit: first N documents of each lm_eval task"
    )

    @model_validator(mode="after")
    def _local_needs_dir(self) -> BenchmarkConfig:
        if self.source == "local" and not self.data_dir:
            raise ValueError("data_dir is required when source is 'local'")
        if any(v is not None and v <= 0 for v in self.max_examples.values()):
            raise ValueError(f"max_examples must be positive or null: {self.max_examples}")
        return self


class EvaluateConfig(Section):
    max_test_prompts: int | None = Field(None, gt=0, description="seeded subsample of test")
    generation: GenerationConfig = Field(
        default_factory=GenerationConfig, description="sampling of the test completions"
    )
    best_of_n: int = Field(32, ge=0, description="n for the best-of-n baseline; 0 = off")
    best_of_n_curve: int | None = Field(
        None,
        ge=0,
        description="N draws per test prompt for the best-of-n over-optimisation "
        "curve (n = 1, 2, 4, ..., N, unbiased over all n-subsets); null = best_of_n; 0 = off",
    )
    best_of_n_curve_prompts: int | None = Field(
        None,
        gt=0,
        description="the best-of-n curve on only the first N test prompts (its pool of draws "
        "per prompt is the costly part); null = every test prompt",
    )
    best_of_n_pool: int | None = Field(
        None,
        gt=0,
        description="draws per test prompt for the best-of-n curve when larger than its n_max: "
        "every n is estimated over all n-subsets of this pool (lower variance at large n); "
        "null = the curve's n_max",
    )
    bootstrap_samples: int = Field(
        1000, gt=0, description="resamples for the 95% bootstrap intervals"
    )
    tail_chars: int = Field(24, gt=0, description="tail length for the shared-ending check")
    benchmarks: BenchmarkConfig = Field(
        default_factory=BenchmarkConfig, description="capability and alignment benchmarks"
    )
    reference_models: dict[str, str] = Field(
        default_factory=dict,
        description="extra models to evaluate beside the pipeline's: table name -> hub id or "
        "model folder (the paper's rows: pythia-1b, the instruction-tuned start)",
    )
    score_cache: bool = Field(True, description="cache reward scores by model hash")
    seed: int = Field(0, description="test subsample, sampling and bootstrap seed")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32",
        description="dtype of every model evaluate loads (policies and reward models) on the "
        "picked device (the GPU when there is one); bf16 halves memory on a GPU",
    )
    score_batch_size: int = Field(32, gt=0, description="rows per reward-model forward")
    kl_batch_size: int = Field(16, gt=0, description="rows per forward of the KL log-probs")
    samples_per_prompt: int = Field(
        1,
        gt=0,
        description="completions drawn per test prompt by every evaluated model (the table, "
        "the KL and its rewards, the curves' snapshots, the table's best-of-n row); means and "
        "intervals take the prompt as the unit (its samples averaged first); 1 = the old "
        "single draw, bit for bit",
    )

    @property
    def curve_n_max(self) -> int:
        """The best-of-n curve's largest n: ``best_of_n_curve``, or ``best_of_n`` when null
        (0: no curve)."""
        return self.best_of_n if self.best_of_n_curve is None else self.best_of_n_curve
