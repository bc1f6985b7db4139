"""Issue 12, part 1: SuperHF targets, PPO responses and the KL diagnostic are the token ids
the policy sampled (cut at the trim point), never a re-tokenisation of decoded text."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import PROMPTS, TINY_GEN, make_tiny_models

from superhf import eval_samples, evaluation, generation
from superhf import ppo_trainer as rlhf
from superhf import superhf_trainer as shf
from superhf.config.evaluate import EvaluateConfig
from superhf.config.rlhf import RLHFConfig
from superhf.config.superhf import SuperHFConfig
from superhf.models import load_tokenizer
from superhf.reward import RewardScorer
from superhf.trimming import cut_ids_at_trim, trim_completion, trim_point

PREAMBLE = "A human user asks a question, and an AI assistant responds."


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_tiny_models(tmp_path_factory.mktemp("tiny"))


# ----------------------------------------------------------------------------- pure helpers
PIECES = {1: " I", 2: " am", 3: " fine", 4: ".\n", 5: "Human", 6: ":", 7: " ok", 8: "\n", 9: ""}


def toy_decode(ids: list[int]) -> str:
    return "".join(PIECES[i] for i in ids)


def test_cut_keeps_every_id_when_nothing_is_trimmed() -> None:
    ids = [1, 2, 3, 9]  # 9: a sampled EOS (decodes to nothing)
    assert cut_ids_at_trim(ids, toy_decode, "later") == ids
    assert cut_ids_at_trim(ids, toy_decode, "none") == ids


@pytest.mark.parametrize(
    ("mode", "ids", "want"),
    [
        ("later", [1, 2, 3, 4, 5, 6, 7], [1, 2, 3, 4]),  # cut at "Human:"; ".\n" covers "."
        ("paper", [1, 2, 3, 4, 5, 6, 7], [1, 2, 3, 4]),  # cut at the newline
        ("paper", [1, 2, 5, 7], [1, 2]),  # the bare word "Human" cuts under paper only
        ("later", [1, 2, 5, 7], [1, 2, 5, 7]),
        ("paper", [8, 1, 2], []),  # trimmed to nothing
    ],
)
def test_cut_is_the_shortest_prefix_covering_the_trimmed_text(mode, ids, want) -> None:
    got = cut_ids_at_trim(ids, toy_decode, mode)
    assert got == want
    assert ids[: len(got)] == got
    text = trim_completion(toy_decode(ids), mode)
    assert text in toy_decode(got) and (not got or text not in toy_decode(got[:-1]))


@pytest.mark.parametrize(
    ("text", "paper", "later"),
    [
        (' Sure - here "it" is', "Sure", 'Sure - here "it" is'),
        (" Line one\nline two", "Line one", "Line one\nline two"),
        (" A Human being\n\nHuman: hi", "A", "A Human being"),
        (" Fine.\n\nBob Smith: hi", "Fine.", "Fine."),
        ("\nStarts with a newline", "", "Starts with a newline"),
    ],
)
def test_trim_modes(text: str, paper: str, later: str) -> None:
    assert trim_completion(text, "paper") == paper
    assert trim_completion(text, "later") == later
    assert trim_completion(text, "none") == text.strip()
    assert trim_point(text, "none") is None


# ----------------------------------------------------------------------------- in the loops
class Recorder:
    """Wraps ``generation.generate_ids`` and keeps every row it returned."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.rows: list[list[int]] = []
        real = generation.generate_ids

        def wrapped(*a, **kw):
            out = real(*a, **kw)
            self.rows += [list(r) for r in out]
            return out

        monkeypatch.setattr(generation, "generate_ids", wrapped)


def check_ids(trained: list[list[int]], generated: list[list[int]], tok, mode: str) -> int:
    """Every trained row is a generated row (untrimmed) or a prefix of one (trimmed).
    Returns how many rows were untrimmed and equal."""
    exact = 0
    for ids in trained:
        matches = [g for g in generated if g[: len(ids)] == ids and ids]
        assert matches, f"trained ids {ids} are no prefix of any sampled row"
        g = matches[0]
        if trim_point(tok.decode(g, skip_special_tokens=True), mode) is None:
            assert ids == g  # untrimmed: exactly what was sampled
            exact += 1
    return exact


