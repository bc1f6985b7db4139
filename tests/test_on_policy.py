"""Issue 22, section 1: an on-policy method samples the distribution its maths describes.

PPO's old and reference log-probs, its KL reward and its ratios come from the raw logits, so
its sampler must draw from them: temperature 1, no top-p/top-k truncation, no repetition
penalty. Anything else is refused when params load, naming the key.
"""

from __future__ import annotations

import pytest
import torch
from helpers import PROMPTS, TINY_GEN

from superhf import generation
from superhf.config.common import UNWARPED, OnPolicyGenerationConfig, warping_keys
from superhf.config.rlhf import RLHFConfig
from superhf.params import ParamsError, parse_section
from superhf.profile import PROFILE_DIR, resolve
from superhf.tiny import tiny_causal_lm, tiny_tokenizer

PROFILES = sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))
WARPED = {"temperature": 0.7, "top_p": 0.9, "top_k": 50, "repetition_penalty": 1.05}


@pytest.mark.parametrize("profile", PROFILES)
def test_every_shipped_profile_samples_ppo_rollouts_unwarped(profile: str) -> None:
    cfg = parse_section("rlhf", resolve(profile)["rlhf"], RLHFConfig)
    assert warping_keys(cfg.generation) == []


@pytest.mark.parametrize("key", list(WARPED))
def test_a_distribution_changing_rollout_sampler_is_refused_naming_the_key(key: str) -> None:
    raw = {"generation": {**TINY_GEN, key: WARPED[key]}}
    with pytest.raises(ParamsError) as err:
        parse_section("rlhf", raw, RLHFConfig)
    msg = str(err.value)
    assert "\n" not in msg and f"rlhf.generation.{key}:" in msg and "on-policy" in msg
    # the identity value of the same key passes
    parse_section("rlhf", {"generation": {**TINY_GEN, key: UNWARPED[key]}}, RLHFConfig)


def test_warping_keys_names_each_changed_setting() -> None:
    base = OnPolicyGenerationConfig()
    assert warping_keys(base) == []
    for key, value in WARPED.items():  # model_copy skips validation: the pure rule alone
        assert warping_keys(base.model_copy(update={key: value})) == [key]


def test_ppo_default_rollout_sampler_draws_from_the_raw_logits() -> None:
    """What PPO's default sampler hands ``generate`` changes no score: at every step the
    scores it samples from are the raw logits (transformers returns both)."""
    tok = tiny_tokenizer()
    model = tiny_causal_lm(tok, seed=0)
    sizes = {k: TINY_GEN[k] for k in ("max_new_tokens", "batch_size", "max_prompt_tokens")}
    cfg = RLHFConfig().generation.model_copy(update={**sizes, "max_new_tokens": 12})
    seen = []
    plain = model.generate

    def spy(**kw):
        out = plain(**kw, output_scores=True, output_logits=True, return_dict_in_generate=True)
        seen.append(out)
        return out.sequences

    model.generate = spy
    torch.manual_seed(0)
    generation.generate_ids(model, tok, PROMPTS, cfg, share_prefill=False)
    assert seen and all(len(o.scores) == 12 for o in seen)
    for out in seen:
        for processed, raw in zip(out.scores, out.logits):
            assert torch.allclose(processed.log_softmax(-1), raw.log_softmax(-1), atol=1e-6)


def test_the_inverse_cdf_draw_is_not_a_warp() -> None:
    """How a token is drawn does not change the distribution: an on-policy section takes
    ``sampler: inverse_cdf``, and it is not among the keys the check names."""
    cfg = OnPolicyGenerationConfig(**{**UNWARPED, "sampler": "inverse_cdf"})
    assert warping_keys(cfg) == [] and "sampler" not in UNWARPED
