"""The ``rloo`` and ``grpo`` sections: one class of settings for a policy-gradient step over
SuperHF's superbatch, and the two presets (RLOO, GRPO) that differ in its defaults."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from superhf.config.common import (
    SNAPSHOT_KL,
    STOP_KL,
    KLGrid,
    LoraConfig,
    OnPolicyGenerationConfig,
    OptimConfig,
)
from superhf.params import Section


class GroupPGConfig(Section):
    """RLOO and GRPO: SuperHF's superbatch (S completions per prompt, scored the same way),
    then a policy-gradient step over all S instead of fine-tuning on the best."""

    SECTION: ClassVar[str] = "rloo"  # the params section, for error messages
    enabled: bool = Field(
        True,
        description="train this method; false (paper profiles: the paper did not have it) "
        "makes the stage write a 'disabled' marker that evaluate, report and summary skip",
    )
    num_prompts: int = Field(
        2000,
        gt=0,
        description="prompts over the whole run (steps x prompt_accumulation; a remainder is "
        "one smaller last step; must be a multiple of the processes); as SuperHF's",
    )
    superbatch_size: int = Field(
        32,
        ge=2,
        description="S: completions sampled and scored per prompt (the group), as SuperHF's "
        "so that both spend the same reward-model queries",
    )
    prompt_accumulation: int = Field(1, gt=0, description="prompts (groups) per step")
    minibatch_size: int = Field(8, gt=0, description="completions per forward/backward")
    gradient_accumulation: int = Field(
        1, gt=0, description="minibatches per optimiser step (the last of a step always steps)"
    )
    pack_prompts: bool = Field(
        False,
        description="true: a minibatch's rows as one packed sequence, each distinct prompt "
        "computed once (``packing``): the same log-probs and gradients up to float rounding, "
        "2.16x faster log-probs and update at S = 16 on hh (benchmarks/RESULTS.md); false: "
        "one left-padded row per completion",
    )
    update_epochs: int = Field(
        1, gt=0, description="passes over each step's completions (GRPO's mu); 1 = on-policy"
    )
    advantage: Literal["leave_one_out", "group_normalised", "group_centred"] = Field(
        "leave_one_out",
        description="leave_one_out: R_i - mean of the other S-1 (RLOO); group_normalised: "
        "(r - mean) / (std + adv_eps) over the group (GRPO); group_centred: r - mean (Dr. GRPO)",
    )
    adv_eps: float = Field(1e-4, gt=0, description="group_normalised: added to the std")
    kl_coef: float = Field(0.05, ge=0, description="beta, the KL penalty weight; 0 = off")
    kl_in: Literal["reward", "loss"] = Field(
        "reward",
        description="reward: R = r - beta * sum_t (logp - logp_ref), the sequence-level k1 "
        "estimate (RLOO, Ahmadian et al.); loss: + beta * k3 per token, k3 = exp(ref - logp) "
        "- (ref - logp) - 1 (GRPO, DeepSeekMath eq. 4)",
    )
    cliprange: float | None = Field(
        None, gt=0, description="ratio clip epsilon; null = no clipping (REINFORCE)"
    )
    aggregation: Literal["sequence_mean", "token_mean", "sequence_sum"] = Field(
        "sequence_sum",
        description="per-token losses to one number: sequence_sum: each completion as one "
        "action (RLOO); sequence_mean: 1/|o_i| per completion, then the mean (GRPO); "
        "token_mean: over all tokens of the minibatch (DAPO)",
    )
    length_penalty: float = Field(
        0.0, ge=0, description="score -= c * log(completion characters), as SuperHF's"
    )
    optim: OptimConfig = Field(default_factory=OptimConfig, description="the optimiser")
    generation: OnPolicyGenerationConfig = Field(
        default_factory=OnPolicyGenerationConfig,
        description="sampling of the superbatch; on-policy: no distribution-changing setting",
    )
    lora: LoraConfig = Field(default_factory=LoraConfig, description="optional LoRA")
    checkpoint_every: int = Field(10, gt=0, description="steps between checkpoints")
    sample_every: int = Field(10, gt=0, description="steps between logged samples")
    snapshot_every: int = Field(
        0,
        ge=0,
        description="steps between policy snapshots (over-optimisation curve); 0 = off, the "
        "final model is always the last point",
    )
    snapshot_kl: KLGrid = Field(default_factory=list, description=SNAPSHOT_KL)
    stop_kl: float | None = Field(None, gt=0, description=STOP_KL)
    seed: int = Field(0, description="sampling, prompt order and minibatch order seed")

    @model_validator(mode="after")
    def _on_policy(self) -> GroupPGConfig:
        if self.advantage == "leave_one_out" and self.superbatch_size < 2:
            raise ValueError("leave_one_out needs superbatch_size >= 2")
        return self


class RLOOConfig(GroupPGConfig):
    """RLOO as Ahmadian et al. 2024 ("Back to Basics"): leave-one-out baseline, KL in the
    reward (k1, beta 0.05), no clipping, one update per batch, the completion as one action."""

    SECTION: ClassVar[str] = "rloo"


class GRPOConfig(GroupPGConfig):
    """GRPO as DeepSeekMath (Shao et al. 2024): group-normalised advantages, KL in the loss
    (k3, beta 0.04), ratio clip 0.2, per-sequence normalisation (1/|o_i|)."""

    SECTION: ClassVar[str] = "grpo"
    advantage: Literal["leave_one_out", "group_normalised", "group_centred"] = Field(
        "group_normalised", description=GroupPGConfig.model_fields["advantage"].description
    )
    kl_coef: float = Field(0.04, ge=0, description="beta, the KL penalty weight; 0 = off")
    kl_in: Literal["reward", "loss"] = Field(
        "loss", description=GroupPGConfig.model_fields["kl_in"].description
    )
    cliprange: float | None = Field(
        0.2, gt=0, description=GroupPGConfig.model_fields["cliprange"].description
    )
    aggregation: Literal["sequence_mean", "token_mean", "sequence_sum"] = Field(
        "sequence_mean", description=GroupPGConfig.model_fields["aggregation"].description
    )
