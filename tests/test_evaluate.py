from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
import torch
from helpers import PROMPTS, TINY_GEN, make_tiny_models, write_params

from superhf import eval_samples
from superhf.errors import BadInputError
from superhf.models import load_causal_lm, load_tokenizer, save_model
from superhf.reward import RewardScorer
from superhf.stages import evaluate, evaluate_inputs, report
from superhf.stats import bootstrap_ci
from superhf.text_diagnostics import repeated_ngram_rate, shared_tail_share


def test_bootstrap_interval_covers_the_mean() -> None:
    rng = random.Random(0)
    vals = [rng.gauss(1.0, 1.0) for _ in range(200)]
    lo, hi = bootstrap_ci(vals, 500, seed=0)
    mean = sum(vals) / len(vals)
    assert lo < mean < hi and 0.1 < hi - lo < 0.5
    assert bootstrap_ci([2.0], 100, 0) == (2.0, 2.0)


def test_hacking_diagnostics() -> None:
    assert repeated_ngram_rate("a b c a b c") == pytest.approx(0.5)  # abc twice of 4
    assert repeated_ngram_rate("one two three four") == 0.0
    texts = ["Sure. Thank you!! Have a great day :)"] * 3 + ["A real answer here."]
    assert shared_tail_share(texts, 12) == pytest.approx(0.75)


def test_stage_end_to_end_on_tiny_models(tmp_path: Path, monkeypatch) -> None:
    policy, reward = make_tiny_models(tmp_path / "m")
    shutil.copytree(reward, tmp_path / "gold")
    shutil.copytree(policy, tmp_path / "superhf")
    # a model that differs from base: every weight moved by seeded noise
    moved = load_causal_lm(policy)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in moved.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    save_model(moved, load_tokenizer(policy), tmp_path / "rlhf", {"source": "test"})
    calls: list[tuple[list[str], list[float]]] = []  # every proxy scoring call, to check best-of-n
    real_score = RewardScorer.score

    def spy(self, prompts, completions):
        out = real_score(self, prompts, completions)
        if Path(self.model_dir).resolve() == Path(reward).resolve():
            calls.append((list(completions), out))
        return out

    monkeypatch.setattr(RewardScorer, "score", spy)
    prompts = tmp_path / "test.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p, "dataset": d}) + "\n"
                               for p, d in zip(PROMPTS, ["a", "b", "a", "b"])))  # fmt: skip
    section = {"max_test_prompts": 3, "best_of_n": 2, "bootstrap_samples": 50, "generation": TINY_GEN,
               "score_cache": False, "benchmarks": {"source": "fixture", "max_examples": {"lambada": 4, "squad": 2}}}  # fmt: skip
    params = write_params(tmp_path / "p.yaml", evaluate=section)
    out = tmp_path / "out"
    evaluate.main(["--params", str(params), "--prompts", str(prompts), "--model", f"base={policy}",
                   "--model", f"superhf={tmp_path / 'superhf'}", "--model", f"rlhf={tmp_path / 'rlhf'}", "--reward", str(reward), "--gold", str(tmp_path / "gold"),
                   "--metrics", str(out / "eval.json"), "--table", str(out / "table4.md"),
                   "--completions", str(out / "c.jsonl")])  # fmt: skip
    ev = json.loads((out / "eval.json").read_text())
    assert set(ev) >= {"base", "superhf", "best_of_n"}
    assert ev["base"]["kl_to_base"] == pytest.approx(0.0, abs=1e-4)
    assert ev["superhf"]["kl_to_base"] == pytest.approx(0.0, abs=1e-4)  # identical weights
    assert ev["rlhf"]["kl_to_base"] > 0.1  # a model that differs from base
    # best-of-n: for each prompt the proxy's argmax among the 2 non-empty candidates
    cands, proxy = next(c for c in calls if len(c[0]) == 3 * 2)
    rows = [json.loads(x) for x in (out / "c.jsonl").read_text().splitlines()]
    picked = [r["completion"] for r in rows if r["model"] == "best_of_n"]
    for i, got in enumerate(picked):
        pairs = [(proxy[i * 2 + j], cands[i * 2 + j]) for j in range(2) if cands[i * 2 + j]]
        assert got == (max(pairs)[1] if pairs else "")
        assert not pairs or [r["proxy"] for r in rows if r["model"] == "best_of_n"][
            i
        ] == pytest.approx(max(pairs)[0], abs=1e-5)  # re-scored in another batch: float noise
    assert (
        ev["base"]["proxy"]["ci_low"]
        <= ev["base"]["proxy"]["mean"]
        <= ev["base"]["proxy"]["ci_high"]
    )
    assert 0 <= ev["base"]["benchmarks"]["hhh"]["harmless"] <= 1
    table = (out / "table4.md").read_text()
    assert "| base |" in table and "| best_of_n |" in table and "Harmless" in table
    assert len(rows) == 4 * 3 and all({"proxy", "gold", "completion"} <= set(r) for r in rows)

    curve = tmp_path / "curve.csv"
    curve.write_text("step,reward_mean,reward_ema\n0,0.1,0.1\n1,0.3,0.12\n")
    report.main(["--params", str(params), "--superhf-curve", str(curve), "--rlhf-curve", str(curve),
                 "--eval", str(out / "eval.json"), "--out", str(tmp_path / "reports")])  # fmt: skip
    pngs = sorted(p.name for p in (tmp_path / "reports").glob("*.png"))
    assert pngs == ["benchmarks.png", "proxy_vs_gold.png", "training_reward.png"]


def test_bad_model_argument(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="NAME=PATH"):
        evaluate_inputs.parse_models(["oops"])
    with pytest.raises(BadInputError, match="not a model folder"):
        evaluate_inputs.parse_models([f"base={tmp_path}"])


def test_sequence_logprobs_match_one_row_at_a_time() -> None:
    """Batched, left-padded, logits for completion columns only == plain per-row sums."""
    import torch
    import torch.nn.functional as F

    from superhf.tiny import tiny_causal_lm, tiny_tokenizer

    tok = tiny_tokenizer()
    model = tiny_causal_lm(tok, seed=0)
    texts = [PROMPTS[0], PROMPTS[1] + " longer prompt here", PROMPTS[2]]
    eos = tok.eos_token_id
    comps = [tok(" Boil it.")["input_ids"] + [eos], tok(" No.")["input_ids"], [eos]]  # sampled ids
    got = eval_samples.sequence_logprobs(model, tok, texts, comps, bs=3)
    for text, c, lp in zip(texts, comps, got):
        p = tok(text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logp = F.log_softmax(model(torch.tensor([p + c])).logits[0].double(), -1)
        want = sum(logp[len(p) + k - 1, t].item() for k, t in enumerate(c))
        assert lp == pytest.approx(want, abs=1e-3)
