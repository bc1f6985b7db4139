"""Issue 12, parts 3, 4 and 6 and the acceptance run: the linked run's penalties, TRL 0.4's
per-minibatch whitening, the schedule per PPO step, SuperHF's KL measured (or NaN), and
the tiny profile end to end in raw format with paper trimming and upstream reward input."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from helpers import PROMPTS, TINY_GEN, make_tiny_models, write_params

from superhf import ppo_trainer as rlhf
from superhf import ppo_update
from superhf import superhf_trainer as shf
from superhf.config.rlhf import RLHFConfig
from superhf.config.superhf import SuperHFConfig
from superhf.core import length_penalised, superhf_loss
from superhf.profile import resolve


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_tiny_models(tmp_path_factory.mktemp("tiny"))


def test_length_penalty_is_c_log_chars() -> None:
    got = length_penalised([1.0, 1.0, 0.5], ["abcd", "", "x" * 100], 0.01)
    assert got == pytest.approx([1 - 0.01 * math.log(4), 1.0, 0.5 - 0.01 * math.log(100)])
    assert length_penalised([1.0], ["abc"], 0.0) == [1.0]


def test_inverse_loss_penalty_adds_c_over_loss() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 11, generator=g)
    labels = torch.tensor([[-100, -100, 3, 4, 5], [-100, 1, 2, 3, 4]])
    plain, _, _ = superhf_loss(logits, labels)
    pen, _, _ = superhf_loss(logits, labels, inverse_loss_penalty=0.01)
    assert pen.item() == pytest.approx(plain.item() + 0.01 / plain.item())


def test_kl_is_nan_without_a_reference_never_zero() -> None:
    logits = torch.randn(1, 4, 7)
    labels = torch.tensor([[-100, 1, 2, 3]])
    _, _, kl = superhf_loss(logits, labels)
    assert torch.isnan(kl).all()
    _, _, kl = superhf_loss(logits, labels, ref_logits=logits + torch.randn(1, 4, 7))
    assert (kl > 0).all()  # measured with kl_coef 0
    with pytest.raises(ValueError, match="reference"):
        superhf_loss(logits, labels, kl_coef=0.1)


def shf_cfg(**kw) -> SuperHFConfig:
    base = {"num_prompts": 2, "superbatch_size": 4, "top_k": 2, "minibatch_size": 2,
            "optim": {"lr": 1e-2, "warmup_steps": 0}, "generation": TINY_GEN}  # fmt: skip
    return SuperHFConfig.model_validate({**base, **kw})


def test_superhf_kl_is_measured_with_kl_coef_zero_or_nan(tiny, tmp_path) -> None:
    policy, reward = tiny
    _, _, measured, _, _ = shf.train(shf_cfg(), policy, reward, PROMPTS, tmp_path / "a")
    assert measured[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # the policy is the reference
    assert measured[1]["kl"] > 1e-6  # after one update it is not
    _, _, off, _, _ = shf.train(shf_cfg(measure_kl=False), policy, reward, PROMPTS, tmp_path / "b")
    assert all(math.isnan(h["kl"]) for h in off)
    # the loss (and so training) is the same whether KL is measured or not
    assert [h["loss"] for h in off] == pytest.approx([h["loss"] for h in measured], rel=1e-5)


def test_superhf_length_penalty_is_in_the_logged_reward(tiny, tmp_path) -> None:
    policy, reward = tiny
    _, _, h, _, _ = shf.train(shf_cfg(length_penalty=0.5, num_prompts=1), policy, reward,
                              PROMPTS, tmp_path / "a")  # fmt: skip
    assert h[0]["reward_mean"] < h[0]["reward_model_mean"]


def ppo_cfg(**kw) -> RLHFConfig:
    base = {"num_prompts": 8, "batch_size": 8, "minibatch_size": 2, "ppo_epochs": 1,
            "optim": {"lr": 1e-3, "scheduler": "constant", "warmup_steps": 0},
            "generation": TINY_GEN}  # fmt: skip
    return RLHFConfig.model_validate({**base, **kw})


@pytest.mark.parametrize("mode", ["batch", "minibatch"])
def test_advantages_are_whitened_per_batch_or_per_minibatch(tiny, tmp_path, monkeypatch, mode):
    policy, reward = tiny
    rows: list[int] = []
    real = ppo_update.masked_whiten  # looked up in ppo_update at call time
    monkeypatch.setattr(
        ppo_update, "masked_whiten", lambda x, m, *a: rows.append(len(x)) or real(x, m, *a)
    )
    rlhf.train(ppo_cfg(whiten_advantages=mode), policy, reward, PROMPTS, tmp_path / "ck")
    assert rows == ([8] if mode == "batch" else [2, 2, 2, 2])


def test_ppo_linear_schedule_with_warmup_steps_once_per_ppo_step(tiny, tmp_path) -> None:
    policy, reward = tiny
    c = ppo_cfg(
        num_prompts=32, batch_size=4, optim={"lr": 1e-3, "scheduler": "linear", "warmup_steps": 4}
    )
    _, _, h, _, _ = rlhf.train(c, policy, reward, PROMPTS, tmp_path / "ck")
    assert len(h) == 8
    # the lr each PPO step used: warmup over 4 steps, then linear to 0 at step 8
    want = [0.0, 2.5e-4, 5e-4, 7.5e-4, 1e-3, 7.5e-4, 5e-4, 2.5e-4]
    assert [r["lr"] for r in h] == pytest.approx(want)


def test_tiny_profile_raw_paper_trim_upstream_runs_end_to_end(tiny, tmp_path, monkeypatch) -> None:
    """Acceptance: SuperHF and PPO, stage entry points, raw prompts, paper trimming, the
    reward model fed upstream's string (preamble + prompt + " " + completion)."""
    from superhf import reward as reward_mod
    from superhf.stages import rlhf as rlhf_stage
    from superhf.stages import superhf as superhf_stage

    encoded: list[tuple[str, list[str], list[str]]] = []  # what the reward model was fed
    real_encode = reward_mod.encode

    def spy(tokenizer, prompts, completions, input_format, max_length):
        encoded.append((input_format, list(prompts), list(completions)))
        return real_encode(tokenizer, prompts, completions, input_format, max_length)

    monkeypatch.setattr(reward_mod, "encode", spy)
    policy, reward = tiny
    up = tmp_path / "reward_upstream"
    shutil.copytree(reward, up)
    meta = json.loads((up / "superhf_meta.json").read_text())
    (up / "superhf_meta.json").write_text(json.dumps({**meta, "input_format": "upstream"}))
    p = resolve("tiny")
    for section in ("superhf", "rlhf"):
        p[section]["generation"].update(trim="paper", prompt_format="raw", preamble="Be kind.")
    p["superhf"]["generation"]["top_k"] = 50  # PPO samples unwarped (on-policy), as paper-run
    p["superhf"].update(append_eos=False, length_penalty=0.01, inverse_loss_penalty=0.01)
    p["rlhf"]["whiten_advantages"] = "minibatch"
    params = write_params(tmp_path / "p.yaml", superhf=p["superhf"], rlhf=p["rlhf"])
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": q}) + "\n" for q in PROMPTS))
    for stage, main in (("superhf", superhf_stage.main), ("rlhf", rlhf_stage.main)):
        out = tmp_path / stage
        main(["--params", str(params), "--policy", str(policy), "--reward", str(up),
              "--prompts", str(prompts), "--out", str(out), "--checkpoints", str(tmp_path / f"ck-{stage}"),
              "--metrics", str(out) + ".json", "--curve", str(out) + ".csv",
              "--samples", str(out) + ".jsonl"])  # fmt: skip
        m = json.loads(Path(str(out) + ".json").read_text())
        assert math.isfinite(m["reward_final"]) and (out / "model.safetensors").is_file()
        samples = [json.loads(x) for x in Path(str(out) + ".jsonl").read_text().splitlines()]
        # paper trimming: single-line answers without quotes or hyphens
        assert samples and all(not set('\n"-') & set(s["completion"]) for s in samples)
        # the reward model got upstream's one string: preamble + a training prompt
        assert encoded and all(f == "upstream" for f, _, _ in encoded)
        assert all(q.startswith("Be kind.\n\nHuman:") for _, qs, _ in encoded for q in qs)
        encoded.clear()
