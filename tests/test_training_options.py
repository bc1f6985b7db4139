"""Options of the two trainers that had no test: gradient accumulation, max_grad_norm, bf16,
whiten_scores, LoRA under PPO, the chat-template prompt path, shared prefill with sampling,
checkpoints from other params or process counts, and run-to-run determinism."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest
import torch
from helpers import PROMPTS, TINY_GEN, make_tiny_models, write_params
from safetensors.torch import load_file

from superhf import ppo_policy, ppo_rollout, ppo_trainer, ppo_update, superhf_trainer
from superhf.checkpoints import Checkpointer
from superhf.config.common import GenerationConfig
from superhf.config.rlhf import RLHFConfig
from superhf.config.superhf import SuperHFConfig
from superhf.generation import generate
from superhf.models import load_causal_lm, load_tokenizer
from superhf.ppo_core import FixedKLController
from superhf.prompting import format_prompt
from superhf.stages import rlhf as rlhf_stage
from superhf.stages import superhf as superhf_stage
from superhf.tiny import tiny_causal_lm, tiny_tokenizer
from superhf.trainer_loop import Trainee
from superhf.training import build_optimizer, make_accelerator


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_tiny_models(tmp_path_factory.mktemp("tiny"))


def shf(**kw) -> SuperHFConfig:
    base = {"num_prompts": 1, "superbatch_size": 4, "top_k": 2, "minibatch_size": 2,
            "optim": {"lr": 1e-2, "warmup_steps": 0, "scheduler": "constant"},
            "generation": TINY_GEN, "checkpoint_every": 1}  # fmt: skip
    base.update(kw)
    return SuperHFConfig.model_validate(base)


def ppo(**kw) -> RLHFConfig:
    base = {"num_prompts": 4, "batch_size": 4, "minibatch_size": 2, "ppo_epochs": 1,
            "optim": {"lr": 1e-3, "scheduler": "constant", "warmup_steps": 0},
            "generation": TINY_GEN, "checkpoint_every": 5}  # fmt: skip
    base.update(kw)
    return RLHFConfig.model_validate(base)


def sgd(lr: float):
    """build_optimizer stand-in: plain SGD, so updates can be compared exactly (Adam's first
    step is ~lr x sign(g) and blows float noise in near-zero gradients up to lr-sized steps)."""

    def build(model, cfg, total):
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr)
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)

    return build


def params_of(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def test_gradient_accumulation_equals_one_bigger_minibatch(tiny, tmp_path, monkeypatch) -> None:
    policy, reward = tiny
    monkeypatch.setattr(superhf_trainer, "build_optimizer", sgd(0.5))
    steps = []
    real_step = torch.optim.SGD.step
    monkeypatch.setattr(
        torch.optim.SGD, "step", lambda self, *a: steps.append(1) or real_step(self, *a)
    )
    # K=2 kept rows: two minibatches of 1 accumulated into one step vs one minibatch of 2
    acc2, _, h2, _, _ = superhf_trainer.train(shf(minibatch_size=1, gradient_accumulation=2),
                                              policy, reward, PROMPTS, tmp_path / "a")  # fmt: skip
    assert len(steps) == 1
    one, _, h1, _, _ = superhf_trainer.train(
        shf(minibatch_size=2), policy, reward, PROMPTS, tmp_path / "b"
    )
    assert len(steps) == 2 and h1[0]["reward_kept"] == h2[0]["reward_kept"]  # same samples
    start = params_of(load_causal_lm(policy))
    a, b = params_of(acc2), params_of(one)
    assert any(not torch.equal(a[k], start[k]) for k in a)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k
    # without accumulation the two minibatches are two steps
    superhf_trainer.train(shf(minibatch_size=1), policy, reward, PROMPTS, tmp_path / "c")
    assert len(steps) == 4


def test_max_grad_norm_bounds_the_update(tiny, tmp_path, monkeypatch) -> None:
    policy, reward = tiny
    lr, clip = 0.5, 1e-3
    monkeypatch.setattr(superhf_trainer, "build_optimizer", sgd(lr))
    c = shf(top_k=1, optim={"lr": 1e-2, "warmup_steps": 0, "max_grad_norm": clip})
    model, *_ = superhf_trainer.train(c, policy, reward, PROMPTS, tmp_path / "ck")
    start = params_of(load_causal_lm(policy))
    moved = torch.sqrt(sum(((v - start[k]) ** 2).sum() for k, v in params_of(model).items()))
    assert float(moved) == pytest.approx(lr * clip, rel=1e-3)  # one SGD step of norm lr x clip


def test_max_grad_norm_and_whitening_in_a_ppo_step(tiny) -> None:
    policy, _ = tiny
    tok = load_tokenizer(policy)
    texts = ["I can help with that.", "No.", "Boil it in water for ten minutes", "Yes"]
    responses = [tok(r, add_special_tokens=False)["input_ids"] for r in texts]  # as if sampled
    ids, attn, mask = ppo_rollout.rollout_batch(tok, PROMPTS, responses, 64)
    acc = make_accelerator("fp32")

    def step(c, scores, lr=0.05):
        torch.manual_seed(0)
        model = ppo_policy.PolicyWithValueHead(load_causal_lm(policy)).train()
        before = params_of(model)
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
        ref, kl_ctl = load_causal_lm(policy).eval(), {"kl_ctl": FixedKLController(0.2)}
        t = Trainee(c, acc, model, tok, opt, sched, scorer=None, ref=ref, extra=kl_ctl)
        ppo_update.ppo_step(t, ids, attn, mask, scores, 0)
        after = params_of(model)
        return after, float(torch.sqrt(sum(((after[k] - before[k]) ** 2).sum() for k in after)))

    scores = torch.tensor([0.5, -1.0, 2.0, 0.0])
    c = ppo(minibatch_size=4, optim={"lr": 0.05, "max_grad_norm": 1e-3})
    _, moved = step(c, scores)
    assert moved == pytest.approx(0.05 * 1e-3, rel=1e-3)  # one update, clipped
    # whiten_scores: scores shifted and scaled give the same update; without it they do not
    w = ppo(minibatch_size=4, whiten_scores=True)
    a, _ = step(w, scores)
    b, _ = step(w, scores * 3 + 7)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    plain = ppo(minibatch_size=4)
    c1, _ = step(plain, scores)
    c2, _ = step(plain, scores * 3 + 7)
    assert any(not torch.allclose(c1[k], c2[k], atol=1e-6) for k in c1)


@pytest.fixture
def fresh_accelerator_state():
    """Accelerate keeps one process-wide state; a bf16 run needs a fresh one (and leaves one)."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_bf16_trains_under_autocast_with_fp32_weights(
    tiny, tmp_path, fresh_accelerator_state
) -> None:
    policy, reward = tiny
    model, _, h16, _, acc = superhf_trainer.train(
        shf(optim={"lr": 1e-2, "warmup_steps": 0, "mixed_precision": "bf16"}), policy, reward,
        PROMPTS, tmp_path / "a")  # fmt: skip
    assert acc.mixed_precision == "bf16"
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32
    start = params_of(load_causal_lm(policy))
    assert any(not torch.equal(v, start[k]) for k, v in params_of(model).items())
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    _, _, h32, _, _ = superhf_trainer.train(shf(), policy, reward, PROMPTS, tmp_path / "b")
    assert h16[0]["reward_kept"] == h32[0]["reward_kept"]  # same samples (generation is fp32)
    # the same loss in bf16 is close to, but not exactly, the fp32 one: autocast was on
    assert h16[0]["loss"] != h32[0]["loss"]
    assert h16[0]["loss"] == pytest.approx(h32[0]["loss"], rel=0.05)


