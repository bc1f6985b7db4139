"""Best-of-n in evaluate: a pool of draws larger than n, on the first k test prompts, each
prompt drawn in its own seeded call, so a range of prompts draws what a whole run does."""

from __future__ import annotations

from pathlib import Path

from helpers import PROMPTS, TINY_GEN, make_tiny_models

from superhf import eval_curves
from superhf.config.evaluate import EvaluateConfig
from superhf.eval_pieces import pool_curve
from superhf.models import load_causal_lm, load_tokenizer
from superhf.reward import RewardScorer


def test_best_of_n_pool_draws_the_pool_on_the_first_prompts(tmp_path: Path, monkeypatch) -> None:
    policy, reward = make_tiny_models(tmp_path)
    scorer = RewardScorer(reward)
    drawn: list[int] = []
    real = eval_curves.sample_completions
    monkeypatch.setattr(eval_curves, "sample_completions",
                        lambda m, t, rows, g: drawn.append(len(rows)) or real(m, t, rows, g))  # fmt: skip
    cfg = EvaluateConfig(best_of_n_pool=6, best_of_n_curve_prompts=3, generation=TINY_GEN)
    test = [{"prompt": p, "dataset": "x"} for p in PROMPTS]
    base = load_causal_lm(policy).eval(), load_tokenizer(policy)
    scorers = {"proxy": scorer, "gold": scorer}
    whole = eval_curves.best_of_n_pool(cfg, 4, base, test, scorers)
    assert drawn == [6, 6, 6]  # 3 prompts x a pool of 6, one call each; not 4 prompts x 4
    assert (whole["start"], whole["stop"], whole["of"]) == (0, 3, 3)
    pts = pool_curve([whole], (20, 0))
    assert [p["n"] for p in pts] == [1, 2, 4]
    assert [p["reward_queries"] for p in pts] == [3, 6, 12]
    assert [p["prompts"] for p in pts] == [3, 3, 3] and "missing_prompts" not in pts[0]
    assert pts[0]["proxy_mean"] <= pts[1]["proxy_mean"] <= pts[2]["proxy_mean"]
    # a prompt's draws are its own: prompt 1 alone, then 2, draw what the whole run drew
    ranges = [eval_curves.best_of_n_pool(cfg, 4, base, test, scorers, r) for r in ((1, 2), (2, 3))]
    for r in ranges:
        for c, w in zip(r["curve"], whole["curve"]):
            assert c["proxy"] == w["proxy"][r["start"] : r["stop"]]
            assert c["gold"] == w["gold"][r["start"] : r["stop"]]


def test_each_pool_prompt_draws_with_its_own_seed(monkeypatch) -> None:
    seeds: list[int] = []
    monkeypatch.setattr(eval_curves.torch, "manual_seed", seeds.append)
    monkeypatch.setattr(eval_curves, "sample_completions", lambda m, t, rows, g: [])
    monkeypatch.setattr(eval_curves, "format_prompt", lambda p, tok, g: p)
    monkeypatch.setattr(eval_curves, "score_all", lambda s, p, c: {"proxy": [0.0] * 2, "gold": [0.0] * 2})  # fmt: skip
    monkeypatch.setattr(eval_curves, "best_of_n_curve", lambda *a, **k: [{"proxy": [0.0] * 2}])
    cfg = EvaluateConfig(seed=5, best_of_n_pool=2, best_of_n_curve_prompts=4, generation=TINY_GEN)
    test = [{"prompt": p, "dataset": "x"} for p in PROMPTS]
    eval_curves.best_of_n_pool(cfg, 2, (None, None), test, {}, (1, 3))
    assert seeds == [5 + 1 + 1, 5 + 1 + 2]  # prompt i: seed + 1 + i, whatever its range
