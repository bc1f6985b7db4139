"""Every params section: its name in ``params.yaml`` -> its config class. Imports every
section's module, so only what needs them all (profile validation, the params tests) uses it;
a stage imports its own section's module."""

from __future__ import annotations

from superhf.config.base_policy import BasePolicyConfig
from superhf.config.evaluate import EvaluateConfig
from superhf.config.group_pg import GRPOConfig, RLOOConfig
from superhf.config.prepare import PrepareConfig
from superhf.config.reward_model import RewardModelConfig
from superhf.config.rlhf import RLHFConfig
from superhf.config.superhf import SuperHFConfig
from superhf.config.tracking import TrackingConfig
from superhf.params import Section

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
