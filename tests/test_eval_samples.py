"""``evaluate.samples_per_prompt``: k completions of every test prompt by every model, the
prompt as the unit of every mean and interval (its samples averaged first), KL from the
same samples; k = 1 is the old single draw, number for number."""

from __future__ import annotations

import hashlib
import json

import pytest
from helpers import PROMPTS, TINY_GEN, make_tiny_models

from superhf import eval_samples, evaluation
from superhf.config.evaluate import EvaluateConfig
from superhf.models import load_tokenizer, save_model
from superhf.overopt import kl_estimate
from superhf.reward import RewardScorer
from superhf.stats import reward_block, summary, unit_means
from superhf.tiny import tiny_causal_lm

TEST = [{"prompt": p, "dataset": d} for p, d in zip(PROMPTS, ["a", "b", "a", "b"])]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    root = tmp_path_factory.mktemp("samples")
    policy, reward = make_tiny_models(root)
    tok = load_tokenizer(policy)
    save_model(tiny_causal_lm(tok, seed=3), tok, root / "other", {"source": "tiny"})
    scorer = RewardScorer(reward)
    return {"base": policy, "superhf": root / "other"}, {"proxy": scorer, "gold": scorer}


def config(k: int, **extra) -> EvaluateConfig:
    section = {
        "generation": TINY_GEN,
        "best_of_n": 2,
        "bootstrap_samples": 50,
        "benchmarks": {"enabled": False},
        "samples_per_prompt": k,
        **extra,
    }
    return EvaluateConfig.model_validate(section)


def test_unit_means_average_each_prompts_consecutive_samples() -> None:
    assert unit_means([1.0, 3.0, 5.0, 7.0], 2) == [2.0, 6.0]
    assert unit_means([1.0, 3.0], 1) == [1.0, 3.0]
    with pytest.raises(ValueError, match="not 2 samples per prompt"):
        unit_means([1.0, 2.0, 3.0], 2)


def test_the_interval_takes_the_prompt_as_the_unit() -> None:
    """Samples that disagree within every prompt but prompts that agree: no spread at all
    between prompts, so the interval is a point; a sample-level bootstrap would be wide."""
    rows = [
        {"dataset": "a", "proxy": float(j), "gold": float(j)} for _ in range(20) for j in (0, 1)
    ]
    block = reward_block(rows, 200, 0, per_prompt=2)
    assert block["proxy"]["n"] == 20 and block["proxy"]["samples_per_prompt"] == 2
    assert block["proxy"]["ci_low"] == block["proxy"]["ci_high"] == 0.5
    samples = reward_block(rows, 200, 0)["proxy"]
    assert samples["ci_high"] - samples["ci_low"] > 0.2 and "samples_per_prompt" not in samples


def test_two_samples_per_prompt_give_two_rows_and_prompt_level_numbers(models, monkeypatch):
    ms, scorers = models
    ratios: list[list[float]] = []
    real = eval_samples.log_ratios
    monkeypatch.setattr(
        eval_samples, "log_ratios", lambda *a: ratios.append(real(*a)) or ratios[-1]
    )
    results, rows = evaluation.evaluate_models(config(2), ms, TEST, scorers, None)
    for name in ("base", "superhf", "best_of_n"):
        mine = [r for r in rows if r["model"] == name]
        assert [(r["prompt"], r["sample"]) for r in mine] == [
            (p, j) for p in PROMPTS for j in (0, 1)
        ]
        want = summary([r["gold"] for r in mine], 50, 0, per_prompt=2)
        assert {k: results[name]["gold"][k] for k in want} == want
        assert results[name]["gold"]["n"] == len(PROMPTS)
        assert results[name]["gold"]["per_dataset"]["a"]["n"] == 2
    assert len(ratios[-1]) == 2 * len(PROMPTS)  # KL: every sample, from the same draws
    kl, se = kl_estimate(unit_means(ratios[-1], 2))
    assert results["superhf"]["kl_to_base"] == pytest.approx(kl)
    assert results["superhf"]["kl_to_base_se"] == pytest.approx(se)
    assert se != pytest.approx(kl_estimate(ratios[-1])[1])  # the prompt, not the sample


# Made by the code before samples_per_prompt existed (commit 535aa09), on these tiny models
# and this config without the field: the old numbers, and the sha256 of the completions.
OLD = {
    "numbers": {
        "base/proxy/mean": 0.019656879361718893,
        "base/proxy/std": 2.938807521185079e-05,
        "base/proxy/ci_low": 0.019627555657643826,
        "base/proxy/ci_high": 0.019677706994116306,
        "base/gold/mean": 0.019656879361718893,
        "base/gold/std": 2.938807521185079e-05,
        "base/gold/ci_low": 0.019627555657643826,
        "base/gold/ci_high": 0.019677706994116306,
        "superhf/proxy/mean": 0.019652389455586672,
        "superhf/proxy/std": 2.9110264419622246e-05,
        "superhf/proxy/ci_low": 0.01962513040052727,
        "superhf/proxy/ci_high": 0.019673872739076614,
        "superhf/gold/mean": 0.019652389455586672,
        "superhf/gold/std": 2.9110264419622246e-05,
        "superhf/gold/ci_low": 0.01962513040052727,
        "superhf/gold/ci_high": 0.019673872739076614,
        "best_of_n/proxy/mean": 0.0196870188228786,
        "best_of_n/proxy/std": 2.1712434944651904e-05,
        "best_of_n/proxy/ci_low": 0.019666105112992226,
        "best_of_n/proxy/ci_high": 0.019705857790540904,
        "best_of_n/gold/mean": 0.0196870188228786,
        "best_of_n/gold/std": 2.1712434944651904e-05,
        "best_of_n/gold/ci_low": 0.019666105112992226,
        "best_of_n/gold/ci_high": 0.019705857790540904,
        "superhf/kl": -0.2428760528564453,
        "superhf/kl_se": 0.36765703143202394,
    },
    "completions_sha256": "b024c841a5fd042be97d75759f0fd00b2cbe2d37bea7eba1cefaeaf179edcc31",
}


def numbers(results: dict) -> dict[str, float]:
    out = {
        f"{m}/{w}/{k}": results[m][w][k]
        for m in ("base", "superhf", "best_of_n")
        for w in ("proxy", "gold")
        for k in ("mean", "std", "ci_low", "ci_high")
    }
    out["superhf/kl"] = results["superhf"]["kl_to_base"]
    out["superhf/kl_se"] = results["superhf"]["kl_to_base_se"]
    return out


def completions_sha256(rows: list[dict]) -> str:
    text = json.dumps([[r["model"], r["completion"]] for r in rows])
    return hashlib.sha256(text.encode()).hexdigest()


def test_one_sample_per_prompt_is_the_old_evaluation(models) -> None:
    ms, scorers = models
    results, rows = evaluation.evaluate_models(config(1), ms, TEST, scorers, None)
    keys = {"model", "prompt", "dataset", "completion", "proxy", "gold"}
    assert all(set(r) == keys for r in rows)
    assert "samples_per_prompt" not in results["base"]["proxy"]
    assert completions_sha256(rows) == OLD["completions_sha256"]
    got = numbers(results)
    # the completions are the old ones byte for byte (above); their fp32 scores differ in the
    # 8th digit between CPUs (AVX-512 and AVX2 kernels sum in another order), so the numbers
    # are held to 1e-5 (KL is a difference of log-prob sums: 2e-6 apart seen), not to one
    # machine's last bits
    for key, value in OLD["numbers"].items():
        assert got[key] == pytest.approx(value, rel=1e-6, abs=1e-5), key
