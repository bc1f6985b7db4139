"""The ``superhf`` section: SuperHF's superbatch, filtering and supervised fine-tuning."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from superhf.config.common import (
    SNAPSHOT_KL,
    STOP_KL,
    GenerationConfig,
    KLGrid,
    LoraConfig,
    OptimConfig,
)
from superhf.params import Section


class SuperHFConfig(Section):
    num_prompts: int = Field(
        2000,
        gt=0,
        description="prompts over the whole run (superbatches x prompt_accumulation; a "
        "remainder is one smaller last superbatch; must be a multiple of the processes)",
    )
    superbatch_size: int = Field(32, gt=0, description="S: completions sampled per prompt")
    prompt_accumulation: int = Field(1, gt=0, description="prompts per superbatch")
    top_k: int = Field(1, gt=0, description="completions kept per prompt")
    minibatch_size: int = Field(8, gt=0, description="fine-tuning minibatch")
    gradient_accumulation: int = Field(
        1, gt=0, description="fine-tuning minibatches per optimiser step"
    )
    kl_coef: float = Field(0.0, ge=0, description="KL(policy || reference) weight; 0 = off")
    measure_kl: bool = Field(
        True,
        description="with kl_coef 0, still measure KL(policy || reference) on the trained "
        "tokens (keeps a frozen copy of the policy unless LoRA); false logs NaN",
    )
    append_eos: bool = Field(
        True,
        description="append EOS to each kept completion's sampled tokens so the model learns "
        "to stop (the paper's code did not: false in the paper-run profile)",
    )
    keep_sampled_eos: bool = Field(
        True,
        description="keep an EOS the policy sampled as a training target; false: no EOS is "
        "ever a target (the paper's code decoded with skip_special_tokens and re-tokenised: "
        "false in the paper-run profile, with append_eos false)",
    )
    reward_mean_over: Literal["all", "nonempty"] = Field(
        "all",
        description="completions the logged reward_mean/std/max (and reward_model_mean) "
        "average over: all of them, or only those not trimmed to empty (the paper's code "
        "left empty ones out of scoring, so Figure 2 is over non-empty: paper-run)",
    )
    length_penalty: float = Field(
        0.0,
        ge=0,
        description="score -= c * log(completion characters), for selection and the logged "
        "reward (the paper's linked run: 0.01)",
    )
    inverse_loss_penalty: float = Field(
        0.0, ge=0, description="loss + c / loss per minibatch (the paper's linked run: 0.01)"
    )
    optim: OptimConfig = Field(default_factory=OptimConfig, description="the optimiser")
    generation: GenerationConfig = Field(
        default_factory=GenerationConfig, description="sampling of the superbatch"
    )
    lora: LoraConfig = Field(default_factory=LoraConfig, description="optional LoRA")
    checkpoint_every: int = Field(10, gt=0, description="superbatches between checkpoints")
    sample_every: int = Field(10, gt=0, description="superbatches between logged samples")
    snapshot_every: int = Field(
        0,
        ge=0,
        description="superbatches between policy snapshots (over-optimisation curve; "
        "each is a full model on disk); 0 = off, the final model is always the last point",
    )
    snapshot_kl: KLGrid = Field(default_factory=list, description=SNAPSHOT_KL)
    stop_kl: float | None = Field(None, gt=0, description=STOP_KL)
    seed: int = Field(0, description="sampling, prompt order and initialisation seed")

    @model_validator(mode="after")
    def _k_within_s(self) -> SuperHFConfig:
        if self.top_k > self.superbatch_size:
            raise ValueError(
                f"top_k ({self.top_k}) must be <= superbatch_size ({self.superbatch_size})"
            )
        if (self.snapshot_kl or self.stop_kl) and not (self.measure_kl or self.kl_coef > 0):
            raise ValueError(
                "snapshot_kl and stop_kl need the training KL: measure_kl true (or kl_coef > 0)"
            )
        return self
