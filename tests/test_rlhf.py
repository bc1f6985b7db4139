from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import PROMPTS, TINY_GEN, make_tiny_models, write_params

from superhf import ppo_policy, ppo_rollout, ppo_update
from superhf import ppo_trainer as rlhf
from superhf.config.rlhf import RLHFConfig
from superhf.models import load_causal_lm, load_tokenizer
from superhf.ppo_core import FixedKLController
from superhf.stages import rlhf as rlhf_stage
from superhf.trainer_loop import Trainee
from superhf.training import make_accelerator


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_tiny_models(tmp_path_factory.mktemp("tiny"))


def cfg(**kw) -> RLHFConfig:
    base = {"num_prompts": 8, "batch_size": 8, "minibatch_size": 4, "ppo_epochs": 2,
            "optim": {"lr": 1e-3, "scheduler": "constant", "warmup_steps": 0},
            "generation": TINY_GEN, "checkpoint_every": 5}  # fmt: skip
    base.update(kw)
    return RLHFConfig.model_validate(base)


class CountE:
    """A reward that is a simple function of the text: how many 'e's it has."""

    def score(self, prompts, completions):
        return [c.count("e") / 4 for c in completions]


def test_one_ppo_step_changes_the_policy(tiny, tmp_path) -> None:
    policy, reward = tiny
    before = {k: v.clone() for k, v in load_causal_lm(policy).named_parameters()}
    model, _, history, _, _ = rlhf.train(cfg(), policy, reward, PROMPTS, tmp_path / "ck")
    after = dict(model.policy.named_parameters())
    changed = [k for k, v in before.items() if not torch.equal(v, after[k].detach())]
    assert len(changed) >= len(before) - 1  # all but, at most, an unused embedding row set
    assert torch.any(model.value_head.weight != 0)
    h = history[0]
    assert h["kl"] == pytest.approx(0.0, abs=1e-5)  # rollouts come from the reference itself
    assert 0 <= h["pg_clipfrac"] <= 1 and h["entropy"] > 0


@pytest.mark.slow
def test_ppo_raises_a_simple_reward(tiny, tmp_path) -> None:
    policy, reward = tiny
    c = cfg(num_prompts=16 * 40, batch_size=16, minibatch_size=8, ppo_epochs=4, init_kl_coef=0.01,
            optim={"lr": 3e-3, "scheduler": "constant", "warmup_steps": 0}, checkpoint_every=100)  # fmt: skip
    _, _, history, _, _ = rlhf.train(c, policy, reward, PROMPTS, tmp_path / "ck", scorer=CountE())
    r = [h["reward_mean"] for h in history]
    first, last = sum(r[:10]) / 10, sum(r[-10:]) / 10
    assert last > first + 0.25, (first, last)


def test_stage_main_writes_model_and_metrics(tiny, tmp_path) -> None:
    policy, reward = tiny
    params = write_params(
        tmp_path / "p.yaml", rlhf=json.loads(cfg(num_prompts=16).model_dump_json())
    )
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    out = tmp_path / "out"
    rlhf_stage.main(["--params", str(params), "--policy", str(policy), "--reward", str(reward),
               "--prompts", str(prompts), "--out", str(out), "--checkpoints", str(tmp_path / "ck"),
               "--metrics", str(tmp_path / "m.json"), "--curve", str(tmp_path / "c.csv"),
               "--samples", str(tmp_path / "s.jsonl")])  # fmt: skip
    model = load_causal_lm(out)
    assert set(model.state_dict()) == set(load_causal_lm(policy).state_dict())  # no value head
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["ppo_steps"] == 2 and "superbatches" not in m
    # step 0's rollouts come from the reference (KL 0, below target 6): the adaptive
    # controller lowers the coefficient by the clipped error 0.2 x 8 rollouts / horizon
    assert m["kl_coef_final"] == pytest.approx(0.2 * (1 - 0.2 * 8 / 10000), rel=1e-6)
    assert "pg_loss" in (tmp_path / "c.csv").read_text().splitlines()[0]


