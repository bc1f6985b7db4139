from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import PROMPTS, TINY_GEN, kill_after_checkpoint, make_tiny_models, write_params
from safetensors.torch import load_file

from superhf import superhf_trainer as superhf_train
from superhf.config.superhf import SuperHFConfig
from superhf.generation import Completion
from superhf.models import load_causal_lm
from superhf.stages import superhf as superhf_stage


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_tiny_models(tmp_path_factory.mktemp("tiny"))


def cfg(**kw) -> SuperHFConfig:
    base = {"num_prompts": 1, "superbatch_size": 6, "top_k": 1, "minibatch_size": 2,
            "optim": {"lr": 1e-2, "warmup_steps": 0}, "generation": TINY_GEN, "checkpoint_every": 1}  # fmt: skip
    base.update(kw)
    return SuperHFConfig.model_validate(base)


def test_one_superbatch_changes_every_parameter_and_keeps_the_best(tiny, tmp_path) -> None:
    policy, reward = tiny
    before = {k: v.clone() for k, v in load_causal_lm(policy).named_parameters()}
    model, _, history, samples, _ = superhf_train.train(
        cfg(), policy, reward, PROMPTS[:1], tmp_path / "ck"
    )
    after = dict(model.named_parameters())
    unchanged = [k for k, v in before.items() if torch.equal(v, after[k].detach())]
    assert not unchanged
    row = history[0]
    assert row["reward_kept"] == pytest.approx(row["reward_max"])  # top-1 is the best of S
    assert samples[0]["reward"] == pytest.approx(row["reward_max"])


def test_top_k_keeps_k_per_prompt_and_kl_is_logged(tiny, tmp_path, monkeypatch) -> None:
    policy, reward = tiny

    # rewards fall with the row index, so a top-K taken across prompts would keep 2K rows of
    # the first prompt and none of the second; non-empty completions so all S are eligible
    def fake_sample(m, t, rows, g):
        ids = [t(f" w{i}", add_special_tokens=False)["input_ids"] for i in range(len(rows))]
        return [Completion(f"w{i}", x, x) for i, x in enumerate(ids)]

    monkeypatch.setattr(superhf_train, "sample_completions", fake_sample)
    monkeypatch.setattr(superhf_train.RewardScorer, "score",
                        lambda self, p, c: [-float(i) for i in range(len(c))])  # fmt: skip
    c = cfg(prompt_accumulation=2, top_k=2, kl_coef=0.1, num_prompts=4, minibatch_size=4)
    _, _, history, _, _ = superhf_train.train(c, policy, reward, PROMPTS, tmp_path / "ck")
    assert len(history) == 2
    for h in history:
        assert (h["prompts"], h["kept"], h["kept_per_prompt_max"]) == (2, 4, 2)
        # kept: rows 0, 1 of prompt 0 (0, -1) and rows 6, 7 of prompt 1 (-6, -7)
        assert h["reward_kept"] == pytest.approx(-3.5)
    assert history[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # the policy starts at the reference
    assert history[1]["kl"] > 0


def test_a_remainder_of_prompts_is_one_smaller_last_superbatch(tiny, tmp_path) -> None:
    policy, reward = tiny
    c = cfg(prompt_accumulation=2, num_prompts=3)
    _, _, history, _, _ = superhf_train.train(c, policy, reward, PROMPTS, tmp_path / "ck")
    assert [h["prompts"] for h in history] == [2, 1]  # exactly num_prompts, not rounded up


def test_lora_trains_only_adapters_and_saves_a_plain_model(tiny, tmp_path) -> None:
    policy, reward = tiny
    params = write_params(tmp_path / "p.yaml", superhf=json.loads(cfg(
        lora={"enabled": True, "r": 2, "alpha": 4, "target_modules": ["query_key_value"]}, kl_coef=0.1
    ).model_dump_json()))  # fmt: skip
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    out = tmp_path / "out"
    superhf_stage.main(["--params", str(params), "--policy", str(policy), "--reward", str(reward),
                        "--prompts", str(prompts), "--out", str(out), "--checkpoints", str(tmp_path / "ck"),
                        "--metrics", str(tmp_path / "m.json"), "--curve", str(tmp_path / "c.csv"),
                        "--samples", str(tmp_path / "s.jsonl")])  # fmt: skip
    merged = load_causal_lm(out)
    base = load_causal_lm(policy)
    assert set(merged.state_dict()) == set(base.state_dict())  # no adapter keys left
    diff = {k for k, v in merged.state_dict().items() if not torch.equal(v, base.state_dict()[k])}
    assert diff and all("query_key_value" in k for k in diff)
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["superbatches"] == 1 and "reward_gain" in m
    assert (tmp_path / "c.csv").read_text().startswith("step,reward_mean")


def test_nan_reward_stops_with_a_clear_message(tiny, tmp_path, monkeypatch) -> None:
    policy, reward = tiny
    from superhf import reward as reward_mod

    monkeypatch.setattr(
        reward_mod.RewardScorer, "_score_uncached", lambda self, p, c: [float("nan")] * len(p)
    )
    with pytest.raises(FloatingPointError, match="non-finite"):
        superhf_train.train(cfg(), policy, reward, PROMPTS, tmp_path / "ck")


def test_nan_loss_keeps_the_last_checkpoint(tiny, tmp_path, monkeypatch) -> None:
    """One run, one folder: the loss turns NaN after the checkpoint of step 2 was written."""
    policy, reward = tiny
    real = superhf_train.superhf_loss
    calls = {"n": 0}

    def nan_on_third_superbatch(*a, **k):
        calls["n"] += 1
        loss, nll, kl = real(*a, **k)
        return (loss * float("nan") if calls["n"] == 3 else loss), nll, kl

    monkeypatch.setattr(superhf_train, "superhf_loss", nan_on_third_superbatch)
    c = cfg(num_prompts=4)  # one minibatch per superbatch: call 3 is superbatch 3
    with pytest.raises(FloatingPointError, match="loss is nan at step 2"):
        superhf_train.train(c, policy, reward, PROMPTS, tmp_path / "ck")
    meta = json.loads((tmp_path / "ck" / "meta.json").read_text())
    assert meta["step"] == 2 and len(meta["state"]["history"]) == 2
    saved = load_file(tmp_path / "ck" / "model.safetensors")

    # Checkpointer.load restores exactly those weights and says where to resume
    from superhf.checkpoints import Checkpointer
    from superhf.training import build_optimizer, make_accelerator

    acc = make_accelerator()
    model = load_causal_lm(policy)
    opt, sched = build_optimizer(model, c.optim, 4)
    fp = json.loads((tmp_path / "ck" / "meta.json").read_text())["fingerprint"]
    step, state = Checkpointer(tmp_path / "ck", fp, acc).load(model, opt, sched)
    assert step == 2 and [h["step"] for h in state["history"]] == [0, 1]
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items() if k in saved)
    assert any(
        not torch.equal(v, load_file(policy / "model.safetensors")[k]) for k, v in saved.items()
    )


