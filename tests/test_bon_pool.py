"""Best-of-n in evaluate: a pool of draws larger than n, on the first k test prompts."""

from __future__ import annotations

from pathlib import Path

from helpers import PROMPTS, TINY_GEN, make_tiny_models

from superhf import eval_curves
from superhf.config.evaluate import EvaluateConfig
from superhf.models import load_causal_lm, load_tokenizer
from superhf.reward import RewardScorer


def test_best_of_n_points_draw_the_pool_on_the_first_prompts(tmp_path: Path, monkeypatch) -> None:
    policy, reward = make_tiny_models(tmp_path)
    scorer = RewardScorer(reward)
    drawn: list[int] = []
    real = eval_curves.sample_completions
    monkeypatch.setattr(eval_curves, "sample_completions",
                        lambda m, t, rows, g: drawn.append(len(rows)) or real(m, t, rows, g))  # fmt: skip
    cfg = EvaluateConfig(best_of_n_pool=6, best_of_n_curve_prompts=3, generation=TINY_GEN)
    test = [{"prompt": p, "dataset": "x"} for p in PROMPTS]
    model, tok = load_causal_lm(policy).eval(), load_tokenizer(policy)
    pts = eval_curves.best_of_n_points(cfg, 4, model, tok, test, {"proxy": scorer, "gold": scorer})
    assert drawn == [3 * 6]  # 3 prompts x a pool of 6, not 4 prompts x 4
    assert [p["n"] for p in pts] == [1, 2, 4]
    assert [p["reward_queries"] for p in pts] == [3, 6, 12]
    assert pts[0]["proxy_mean"] <= pts[1]["proxy_mean"] <= pts[2]["proxy_mean"]