def test_lora_under_ppo_trains_only_the_adapter_and_saves_a_plain_model(tiny, tmp_path) -> None:
    policy, reward = tiny
    c = ppo(lora={"enabled": True, "r": 2, "alpha": 4, "target_modules": ["query_key_value"]},
            num_prompts=8)  # fmt: skip
    model, _, history, _, _ = ppo_trainer.train(c, policy, reward, PROMPTS, tmp_path / "ck")
    assert history[0]["kl"] == pytest.approx(0.0, abs=1e-5)  # reference = adapter disabled
    assert history[1]["kl"] != 0.0
    named = dict(model.policy.named_parameters())
    trainable = {k for k, v in named.items() if v.requires_grad}
    assert trainable and all("lora_" in k for k in trainable)
    params = write_params(tmp_path / "p.yaml", rlhf=json.loads(c.model_dump_json()))
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    out = tmp_path / "out"
    rlhf_stage.main(["--params", str(params), "--policy", str(policy), "--reward", str(reward),
                     "--prompts", str(prompts), "--out", str(out), "--checkpoints", str(tmp_path / "ck2"),
                     "--metrics", str(tmp_path / "m.json"), "--curve", str(tmp_path / "c.csv"),
                     "--samples", str(tmp_path / "s.jsonl")])  # fmt: skip
    merged, base = load_causal_lm(out).state_dict(), load_causal_lm(policy).state_dict()
    assert set(merged) == set(base)  # no adapter or value-head keys
    diff = {k for k in merged if not torch.equal(merged[k], base[k])}
    assert diff and all("query_key_value" in k for k in diff)


