"""Issue 22, section 3: the paper-run profile reproduces the paper's RLHF run (Figure 3:
the response its PPO step saw, TRL 0.4's value head, 1984 prompts in 62 steps, the prompt
filter) and its SuperHF run (no EOS target, AdamW's weight decay, the logged mean over
non-empty completions)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from helpers import PROMPTS, TINY_GEN, make_tiny_models

from superhf import ppo_policy, ppo_rollout
from superhf import ppo_trainer as rlhf
from superhf import superhf_trainer as shf
from superhf.config.rlhf import RLHFConfig
from superhf.config.superhf import SuperHFConfig
from superhf.errors import BadInputError
from superhf.generation import Completion
from superhf.loop_schedule import prompts_per_step
from superhf.models import load_causal_lm, load_tokenizer
from superhf.profile import resolve
from superhf.trimming import trim_completion


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    return make_tiny_models(tmp_path_factory.mktemp("tiny"))


class SpyScorer:
    """Scores every completion by its length and records what it was asked."""

    hash = "spy"

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], list[str]]] = []

    def score(self, prompts, completions) -> list[float]:
        self.calls.append((list(prompts), list(completions)))
        return [0.1 * len(c) for c in completions]


def ppo_cfg(**kw) -> RLHFConfig:
    base = {"num_prompts": 4, "batch_size": 4, "minibatch_size": 2, "ppo_epochs": 1,
            "optim": {"lr": 1e-3, "scheduler": "constant", "warmup_steps": 0},
            "generation": {**TINY_GEN, "preamble": "Be kind.", "trim": "paper"}}  # fmt: skip
    return RLHFConfig.model_validate({**base, **kw})


@pytest.mark.parametrize("response", ["sampled", "upstream"])
def test_ppo_step_sees_the_response_of_the_paper_run_or_ours(tiny, tmp_path, monkeypatch, response):
    """upstream: the query again plus every sampled token (untrimmed) is the response, so
    the score sits on the last sampled token and the KL sums over the repeated query; the
    reward model is fed query + (query + " " + trimmed). sampled: the trimmed tokens."""
    policy, _ = tiny
    tok = load_tokenizer(policy)
    seen: dict = {}
    real_sample, real_step = rlhf.sample_completions, rlhf.ppo_step
    monkeypatch.setattr(
        rlhf,
        "sample_completions",
        lambda *a, **k: seen.setdefault("rollouts", real_sample(*a, **k)),
    )
    monkeypatch.setattr(rlhf, "ppo_step",
                        lambda *a, **k: seen.setdefault("mask", a[3].cpu()) is None or real_step(*a, **k))  # fmt: skip
    scorer = SpyScorer()
    cfg = ppo_cfg(response=response)
    _, _, h, _, _ = rlhf.train(cfg, policy, None, PROMPTS, tmp_path / "ck", scorer=scorer)
    texts = [cfg.generation.preamble + p for p in scorer_prompts(scorer, response)]
    queries = ppo_rollout.query_ids(tok, texts, cfg.generation.max_prompt_tokens)
    rollouts = seen["rollouts"]
    lengths = seen["mask"].sum(1).tolist()
    prompts, comps = scorer.calls[0]
    if response == "upstream":
        assert lengths == [len(q) + len(c.sampled_ids) for q, c in zip(queries, rollouts)]
        assert prompts == [p + t for p, t in zip(scorer_prompts(scorer, response), texts)]
        want = [trim_completion(tok.decode(c.sampled_ids, skip_special_tokens=False), "paper")
                for c in rollouts]  # fmt: skip
        assert comps == want
    else:
        assert lengths == [len(ppo_rollout.response_ids(c)) for c in rollouts]
        assert comps == [c.text for c in rollouts]
    assert h[0]["kl"] == pytest.approx(0.0, abs=1e-5)  # the policy is its reference at step 0


def scorer_prompts(scorer: SpyScorer, response: str) -> list[str]:
    """The training prompts of the first step, read back from what the scorer saw."""
    prompts = scorer.calls[0][0]
    if response == "sampled":
        return prompts
    return [next(q for q in PROMPTS if p.startswith(q)) for p in prompts]


def test_upstream_reward_input_keeps_special_tokens(tiny) -> None:
    policy, _ = tiny
    tok = load_tokenizer(policy)
    ids = tok("Sure thing", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    c = Completion("Sure thing", ids, ids)
    cfg = ppo_cfg(response="upstream")
    prompts, comps = ppo_rollout.reward_inputs(
        cfg, tok, ["\n\nHuman: hi\n\nAssistant:"], ["Q"], [c]
    )
    assert prompts == ["\n\nHuman: hi\n\nAssistant:Q"] and comps == ["Sure thing" + tok.eos_token]
    assert ppo_rollout.reward_inputs(ppo_cfg(), tok, ["P"], ["Q"], [c]) == (["P"], ["Sure thing"])
    assert ppo_rollout.rollout_responses(cfg, tok, ["Q"], [c]) == [tok("Q")["input_ids"] + ids]


def test_value_head_zero_or_trl_default_init_with_dropout(tiny) -> None:
    policy, _ = tiny
    zero = ppo_policy.PolicyWithValueHead(load_causal_lm(policy), "zero")
    assert not zero.value_head.weight.any() and zero.dropout.p == 0.0
    torch.manual_seed(0)
    trl = ppo_policy.PolicyWithValueHead(load_causal_lm(policy), "trl")
    assert trl.value_head.weight.abs().sum() > 0 and trl.dropout.p == 0.1
    ids = torch.tensor([[5, 6, 7, 8]])
    _, v1 = trl(ids, torch.ones_like(ids))
    _, v2 = trl(ids, torch.ones_like(ids))
    assert not torch.equal(v1, v2)  # dropout is on in train mode, as TRL's head
    trl.eval()
    assert torch.equal(trl(ids, torch.ones_like(ids))[1], trl(ids, torch.ones_like(ids))[1])


def test_paper_run_ppo_takes_1984_prompts_in_62_steps_with_the_schedule_over_them(tiny, tmp_path):
    cfg = RLHFConfig.model_validate(resolve("paper-run")["rlhf"])
    sizes = prompts_per_step(cfg.num_prompts, cfg.batch_size, 1, "rlhf", drop_last=cfg.drop_last)
    assert sizes == [32] * 62 and sum(sizes) == 1984
    with pytest.raises(Exception, match="drop_last"):
        prompts_per_step(8, 32, 1, "rlhf", drop_last=True)
    policy, _ = tiny  # the trainer: 10 prompts of 4 per step -> 2 steps, linear to 0 over 2
    c = ppo_cfg(num_prompts=10, drop_last=True,
                optim={"lr": 1e-3, "scheduler": "linear", "warmup_steps": 0})  # fmt: skip
    _, _, h, _, _ = rlhf.train(c, policy, None, PROMPTS, tmp_path / "ck", scorer=SpyScorer())
    assert [r["prompts"] for r in h] == [4, 4]
    assert [r["lr"] for r in h] == pytest.approx([1e-3, 5e-4])


def test_rlhf_prompt_filter_counts_the_preamble(tiny, tmp_path) -> None:
    cfg = ppo_cfg(max_prompt_chars=len("Be kind." + PROMPTS[0]) + 1)
    kept = ppo_rollout.filter_prompts(cfg, PROMPTS)
    assert kept == [p for p in PROMPTS if len(p) <= len(PROMPTS[0])] and PROMPTS[0] in kept
    assert len(kept) < len(PROMPTS)
    with pytest.raises(BadInputError, match="max_prompt_chars"):
        ppo_rollout.filter_prompts(ppo_cfg(max_prompt_chars=5), PROMPTS)
    policy, _ = tiny
    scorer = SpyScorer()
    rlhf.train(cfg.model_copy(update={"num_prompts": 8}), policy, None, PROMPTS, tmp_path / "ck",
               scorer=scorer)  # fmt: skip
    assert {p for call in scorer.calls for p in call[0]} == set(kept)


def shf_cfg(**kw) -> SuperHFConfig:
    base = {"num_prompts": 2, "superbatch_size": 4, "top_k": 2, "minibatch_size": 2,
            "optim": {"lr": 1e-3, "warmup_steps": 0}, "generation": TINY_GEN}  # fmt: skip
    return SuperHFConfig.model_validate({**base, **kw})


def with_sampled_eos(real, eos: int, empty_every: int = 0):
    """sample_completions whose completions all end in a sampled EOS (every
    ``empty_every``-th one trimmed to empty)."""

    def sample(*a, **k):
        out = []
        for i, c in enumerate(real(*a, **k)):
            ids = [t for t in c.ids if t != eos][:3] or [5]
            text = "" if empty_every and i % empty_every == 0 else (c.text or "x")
            out.append(dataclasses.replace(c, text=text, ids=ids + [eos], sampled_ids=ids + [eos]))
        return out

    return sample


@pytest.mark.parametrize("keep", [True, False])
def test_superhf_no_eos_is_ever_a_target_in_paper_run(tiny, tmp_path, monkeypatch, keep) -> None:
    policy, reward = tiny
    eos = load_tokenizer(policy).eos_token_id
    monkeypatch.setattr(shf, "sample_completions", with_sampled_eos(shf.sample_completions, eos))
    targets: list[list[int]] = []
    real = shf.build_sft_batch
    monkeypatch.setattr(
        shf, "build_sft_batch", lambda p, c, pad: targets.extend(c) or real(p, c, pad)
    )
    shf.train(shf_cfg(append_eos=False, keep_sampled_eos=keep), policy, reward, PROMPTS, tmp_path)
    assert targets and all((t[-1] == eos) == keep for t in targets)
    assert all(eos not in t[:-1] for t in targets)


def test_superhf_logged_reward_mean_over_nonempty_completions(tiny, tmp_path, monkeypatch) -> None:
    policy, reward = tiny
    eos = load_tokenizer(policy).eos_token_id
    monkeypatch.setattr(shf, "sample_completions",
                        with_sampled_eos(shf.sample_completions, eos, empty_every=2))  # fmt: skip
    scored: list[tuple[list[str], list[float]]] = []

    class Scorer(SpyScorer):
        def __init__(self, *a, **k) -> None:
            super().__init__()

        def score(self, prompts, completions):
            s = [1.0 + len(c) for c in completions]
            scored.append((list(completions), s))
            return s

    monkeypatch.setattr(shf, "RewardScorer", Scorer)
    for over in ("all", "nonempty"):
        scored.clear()
        _, _, h, _, _ = shf.train(shf_cfg(reward_mean_over=over), policy, reward, PROMPTS,
                                  tmp_path / over)  # fmt: skip
        comps, s = scored[0]
        use = [x for c, x in zip(comps, s) if c or over == "all"]
        assert len(use) > 0 and h[0]["reward_mean"] == pytest.approx(sum(use) / len(use))
        assert h[0]["reward_model_mean"] == pytest.approx(sum(use) / len(use))
        assert h[0]["empty_share"] == pytest.approx(0.5)
