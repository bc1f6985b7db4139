"""The ``reward_model`` section: the proxy and gold reward models, trained here
(Bradley-Terry) or taken from the hub or a folder."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from superhf.config.common import GenerationConfig
from superhf.params import Section


class GoldRecipeConfig(Section):
    """The gold reward model's training where it differs from the proxy's (null = the same)."""

    backbone: str | None = Field(
        None,
        description="the gold's backbone (packaged name, hub id, folder or 'tiny'); null = "
        "reward_model.name. 'smollm2-135m-instruct' puts a fresh reward head on the packaged "
        "SmolLM2-135M (another architecture than MiniLM, ~6x its parameters)",
    )
    lr: float | None = Field(None, gt=0, description="AdamW learning rate; null = reward_model.lr")
    epochs: float | None = Field(None, gt=0, description="passes; null = reward_model.epochs")
    batch_size: int | None = Field(None, gt=0, description="pairs per step; null = the proxy's")
    max_length: int | None = Field(
        None, gt=8, description="tokens, cut from the left; null = reward_model.max_length"
    )
    train_layers: int | None = Field(
        None,
        gt=0,
        description="train only the top N transformer blocks (and the final norm and the "
        "reward head), the embeddings and lower blocks frozen; null = every weight. Frozen "
        "blocks run forward only: N = 6 of SmolLM2's 30 makes a step ~2.5x cheaper",
    )


class PolicyPairsConfig(Section):
    """Proxy training pairs made of the base policy's own samples, ordered by the gold
    (Gao et al. 2022): for ``proxy_labels: gold``. The stage then needs --base and --prompts."""

    prompts: int = Field(
        0,
        ge=0,
        description="policy prompts (a seeded subset of --prompts) whose two base-policy "
        "samples, ordered by the gold, become proxy training pairs; 0 = off",
    )
    heldout_share: float = Field(
        0.2,
        ge=0,
        lt=1,
        description="share of these pairs held out: the proxy's agreement with the gold on "
        "the policy's samples (metrics policy_pairs.proxy_heldout), never trained on",
    )
    keep_hh_pairs: bool = Field(
        True,
        description="true: the proxy trains on its (relabelled) share of the preference pairs "
        "and these; false: on these alone (Gao et al.'s setup)",
    )
    seed: int = Field(0, description="seed of the prompt subset, the sampling and the hold-out")
    generation: GenerationConfig = Field(
        default_factory=lambda: GenerationConfig(),
        description="how the base policy samples (the profile sets the trained policies' sampler)",
    )


class RewardModelConfig(Section):
    source: Literal["train", "hub", "local"] = Field(
        "train", description="train: Bradley-Terry fine-tune here on data/preferences"
    )
    name: str = Field(
        "all-minilm-l6-v2",
        description="for train: the backbone (packaged name, hub id, folder or 'tiny'); for "
        "hub/local: the reward model itself",
    )
    gold_name: str | None = Field(
        None, description="for hub/local: a second model used as gold; default = same as name"
    )
    revision: str | None = Field(
        None, description="hub revision of name (branch, tag, commit or refs/pr/N; null = main)"
    )
    gold_revision: str | None = Field(
        None, description="hub revision of gold_name (its own repo, so its own revision)"
    )
    trust_remote_code: bool = Field(
        False, description="allow a hub model's own Python code to run when it is loaded"
    )
    input_format: Literal["auto", "text", "pair", "upstream"] = Field(
        "auto",
        description="text: prompt + ' ' + completion, truncated from the left; pair: (question, "
        "answer) as a text pair (OpenAssistant models); upstream: what the paper's code fed its "
        "reward model, preamble + prompt + ' ' + completion as one string, truncated from the "
        "right (the preamble is the scoring stage's generation.preamble); auto: for "
        "source=train 'text', for hub/local the source folder's superhf_meta.json (refused "
        "when it has none)",
    )
    max_length: int = Field(256, gt=8, description="tokens; inputs are truncated from the left")
    epochs: float = Field(1.0, gt=0, description="for train: passes over the training pairs")
    lr: float = Field(5e-5, gt=0, description="for train: AdamW learning rate")
    batch_size: int = Field(16, gt=0, description="for train: pairs per step")
    weight_decay: float = Field(0.0, ge=0, description="for train: AdamW weight decay")
    warmup_ratio: float = Field(
        0.1, ge=0, le=1, description="for train: share of steps with linear warmup"
    )
    max_train_pairs: int | None = Field(
        None, gt=0, description="for train: use only the first N training pairs; null = all"
    )
    gold_split: Literal["disjoint_half", "disjoint_share", "all"] = Field(
        "disjoint_half",
        description="disjoint_half: proxy trains on one half of the pairs, gold on the other; "
        "disjoint_share: the gold on gold_share of them, the proxy on the rest; all: both on all",
    )
    seed: int = Field(0, description="for train: seed of the proxy model (init, order)")
    gold_seed: int = Field(1, description="for train: seed of the gold model")
    gold_share: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="for gold_split=disjoint_share: the gold's share of the training pairs "
        "(the proxy gets the rest, disjoint); 2/3 gives the gold twice the proxy's pairs",
    )
    gold_recipe: GoldRecipeConfig = Field(
        default_factory=lambda: GoldRecipeConfig(),
        description="for train: the gold model's own backbone and recipe (an independent judge)",
    )
    proxy_labels: Literal["human", "gold"] = Field(
        "human",
        description="for train: human trains the proxy on the pairs' human labels; gold on "
        "the pairs relabelled by the gold model (chosen and rejected swapped where the gold "
        "prefers the other; Gao et al. 2022's synthetic setup), so the gold is the true "
        "reward by construction. The gold is trained first",
    )

    policy_pairs: PolicyPairsConfig = Field(
        default_factory=lambda: PolicyPairsConfig(),
        description="for train with proxy_labels gold: proxy pairs of the base policy's "
        "samples ordered by the gold (off unless prompts > 0)",
    )

    mixed_precision: Literal["fp32", "bf16"] = Field(
        "fp32",
        description="reward-model training (bf16 autocast, fp32 weights) and the stage's "
        "test-pair scoring (bf16 weights) on the picked device (the GPU when there is one)",
    )
    score_batch_size: int = Field(64, gt=0, description="pairs per forward when scoring")

    @model_validator(mode="after")
    def _policy_pairs_need_gold_labels(self) -> RewardModelConfig:
        if self.policy_pairs.prompts and (self.source != "train" or self.proxy_labels != "gold"):
            raise ValueError(
                "policy_pairs.prompts > 0 needs source: train and proxy_labels: gold (the gold "
                f"orders the policy's samples); got source {self.source!r}, proxy_labels "
                f"{self.proxy_labels!r}"
            )
        return self