CHAT = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def test_chat_template_prompt_path(tiny, tmp_path) -> None:
    """The default profile formats prompts with the tokenizer's chat template."""
    policy, reward = tiny
    tok = load_tokenizer(policy)
    tok.chat_template = CHAT
    cfg = GenerationConfig(**{**TINY_GEN, "prompt_format": "chat", "preamble": "Be kind."})
    prompt = (
        "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: How do I boil an egg?\n\nAssistant:"
    )
    want = ("<|system|>Be kind.\n<|user|>Hi there\n<|assistant|>Hello!\n"
            "<|user|>How do I boil an egg?\n<|assistant|>")  # fmt: skip
    assert format_prompt(prompt, tok, cfg) == want
    with pytest.raises(ValueError, match="no template"):
        format_prompt(prompt, load_tokenizer(policy), cfg)
    # end to end: a policy whose tokenizer has a template trains on templated prompts
    chat_policy = tmp_path / "chat_policy"
    from superhf.models import save_model

    save_model(load_causal_lm(policy), tok, chat_policy, {"source": "tiny"})
    seen: list[str] = []
    real = superhf_trainer.sample_completions
    c = shf(generation={**TINY_GEN, "prompt_format": "chat", "preamble": ""})
    import unittest.mock as mock

    with mock.patch.object(superhf_trainer, "sample_completions",
                           lambda m, t, texts, g: seen.extend(texts) or real(m, t, texts, g)):  # fmt: skip
        superhf_trainer.train(c, chat_policy, reward, PROMPTS, tmp_path / "ck")
    assert seen and all(t.startswith("<|user|>") and t.endswith("<|assistant|>") for t in seen)


def test_shared_prefill_with_sampling_draws_what_separate_prefills_draw() -> None:
    tok = tiny_tokenizer()
    model = tiny_causal_lm(tok, seed=0)
    cfg = GenerationConfig(**{**TINY_GEN, "max_new_tokens": 12, "batch_size": 8, "top_p": 0.9})
    texts = [PROMPTS[0]] * 4 + [PROMPTS[2]] * 3 + [PROMPTS[1]]
    torch.manual_seed(7)
    shared = generate(model, tok, texts, cfg)
    torch.manual_seed(7)
    separate = generate(model, tok, texts, cfg, share_prefill=False)
    assert shared == separate
    assert len(set(shared[:4])) > 1  # sampled: one prompt's rows differ