def test_reusing_the_rollout_forward_gives_the_same_update(tiny) -> None:
    """One minibatch per epoch: the first epoch's forward doubles as the rollout forward.
    Running it once must give the weights and statistics of running it twice."""
    policy, _ = tiny
    tok = load_tokenizer(policy)
    c = cfg(batch_size=4, minibatch_size=4, ppo_epochs=2)
    texts = [" I can help with that.", " No.", " Boil it in water for ten minutes", " "]
    responses = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    ids, attn, mask = ppo_rollout.rollout_batch(tok, PROMPTS, responses, 64)
    scores = torch.tensor([0.5, -1.0, 2.0, 0.0])
    acc = make_accelerator("fp32")
    results = []
    for reuse in (True, False):
        torch.manual_seed(0)
        model = ppo_policy.PolicyWithValueHead(load_causal_lm(policy)).train()
        ref = load_causal_lm(policy).eval()
        # plain SGD: Adam would blow float noise in exactly-zero gradients (the key bias)
        # up to lr-sized steps and hide what is compared
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
        kl_ctl = {"kl_ctl": FixedKLController(0.2)}
        t = Trainee(c, acc, model, tok, opt, sched, scorer=None, ref=ref, extra=kl_ctl)
        stats = ppo_update.ppo_step(t, ids, attn, mask, scores, 0, reuse_forward=reuse)
        results.append((stats, {k: v.detach().clone() for k, v in model.named_parameters()}))
    (s1, p1), (s2, p2) = results
    assert any(not torch.equal(v, load_causal_lm(policy).state_dict().get(k[len("policy."):], v))
               for k, v in p1.items())  # fmt: skip
    for k in p1:
        assert torch.allclose(p1[k], p2[k], atol=1e-6), k
    for k in ("pg_loss", "vf_loss", "approx_kl", "entropy", "kl"):
        assert s1[k] == pytest.approx(s2[k], abs=1e-5), k


def test_adaptive_kl_controller_moves_towards_the_target() -> None:
    from superhf.ppo_core import AdaptiveKLController

    above = AdaptiveKLController(0.2, target=6.0, horizon=100.0)
    above.update(9.0, 10)  # KL 1.5x target: error +0.5, clipped to +0.2
    assert above.value == pytest.approx(0.2 * (1 + 0.2 * 10 / 100))
    below = AdaptiveKLController(0.2, target=6.0, horizon=100.0)
    below.update(4.5, 10)  # KL 0.75x target: error -0.25, clipped to -0.2
    assert below.value == pytest.approx(0.2 * (1 - 0.2 * 10 / 100))
    near = AdaptiveKLController(0.2, target=6.0, horizon=100.0)
    near.update(6.6, 10)  # error +0.1, within the clip
    assert near.value == pytest.approx(0.2 * (1 + 0.1 * 10 / 100))
    fixed = FixedKLController(0.2)
    fixed.update(100.0, 10)
    assert fixed.value == 0.2


def test_stage_with_a_fixed_kl_coefficient_keeps_it(tiny, tmp_path) -> None:
    """adap_kl_ctrl: false end to end: every step uses init_kl_coef, the run ends with it."""
    policy, reward = tiny
    c = cfg(num_prompts=16, adap_kl_ctrl=False, init_kl_coef=0.05)
    params = write_params(tmp_path / "p.yaml", rlhf=json.loads(c.model_dump_json()))
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    rlhf_stage.main(["--params", str(params), "--policy", str(policy), "--reward", str(reward),
                     "--prompts", str(prompts), "--out", str(tmp_path / "out"), "--checkpoints", str(tmp_path / "ck"),
                     "--metrics", str(tmp_path / "m.json"), "--curve", str(tmp_path / "c.csv"),
                     "--samples", str(tmp_path / "s.jsonl")])  # fmt: skip
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["kl_coef_final"] == 0.05
    import csv

    rows = list(csv.DictReader((tmp_path / "c.csv").open()))
    assert [float(r["kl_coef"]) for r in rows] == [0.05, 0.05]
    assert float(rows[1]["kl"]) != 0.0  # the policy moved, yet the coefficient did not


def test_a_remainder_of_prompts_is_one_smaller_last_ppo_step(tiny, tmp_path) -> None:
    policy, reward = tiny
    c = cfg(num_prompts=6, batch_size=4, minibatch_size=2, ppo_epochs=1)
    _, _, history, _, _ = rlhf.train(c, policy, reward, PROMPTS, tmp_path / "ck", scorer=CountE())
    assert [h["prompts"] for h in history] == [4, 2]  # exactly num_prompts, not rounded up
