"""What several params sections share: the sampler (``GenerationConfig`` and its on-policy
variant, with the settings that warp the distribution), the optimiser, LoRA and the
training KL's snapshot grid and stop."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator

from superhf.params import Section

PAPER_PREAMBLE = (
    "A human user asks a question or says a statement, and a helpful, polite, honest, "
    "sophisticated, emotionally aware, and humble-but-knowledgeable AI assistant responds."
)


class GenerationConfig(Section):
    max_new_tokens: int = Field(64, gt=0, description="tokens sampled per completion at most")
    temperature: float = Field(1.0, gt=0, description="sampling temperature")
    top_p: float = Field(
        0.9, gt=0, le=1, description="nucleus sampling mass, applied after temperature"
    )
    top_k: int = Field(
        0,
        ge=0,
        description="keep the k most likely tokens before top_p; 0 = off. The paper's code "
        "never set it, so transformers 4.26's default 50 applied (paper-run profile)",
    )
    trim: Literal["paper", "later", "none"] = Field(
        "later",
        description="where a completion is cut: paper: the paper-era regex (first newline, "
        "double quote, hyphen, 'Human', 'Assistant' or '\\n\\n<words>:'); later: at "
        "'Human:', 'Assistant:' or '\\n\\n<one to three words>:'; none: never",
    )
    repetition_penalty: float = Field(
        1.05, gt=0, description="transformers' repetition penalty; 1.0 = off"
    )
    batch_size: int = Field(32, gt=0, description="generation batch (rows at once)")
    sampler: Literal["multinomial", "inverse_cdf"] = Field(
        "multinomial",
        description="how a token is drawn from the processed distribution: multinomial: "
        "torch.multinomial, an Exp(1) draw per vocabulary entry (the seeded tokens of every "
        "committed run); inverse_cdf: one uniform per row through the cumulative "
        "probabilities, the same distribution, other tokens for a seed, faster on CPU",
    )
    prompt_format: Literal["raw", "chat"] = Field(
        "raw", description="raw: Human:/Assistant: text; chat: the tokenizer's chat template"
    )
    preamble: str = Field(PAPER_PREAMBLE, description="prepended to every prompt; '' for none")
    max_prompt_tokens: int = Field(256, gt=0, description="prompts are cut from the left")


# The sampler settings that change the distribution sampled from, and each one's identity
# value (the raw softmax of the logits: temperature 1, no truncation, no penalty).
UNWARPED = {"temperature": 1.0, "top_p": 1.0, "top_k": 0, "repetition_penalty": 1.0}


def warping_keys(gen: GenerationConfig) -> list[str]:
    """The keys of ``gen`` whose values make the sampler draw from something other than
    the model's raw softmax (an empty list: samples come from the policy itself)."""
    return [k for k, identity in UNWARPED.items() if getattr(gen, k) != identity]


def unwarped(gen: GenerationConfig) -> GenerationConfig:
    """``gen`` with every distribution-changing setting at its identity value (lengths,
    prompt format and trimming kept)."""
    return gen.model_copy(update=UNWARPED)


class OnPolicyGenerationConfig(GenerationConfig):
    """The sampler of an on-policy method (PPO; RLOO/GRPO): its maths (old and reference
    log-probs, KL reward, ratios) uses the raw logits, so the sampler must draw from them.
    Any setting of ``UNWARPED`` at another value is refused, naming the key."""

    top_p: float = Field(1.0, gt=0, le=1, description="must be 1 (on-policy: no truncation)")
    repetition_penalty: float = Field(
        1.0, gt=0, description="must be 1.0 (on-policy: the log-probs are the raw logits')"
    )

    @field_validator(*UNWARPED)
    @classmethod
    def _unwarped(cls, value: float, info) -> float:
        identity = UNWARPED[info.field_name]
        if value != identity:
            raise ValueError(
                f"must be {identity} for an on-policy method: the policy-gradient maths uses "
                "the log-probs of the raw logits, so a sampler that changes the distribution "
                "makes the update off-policy and the KL biased"
            )
        return value


class OptimConfig(Section):
    lr: float = Field(1e-5, gt=0, description="AdamW peak learning rate")
    scheduler: Literal["cosine", "linear", "constant"] = Field(
        "cosine", description="learning-rate schedule after warmup, stepped with the optimiser"
    )
    warmup_steps: int = Field(100, ge=0, description="optimiser steps of linear warmup")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    max_grad_norm: float | None = Field(
        None, gt=0, description="clip the gradient's global norm to this; null = no clipping"
    )
    mixed_precision: Literal["fp32", "bf16"] = Field(
        "fp32",
        description="fp32 (the paper) or bf16 autocast; not yes/no words, which YAML 1.1 "
        "reads as booleans",
    )


class LoraConfig(Section):
    enabled: bool = Field(
        False, description="train a LoRA adapter instead of all weights (merged when saved)"
    )
    r: int = Field(4, gt=0, description="adapter rank")
    alpha: int = Field(32, gt=0, description="adapter scaling (lora_alpha)")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the adapter input")
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="module names that get an adapter, or all-linear"
    )


def _ascending_positive(grid: list[float]) -> list[float]:
    """A KL grid is strictly ascending and positive (NaN is neither)."""
    if not all(g > 0 for g in grid) or not all(b > a for a, b in zip(grid, grid[1:])):
        raise ValueError("must be strictly ascending positive KL values in nats, e.g. [1, 2, 4]")
    return grid


# The training stages' KL grid (``snapshot_kl``) and stop (``stop_kl``), one definition for
# every section: the EMA of the training KL is compared with them (superhf.trainer_loop).
KLGrid = Annotated[list[float], AfterValidator(_ascending_positive)]
SNAPSHOT_KL = (
    "KL grid in nats (strictly ascending, positive): a policy snapshot is also saved after "
    "the step where the EMA (alpha 0.9, as reward_ema) of the training KL to the reference "
    "first reaches each value (one snapshot per step, never after the last step; its "
    "superhf_meta.json holds kl_grid and kl_train_ema); [] = off"
)
STOP_KL = (
    "stop training after the step where the EMA of the training KL to the reference reaches "
    "this many nats (that step's model is the final model, the curve ends there); null = "
    "run every step"
)