def retokenised_differs(rows: list[list[int]], tok) -> bool:
    """The bug this guards against: decode + strip + tokenise gives other ids."""
    return any(
        tok(tok.decode(r, skip_special_tokens=True).strip(), add_special_tokens=False)["input_ids"]
        != [t for t in r if t != tok.eos_token_id]
        for r in rows
    )


def spy_trained_targets(monkeypatch) -> list[list[int]]:
    """The target ids of every row SuperHF fine-tunes on, recorded as batches are built."""
    trained: list[list[int]] = []
    real = shf.build_sft_batch
    monkeypatch.setattr(
        shf, "build_sft_batch", lambda p, c, pad: trained.extend(c) or real(p, c, pad)
    )
    return trained


@pytest.mark.parametrize("mode", ["none", "paper"])
def test_superhf_trains_on_the_sampled_ids(tiny, tmp_path, monkeypatch, mode) -> None:
    policy, reward = tiny
    tok = load_tokenizer(policy)
    rec = Recorder(monkeypatch)
    trained = spy_trained_targets(monkeypatch)
    cfg = SuperHFConfig.model_validate(
        {"num_prompts": 2, "superbatch_size": 6, "prompt_accumulation": 2, "top_k": 3,
         "minibatch_size": 3, "append_eos": False, "optim": {"lr": 1e-3, "warmup_steps": 0},
         "generation": {**TINY_GEN, "max_new_tokens": 6, "trim": mode}}
    )  # fmt: skip
    shf.train(cfg, policy, reward, PROMPTS, tmp_path / "ck")
    assert len(trained) == 6 and len(rec.rows) == 12
    exact = check_ids(trained, rec.rows, tok, mode)
    if mode == "none":
        assert exact == len(trained)
        assert retokenised_differs(trained, tok)  # so the old targets were not the sampled ones


def test_superhf_appends_eos_only_when_asked(tiny, tmp_path, monkeypatch) -> None:
    policy, reward = tiny
    tok = load_tokenizer(policy)
    rec = Recorder(monkeypatch)
    trained = spy_trained_targets(monkeypatch)
    cfg = SuperHFConfig.model_validate(
        {"num_prompts": 1, "superbatch_size": 4, "top_k": 2, "minibatch_size": 2,
         "optim": {"lr": 1e-3, "warmup_steps": 0},
         "generation": {**TINY_GEN, "max_new_tokens": 6, "trim": "none"}}
    )  # fmt: skip
    shf.train(cfg, policy, reward, PROMPTS, tmp_path / "ck")
    for ids in trained:
        assert ids[-1] == tok.eos_token_id and ids.count(tok.eos_token_id) == 1
        assert ids[:-1] in rec.rows or ids in rec.rows


@pytest.mark.parametrize("mode", ["none", "paper"])
def test_ppo_responses_are_the_sampled_ids(tiny, tmp_path, monkeypatch, mode) -> None:
    policy, reward = tiny
    tok = load_tokenizer(policy)
    rec = Recorder(monkeypatch)
    responses: list[list[int]] = []
    real = rlhf.rollout_batch
    monkeypatch.setattr(
        rlhf, "rollout_batch", lambda t, x, r, m: responses.extend(r) or real(t, x, r, m)
    )
    cfg = RLHFConfig.model_validate(
        {"num_prompts": 8, "batch_size": 8, "minibatch_size": 4, "ppo_epochs": 1,
         "optim": {"lr": 1e-3, "scheduler": "constant", "warmup_steps": 0},
         "generation": {**TINY_GEN, "max_new_tokens": 6, "trim": mode}}
    )  # fmt: skip
    rlhf.train(cfg, policy, reward, PROMPTS, tmp_path / "ck")
    assert len(responses) == 8
    trimmed_to_nothing = [
        r for r in responses if not tok.decode(r, skip_special_tokens=True).strip()
    ]
    kept = [r for r in responses if r not in trimmed_to_nothing]
    exact = check_ids(kept, rec.rows, tok, mode)
    for r in trimmed_to_nothing:  # the first sampled token carries the score
        assert len(r) == 1 and any(g[:1] == r for g in rec.rows)
    if mode == "none":
        assert exact == len(responses) == 8
        assert retokenised_differs(responses, tok)
    # an EOS only where the policy sampled one
    for r in responses:
        assert tok.eos_token_id not in r[:-1]
        if r and r[-1] == tok.eos_token_id:
            assert any(g[: len(r)] == r for g in rec.rows)


