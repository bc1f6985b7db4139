"""Issue 22, section 4: smaller faults found in a review. The checkpoint fingerprint
covers the prompts' content; SuperHF's gradient-accumulation scales and trained-token
count; lm-eval tasks without lm-eval fail before any work."""

from __future__ import annotations

import pytest
from helpers import PROMPTS, TINY_GEN, make_tiny_models

from superhf import ppo_trainer as rlhf
from superhf import superhf_trainer as shf
from superhf.config.rlhf import RLHFConfig
from superhf.config.superhf import SuperHFConfig
from superhf.core import accumulation_scales
from superhf.generation import Completion
from superhf.models import load_causal_lm, load_tokenizer
from superhf.trainer_loop import Trainee
from superhf.training import build_optimizer, make_accelerator


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    return make_tiny_models(tmp_path_factory.mktemp("tiny"))


def shf_cfg(**kw) -> SuperHFConfig:
    base = {"num_prompts": 2, "superbatch_size": 2, "top_k": 1, "minibatch_size": 1,
            "checkpoint_every": 1, "optim": {"lr": 1e-3, "warmup_steps": 0},
            "generation": TINY_GEN}  # fmt: skip
    return SuperHFConfig.model_validate({**base, **kw})


def ppo_cfg(**kw) -> RLHFConfig:
    base = {"num_prompts": 4, "batch_size": 2, "minibatch_size": 2, "ppo_epochs": 1,
            "checkpoint_every": 1, "optim": {"lr": 1e-3, "scheduler": "constant", "warmup_steps": 0},
            "generation": TINY_GEN}  # fmt: skip
    return RLHFConfig.model_validate({**base, **kw})


@pytest.mark.parametrize("method", ["superhf", "rlhf"])
def test_a_checkpoint_of_other_prompts_with_the_same_count_is_not_resumed(tiny, tmp_path,
                                                                         monkeypatch, method):  # fmt: skip
    """A run leaves a checkpoint after its first step; a run on other prompts (same count,
    as after ``prepare`` changed the data) must start fresh, not continue on the old ones."""
    policy, reward = tiny
    mod, step_fn, cfg = ((shf, "_superbatch", shf_cfg()) if method == "superhf"
                         else (rlhf, "_ppo_iteration", ppo_cfg()))  # fmt: skip
    mod.train(cfg, policy, reward, PROMPTS, tmp_path / "ck")
    steps: list[int] = []
    real = getattr(mod, step_fn)
    monkeypatch.setattr(mod, step_fn, lambda *a: steps.append(a[-1]) or real(*a))
    other = [p.replace("?", "!") for p in PROMPTS]
    mod.train(cfg, policy, reward, other, tmp_path / "ck")
    assert steps == [0, 1]  # every step on the new prompts, none skipped as done
    steps.clear()
    mod.train(cfg, policy, reward, other, tmp_path / "ck")  # the same prompts do resume
    assert steps == [1]


def test_accumulation_scales_average_over_real_minibatches_of_each_group() -> None:
    # one process: a last, shorter group is divided by its own size, not the full count
    assert accumulation_scales([3], 2) == pytest.approx([0.5, 0.5, 1.0])
    assert accumulation_scales([4], 1) == pytest.approx([1.0] * 4)
    # two processes, DDP averages over both: where one has run out (a zero-weight filler),
    # the other's real minibatch must count double, not half
    assert accumulation_scales([2, 1], 1) == pytest.approx([1.0, 2.0])
    assert accumulation_scales([3, 1], 2) == pytest.approx([2 / 3, 2 / 3, 2.0])

    def plain(per_process, acc):  # the definition, one (process, minibatch) pair at a time
        n = max(per_process)
        out = []
        for m in range(n):
            group = [j for j in range(n) if j // acc == m // acc]
            real = sum(1 for k in per_process for j in group if j < k)
            out.append(len(per_process) / real)
        return out

    for per, a in (([5, 3, 4], 2), ([7], 3), ([2, 2], 4), ([1, 6], 4)):
        assert accumulation_scales(per, a) == pytest.approx(plain(per, a))


def test_finetune_scales_and_counts_only_completion_tokens(tiny, monkeypatch) -> None:
    """Three kept rows, minibatch 1, gradient_accumulation 2: the backward scales are
    1/2, 1/2 and 1 (the last group has one minibatch); tokens_trained counts the targets."""
    policy, _ = tiny
    cfg = shf_cfg(minibatch_size=1, gradient_accumulation=2, append_eos=False, measure_kl=False)
    acc = make_accelerator()
    tok = load_tokenizer(policy)
    model = load_causal_lm(policy).train()
    opt, sched = build_optimizer(model, cfg.optim, 2)
    model, opt = acc.prepare(model, opt)
    kept = [(0, Completion("x", [5, 6, 7], [5, 6, 7]), 1.0) for _ in range(3)]
    losses: list[float] = []
    real = shf._minibatch_loss
    monkeypatch.setattr(shf, "_minibatch_loss",
                        lambda *a: (lambda out: losses.append(out[0].item()) or out)(real(*a)))  # fmt: skip
    scaled: list[float] = []
    monkeypatch.setattr(acc, "backward", lambda loss: scaled.append(loss.item()) or loss.backward())
    t = Trainee(cfg, acc, model, tok, opt, sched, scorer=None, extra={"measure_kl": False})
    *_, n_tokens = shf._finetune(t, [PROMPTS[0]], kept, 0)
    assert [s / x for s, x in zip(scaled, losses)] == pytest.approx([0.5, 0.5, 1.0])
    assert n_tokens == 9  # 3 rows x 3 completion tokens; the prompt is not trained on
