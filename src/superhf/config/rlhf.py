"""The ``rlhf`` section: the PPO baseline's rollouts, KL control and updates."""

from __future__ import annotations

from typing import Literal

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


class RLHFConfig(Section):
    """The paper's RLHF baseline (section 4.2, Table 3): PPO with a KL penalty."""

    num_prompts: int = Field(
        2000,
        gt=0,
        description="prompts (rollouts) over the whole run; a remainder of batch_size x "
        "processes is one smaller last step; must be a multiple of the processes",
    )
    batch_size: int = Field(32, gt=0, description="prompts (rollouts) per PPO step per process")
    minibatch_size: int = Field(8, gt=0, description="rollouts per PPO update minibatch")
    ppo_epochs: int = Field(4, gt=0, description="passes over each batch of rollouts")
    init_kl_coef: float = Field(0.2, ge=0, description="initial (or fixed) KL coefficient")
    adap_kl_ctrl: bool = Field(
        True, description="adapt the KL coefficient towards target; false = fixed init_kl_coef"
    )
    target: float = Field(6.0, gt=0, description="target KL of the adaptive controller")
    horizon: float = Field(10000.0, gt=0, description="adaptive controller horizon, in rollouts")
    gamma: float = Field(1.0, ge=0, le=1, description="GAE discount")
    lam: float = Field(0.95, ge=0, le=1, description="GAE lambda")
    cliprange: float = Field(0.2, gt=0, description="policy ratio clip")
    cliprange_value: float = Field(0.2, gt=0, description="value clip around the rollout values")
    vf_coef: float = Field(0.1, ge=0, description="weight of the value loss")
    whiten_scores: bool = Field(False, description="normalise reward-model scores per batch")
    response: Literal["sampled", "upstream"] = Field(
        "sampled",
        description="what a PPO step trains on. sampled: the sampled tokens cut at the trim "
        "point, the reward model fed the trimmed text. upstream: the paper's RLHF run (Figure "
        "3): the query again plus every sampled token, untrimmed; the score on the last "
        "sampled token; the reward model fed query + (query + ' ' + trimmed completion), "
        "decoded without skipping special tokens; the KL sum over the whole response, "
        "duplicated query included",
    )
    value_head: Literal["zero", "trl"] = Field(
        "zero",
        description="zero: a zero-initialised linear value head (our default: values start "
        "at 0); trl: TRL 0.4's (the paper's run), PyTorch's default nn.Linear init after "
        "dropout 0.1 on the last hidden state",
    )
    drop_last: bool = Field(
        False,
        description="drop a last step smaller than batch_size x processes, as TRL's "
        "dataloader (drop_last) did: the paper's run used 1984 of its 2000 prompts in 62 "
        "steps, and the LR schedule spans those steps",
    )
    max_prompt_chars: int | None = Field(
        None,
        gt=0,
        description="train only on prompts with len(generation.preamble + prompt) below "
        "this (the paper's RLHF script: 1024, preamble counted); null = every prompt",
    )
    whiten_advantages: Literal["batch", "minibatch"] = Field(
        "batch",
        description="whiten advantages over the whole batch, or inside each minibatch as "
        "TRL 0.4 (the paper's RLHF run) did",
    )
    optim: OptimConfig = Field(
        default_factory=lambda: OptimConfig(lr=1.41e-5, scheduler="constant", warmup_steps=0),
        description="the optimiser (policy and value head together)",
    )
    generation: OnPolicyGenerationConfig = Field(
        default_factory=OnPolicyGenerationConfig,
        description="sampling of rollouts; on-policy: temperature 1, top_p 1, top_k 0, "
        "repetition_penalty 1 (anything else is refused)",
    )
    lora: LoraConfig = Field(default_factory=LoraConfig, description="optional LoRA")
    checkpoint_every: int = Field(10, gt=0, description="PPO steps between checkpoints")
    sample_every: int = Field(10, gt=0, description="PPO steps between logged samples")
    snapshot_every: int = Field(
        0,
        ge=0,
        description="PPO steps between policy snapshots (over-optimisation curve); "
        "0 = off, the final model is always the last point",
    )
    snapshot_kl: KLGrid = Field(default_factory=list, description=SNAPSHOT_KL)
    stop_kl: float | None = Field(None, gt=0, description=STOP_KL)
    seed: int = Field(0, description="sampling, prompt order and minibatch order seed")

    @model_validator(mode="after")
    def _minibatch_fits(self) -> RLHFConfig:
        if self.minibatch_size > self.batch_size:
            raise ValueError(
                f"minibatch_size ({self.minibatch_size}) must be <= batch_size ({self.batch_size})"
            )
        return self