def stage_cmd(
    tmp_path: Path, policy: Path, reward: Path, params: Path, out: Path, ck: Path
) -> list[str]:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    return [sys.executable, "-m", "superhf.stages.superhf", "--params", str(params), "--policy", str(policy),
            "--reward", str(reward), "--prompts", str(prompts), "--out", str(out), "--checkpoints", str(ck),
            "--metrics", str(tmp_path / "m.json"), "--curve", str(tmp_path / "c.csv"),
            "--samples", str(tmp_path / "s.jsonl")]  # fmt: skip


@pytest.mark.slow
def test_resume_after_kill_gives_identical_weights(tiny, tmp_path) -> None:
    policy, reward = tiny
    c = json.loads(cfg(num_prompts=8, superbatch_size=4).model_dump_json())
    params = write_params(tmp_path / "p.yaml", superhf=c)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    full = stage_cmd(tmp_path, policy, reward, params, tmp_path / "full", tmp_path / "ck_full")
    subprocess.run(full, check=True, env=env, capture_output=True)

    killed = stage_cmd(tmp_path, policy, reward, params, tmp_path / "resumed", tmp_path / "ck_kill")
    meta = tmp_path / "ck_kill" / "meta.json"
    step_at_kill = kill_after_checkpoint(killed, env, meta)["step"]
    assert 3 <= step_at_kill < 8 and not (tmp_path / "resumed").exists()
    subprocess.run(killed, check=True, env=env, capture_output=True)  # the rerun resumes

    a = load_file(tmp_path / "full" / "model.safetensors")
    b = load_file(tmp_path / "resumed" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    first = load_file(policy / "model.safetensors")
    assert any(not torch.equal(a[k], first[k]) for k in a)
