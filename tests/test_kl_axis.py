"""Issue 22, section 2: one KL, measured the same way for every method.

Trained methods: KL(pi || pi_base) of the unwarped policy (T=1, no truncation, no penalty),
the mean over its samples of the summed token log-ratio, with a standard error, never
clamped; the curve's rewards come from the same samples. Best-of-n: log n - (n-1)/n, an
upper bound, from draws of the same unwarped base sampler. The reward table keeps the
configured (paper's) sampler.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch
from helpers import PROMPTS, TINY_GEN, make_tiny_models

from superhf import eval_curves, eval_samples, evaluation, generation
from superhf.config.common import warping_keys
from superhf.config.evaluate import EvaluateConfig
from superhf.figures import overopt_figure
from superhf.models import load_causal_lm, load_tokenizer, save_model
from superhf.overopt import kl_estimate, signed_sqrt
from superhf.reward import RewardScorer
from superhf.tiny import tiny_causal_lm

WARPED_GEN = {**TINY_GEN, "max_new_tokens": 6, "top_p": 0.8, "repetition_penalty": 1.3}


# ----------------------------------------------------------------------------- pure maths
@pytest.mark.parametrize("seed", range(4))
def test_kl_estimate_is_the_mean_and_its_standard_error(seed: int) -> None:
    rng = random.Random(seed)
    xs = [rng.gauss(-0.3, 1.0) for _ in range(rng.randint(2, 30))]
    mean, se = kl_estimate(xs)
    m = 0.0
    for x in xs:
        m += x / len(xs)
    ss = 0.0
    for x in xs:
        ss += (x - m) ** 2
    assert mean == pytest.approx(m) and se == pytest.approx(math.sqrt(ss / (len(xs) - 1) / len(xs)))


def test_a_negative_kl_estimate_is_kept_and_its_sqrt_is_signed() -> None:
    mean, se = kl_estimate([-0.5, 0.1, -0.2])
    assert mean == pytest.approx(-0.2) and se > 0  # not clamped to 0
    assert signed_sqrt(-0.04) == pytest.approx(-0.2) and signed_sqrt(0.09) == pytest.approx(0.3)
    assert kl_estimate([0.7]) == (0.7, None)  # one sample: no standard error
    cfg = EvaluateConfig.model_validate({"bootstrap_samples": 10})
    pt = eval_curves.curve_point(
        cfg, "rlhf", 1, 8, (-0.04, 0.02, "estimate"), [0.1, 0.2], [0.0, 0.1]
    )
    assert (pt["kl"], pt["kl_se"], pt["kl_kind"]) == (-0.04, 0.02, "estimate")
    assert pt["sqrt_kl"] == pytest.approx(-0.2)
    with pytest.raises(ValueError, match="kl kind"):
        eval_curves.curve_point(cfg, "rlhf", 1, 8, (0.1, None, "guess"), [0.1], [0.1])


def test_figure_draws_estimates_with_bars_and_the_bound_apart(tmp_path: Path) -> None:
    cfg = EvaluateConfig.model_validate({"bootstrap_samples": 10})
    est = [eval_curves.curve_point(cfg, "rlhf", s, 8 * s, (k, 0.05, "estimate"), [0.1, 0.3], [0.0, 0.2])
           for s, k in ((0, 0.0), (1, -0.03), (2, 0.4))]  # fmt: skip
    bon = [eval_curves.curve_point(cfg, "best_of_n", n, 4 * n, (math.log(n) - (n - 1) / n, None,
           "upper_bound"), [0.1, 0.3], [0.0, 0.2], n=n) for n in (1, 2, 4)]  # fmt: skip
    overopt_figure({"rlhf": est, "best_of_n": bon}, tmp_path / "o.png")
    assert (tmp_path / "o.png").stat().st_size > 10_000


# ----------------------------------------------------------------------------- the stage
@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("kl")
    policy, reward = make_tiny_models(root)
    tok = load_tokenizer(policy)
    other = root / "other"
    save_model(tiny_causal_lm(tok, seed=3), tok, other, {"source": "tiny"})
    (other / "superhf_meta.json").write_text(json.dumps({"step": 5, "reward_queries": 20}))
    return policy, other, reward


def spy_samplers(monkeypatch) -> list[tuple[dict, list]]:
    """(sampler settings, completions) of every sample_completions call of evaluation (the
    table's, the samples' and the curves' modules)."""
    calls: list[tuple[dict, list]] = []
    real = generation.sample_completions

    def spy(model, tok, texts, cfg, **kw):
        out = real(model, tok, texts, cfg, **kw)
        calls.append(({k: getattr(cfg, k) for k in ("top_p", "repetition_penalty")}, out))
        return out

    for module in (evaluation, eval_samples, eval_curves):
        monkeypatch.setattr(module, "sample_completions", spy)
    return calls


def independent_kl(policy: Path, base: Path, cfg: EvaluateConfig) -> list[float]:
    """Per-sample summed log-ratio, by hand: sample the unwarped policy with generate_ids (the
    stage's seed), score every sampled id with one full forward per row under both models."""
    tok, model, ref = load_tokenizer(policy), load_causal_lm(policy), load_causal_lm(base)
    gen = cfg.generation.model_copy(update={"top_p": 1.0, "repetition_penalty": 1.0})
    torch.manual_seed(cfg.seed)
    rows = generation.generate_ids(model, tok, PROMPTS, gen)
    out = []
    for prompt, ids in zip(PROMPTS, rows):
        p = tok(prompt, add_special_tokens=False)["input_ids"]
        x = torch.tensor([p + ids])
        with torch.no_grad():
            lp = model(x).logits[0].log_softmax(-1)
            lb = ref(x).logits[0].log_softmax(-1)
        out.append(
            sum(float(lp[len(p) - 1 + i, t] - lb[len(p) - 1 + i, t]) for i, t in enumerate(ids))
        )
    return out


def test_kl_and_curves_sample_the_unwarped_policy_and_the_table_keeps_its_sampler(
    models, monkeypatch
) -> None:
    policy, other, reward = models
    cfg = EvaluateConfig.model_validate(
        {"generation": WARPED_GEN, "best_of_n": 2, "best_of_n_curve": 2, "bootstrap_samples": 10,
         "benchmarks": {"enabled": False}, "kl_batch_size": 3}
    )  # fmt: skip
    assert warping_keys(cfg.generation) == ["top_p", "repetition_penalty"]
    calls = spy_samplers(monkeypatch)
    scorer = RewardScorer(reward)
    scorers = {"proxy": scorer, "gold": scorer}
    test = [{"prompt": p, "dataset": "red_team"} for p in PROMPTS]
    results, rows = evaluation.evaluate_models(
        cfg, {"base": policy, "superhf": other}, test, scorers, None
    )
    warped, unwarped = (
        {"top_p": 0.8, "repetition_penalty": 1.3},
        {"top_p": 1.0, "repetition_penalty": 1.0},
    )
    # per model: the table's draws (configured sampler), then the unwarped draws; best-of-n
    # (table row) from the configured sampler
    assert [c[0] for c in calls] == [warped, unwarped, warped, unwarped, warped]
    table_texts = [r["completion"] for r in rows if r["model"] == "superhf"]
    assert table_texts == [c.text for c in calls[2][1]]  # the saved completions: the table's
    r = results["superhf"]
    want = independent_kl(other, policy, cfg)
    mean, se = kl_estimate(want)
    assert r["kl_to_base"] == pytest.approx(mean, abs=1e-4)
    assert r["kl_to_base_se"] == pytest.approx(se, abs=1e-4)
    unwarped_scores = scorer.score(PROMPTS, [c.text for c in calls[3][1]])
    assert r["unwarped"]["proxy"]["mean"] == pytest.approx(sum(unwarped_scores) / len(PROMPTS))
    assert results["base"]["kl_to_base"] == 0.0 and results["base"]["kl_to_base_se"] == 0.0
    assert "unwarped" in results["samplers"]["kl_and_curves"]

    calls.clear()
    curves = eval_curves.overoptimisation(
        cfg, {"base": policy, "superhf": other}, {}, test, scorers, results
    )
    # best-of-n's curve draws: the unwarped base, one seeded call per prompt
    assert [c[0] for c in calls] == [unwarped] * len(PROMPTS)
    bon = curves["best_of_n"]
    assert [(p["kl_kind"], p["kl_se"]) for p in bon] == [("upper_bound", None)] * 2
    assert bon[-1]["kl"] == pytest.approx(math.log(2) - 0.5)


def test_final_curve_point_is_the_unwarped_measurement(models) -> None:
    policy, other, reward = models
    cfg = EvaluateConfig.model_validate(
        {"generation": WARPED_GEN, "best_of_n": 0, "bootstrap_samples": 10,
         "benchmarks": {"enabled": False}}
    )  # fmt: skip
    scorer = RewardScorer(reward)
    scorers = {"proxy": scorer, "gold": scorer}
    test = [{"prompt": p, "dataset": "red_team"} for p in PROMPTS]
    ms = {"base": policy, "superhf": other}
    results, _ = evaluation.evaluate_models(cfg, ms, test, scorers, None)
    (snaps := other.parent / "snaps").mkdir(exist_ok=True)
    (snaps / "index.json").write_text("[]")
    pts = eval_curves.overoptimisation(cfg, ms, {"superhf": snaps}, test, scorers, results)[
        "superhf"
    ]
    base, final = pts[0], pts[-1]
    assert (base["kl"], base["kl_se"], base["kl_kind"]) == (0.0, 0.0, "estimate")
    assert base["gold_mean"] == results["base"]["unwarped"]["gold"]["mean"]
    assert final["kl"] == results["superhf"]["kl_to_base"]
    assert final["kl_se"] == results["superhf"]["kl_to_base_se"] > 0
    assert final["sqrt_kl"] == pytest.approx(signed_sqrt(final["kl"]))
    assert final["gold_mean"] == results["superhf"]["unwarped"]["gold"]["mean"]
