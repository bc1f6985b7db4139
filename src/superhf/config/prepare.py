"""The ``prepare`` section: where the preference data comes from and how it is split (the
paper's train/test split, or the hh study's four parts)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from superhf.params import Section

DATASETS = ("red_team", "harmless_base", "helpful_base", "webgpt")
DatasetName = Literal[
    "red_team",
    "harmless_base",
    "helpful_base",
    "webgpt",
    # hh-rlhf subsets beyond the paper's (hh study)
    "helpful_online",
    "helpful_rejection_sampled",
]


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
            raise ValueError(
                "parts splits hh-rlhf pair subsets only; red-team and webgpt "
                "prompts go in parts.extra_policy_prompts"
            )
        if self.source == "local" and not self.data_dir:
            raise ValueError("data_dir is required when source is 'local'")
        if len(set(self.datasets)) != len(self.datasets):
            raise ValueError(f"datasets lists a subset twice: {self.datasets}")
        return self