def test_kl_diagnostic_scores_the_sampled_ids(tiny, monkeypatch) -> None:
    policy, reward = tiny
    tok = load_tokenizer(policy)
    rec = Recorder(monkeypatch)
    scored: list[list[int]] = []
    real = eval_samples.sequence_logprobs

    def spy(model, tok_, texts, ids, *a, **kw):
        scored.extend(list(x) for x in ids)
        return real(model, tok_, texts, ids, *a, **kw)

    monkeypatch.setattr(eval_samples, "sequence_logprobs", spy)
    cfg = EvaluateConfig.model_validate(
        {"generation": {**TINY_GEN, "max_new_tokens": 6, "trim": "none"}, "best_of_n": 0,
         "bootstrap_samples": 10, "benchmarks": {"enabled": False}}
    )  # fmt: skip
    scorer = RewardScorer(reward)
    test = [{"prompt": p, "dataset": "red_team"} for p in PROMPTS]
    results, _ = evaluation.evaluate_models(
        cfg, {"base": policy, "superhf": policy}, test, {"proxy": scorer, "gold": scorer}, None
    )
    assert len(scored) == 2 * len(PROMPTS)  # the model's and the base's log-probs
    superhf_rows = rec.rows[len(PROMPTS) :]  # generated after base's
    assert scored[: len(PROMPTS)] == superhf_rows == scored[len(PROMPTS) :]
    assert retokenised_differs(superhf_rows, tok)
    assert results["superhf"]["kl_to_base"] == pytest.approx(0.0, abs=1e-5)  # same weights


def test_sequence_logprobs_sums_the_given_ids(tiny) -> None:
    from superhf.models import load_causal_lm

    policy, _ = tiny
    tok, model = load_tokenizer(policy), load_causal_lm(policy).eval()
    prompt, ids = PROMPTS[0], [5, 17, 42]
    got = eval_samples.sequence_logprobs(model, tok, [prompt], [ids])[0]
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = model(torch.tensor([p + ids])).logits[0].log_softmax(-1)
    want = sum(float(logp[len(p) - 1 + i, t]) for i, t in enumerate(ids))
    assert got == pytest.approx(want, abs=1e-4)


def test_upstream_reward_input_is_preamble_prompt_space_completion(tiny, tmp_path) -> None:
    import json
    import shutil

    from superhf.reward import encode

    _, reward = tiny
    up = tmp_path / "upstream"
    shutil.copytree(reward, up)
    meta = json.loads((up / "superhf_meta.json").read_text())
    (up / "superhf_meta.json").write_text(json.dumps({**meta, "input_format": "upstream"}))
    upstream, text = RewardScorer(up, preamble=PREAMBLE), RewardScorer(reward, preamble=PREAMBLE)
    comps = ["I can help.", "No."]
    got = upstream.score(PROMPTS[:2], comps)
    assert got == pytest.approx(text.score([PREAMBLE + p for p in PROMPTS[:2]], comps))
    assert got != pytest.approx(text.score(PROMPTS[:2], comps))  # text ignores the preamble
    enc = encode(upstream.tokenizer, [PREAMBLE + PROMPTS[0]], ["I can help."], "upstream", 16)
    first = upstream.tokenizer.decode(enc["input_ids"][0], skip_special_tokens=True)
    assert first.replace(" ", "").startswith(PREAMBLE[:10].replace(" ", ""))  # cut on the right