def test_checkpoint_from_other_params_or_process_count_is_ignored(tiny, tmp_path, caplog) -> None:
    policy, reward = tiny
    superhf_trainer.train(shf(num_prompts=2), policy, reward, PROMPTS, tmp_path / "ck")
    meta = json.loads((tmp_path / "ck" / "meta.json").read_text())
    assert meta["step"] == 1  # a checkpoint after superbatch 0 is left behind
    # other params (lr): a fresh run, not the old one's history
    other = shf(num_prompts=2, optim={"lr": 5e-3, "warmup_steps": 0, "scheduler": "constant"})
    with caplog.at_level(logging.WARNING):
        _, _, history, _, _ = superhf_trainer.train(other, policy, reward, PROMPTS, tmp_path / "ck")
    assert [h["lr"] for h in history] == [5e-3, 5e-3]
    assert "other params or models" in caplog.text
    # the same params, written by another number of processes: ignored too
    superhf_trainer.train(shf(num_prompts=2), policy, reward, PROMPTS, tmp_path / "ck2")
    meta = json.loads((tmp_path / "ck2" / "meta.json").read_text())
    acc = make_accelerator()
    model = load_causal_lm(policy)
    opt, sched = build_optimizer(model, shf().optim, 2)
    assert Checkpointer(tmp_path / "ck2", meta["fingerprint"], acc).load(model, opt, sched)
    meta["world_size"] = 2
    (tmp_path / "ck2" / "meta.json").write_text(json.dumps(meta))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert (
            Checkpointer(tmp_path / "ck2", meta["fingerprint"], acc).load(model, opt, sched) is None
        )
    assert "2 processes" in caplog.text


def _stage(stage, module, section: dict, policy, reward, root: Path) -> tuple[dict, list, dict]:
    params = write_params(root / "p.yaml", **{stage: section})
    prompts = root / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    module.main(["--params", str(params), "--policy", str(policy), "--reward", str(reward),
                 "--prompts", str(prompts), "--out", str(root / "out"), "--checkpoints", str(root / "ck"),
                 "--metrics", str(root / "m.json"), "--curve", str(root / "c.csv"),
                 "--samples", str(root / "s.jsonl")])  # fmt: skip
    timing = lambda k: k.startswith("time_") or k in ("wall_seconds", "completions_per_second")  # noqa: E731
    metrics = {k: v for k, v in json.loads((root / "m.json").read_text()).items() if not timing(k)}
    curve = [
        {k: v for k, v in r.items() if not timing(k)}
        for r in csv.DictReader((root / "c.csv").open())
    ]
    return metrics, curve, load_file(root / "out" / "model.safetensors")


@pytest.mark.parametrize("stage", ["superhf", "rlhf"])
def test_a_run_twice_gives_identical_metrics_and_weights(tiny, tmp_path, stage) -> None:
    policy, reward = tiny
    if stage == "superhf":
        module, section = (
            superhf_stage,
            json.loads(shf(num_prompts=3, prompt_accumulation=2).model_dump_json()),
        )
    else:
        module, section = rlhf_stage, json.loads(ppo(num_prompts=6, ppo_epochs=2).model_dump_json())
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    m1, c1, w1 = _stage(stage, module, section, policy, reward, tmp_path / "a")
    m2, c2, w2 = _stage(stage, module, section, policy, reward, tmp_path / "b")
    assert m1 == m2 and c1 == c2 and len(c1) == 2
    assert (tmp_path / "a" / "s.jsonl").read_text() == (tmp_path / "b" / "s.jsonl").read_text()
    assert w1.keys() == w2.keys() and all(torch.equal(w1[k], w2[k]) for k in w1)
    start = load_file(policy / "model.safetensors")
    assert any(not torch.equal(w1[k], start[k]) for k in start)
