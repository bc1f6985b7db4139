"""RLOO and GRPO on SuperHF's superbatch: the same completions and scores at step 0 (only
the update differs), the on-policy sampler rule, the disabled switch, kill -9 resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import PROMPTS, TINY_GEN, kill_after_checkpoint, make_tiny_models, write_params
from pydantic import ValidationError
from safetensors.torch import load_file

from superhf import pg_trainer, superhf_trainer
from superhf.config.common import GenerationConfig
from superhf.config.group_pg import GRPOConfig, RLOOConfig
from superhf.config.superhf import SuperHFConfig
from superhf.models import is_disabled
from superhf.reward import RewardScorer
from superhf.stages import rloo as rloo_stage

SHARED = {"num_prompts": 2, "superbatch_size": 4, "prompt_accumulation": 2, "seed": 3,
          "generation": TINY_GEN, "optim": {"lr": 1e-2, "warmup_steps": 0}}  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_tiny_models(tmp_path_factory.mktemp("tiny"))


def test_superhf_rloo_grpo_see_identical_completions_and_scores_at_step_0(
    tiny, tmp_path, monkeypatch
) -> None:
    policy, reward = tiny
    seen: dict[str, list] = {}
    score = RewardScorer.score

    def spy(self, prompts, completions):
        out = score(self, prompts, completions)
        seen.setdefault(current, []).append((list(prompts), list(completions), list(out)))
        return out

    monkeypatch.setattr(RewardScorer, "score", spy)
    runs = {
        "superhf": (superhf_trainer.train, SuperHFConfig.model_validate({**SHARED, "minibatch_size": 2})),
        "rloo": (pg_trainer.train, RLOOConfig.model_validate({**SHARED, "minibatch_size": 4})),
        "grpo": (pg_trainer.train, GRPOConfig.model_validate({**SHARED, "minibatch_size": 4})),
    }  # fmt: skip
    weights = {}
    for current, (train, cfg) in runs.items():  # noqa: B007 - read by spy
        model, *_ = train(cfg, policy, reward, PROMPTS, tmp_path / f"ck_{current}")
        weights[current] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    first = {name: calls[0] for name, calls in seen.items()}
    assert len(first["superhf"][1]) == 8  # 2 prompts x S = 4 completions, all scored
    assert first["superhf"] == first["rloo"] == first["grpo"]
    start = load_file(policy / "model.safetensors")
    keys = [k for k in start if k in weights["rloo"]]  # tied weights are saved once
    assert keys
    for name in ("rloo", "grpo"):  # the update did something, and not the same thing
        assert any(not torch.equal(weights[name][k], start[k]) for k in keys)
    assert any(not torch.equal(weights["rloo"][k], weights["grpo"][k]) for k in keys)


def test_the_presets_are_the_papers() -> None:
    r, g = RLOOConfig(), GRPOConfig()
    assert (r.advantage, r.kl_in, r.kl_coef, r.cliprange, r.update_epochs, r.aggregation) == (
        "leave_one_out", "reward", 0.05, None, 1, "sequence_sum")  # fmt: skip
    assert (g.advantage, g.kl_in, g.kl_coef, g.cliprange, g.aggregation) == (
        "group_normalised", "loss", 0.04, 0.2, "sequence_mean")  # fmt: skip
    for section in (RLOOConfig, GRPOConfig):  # every field documented
        assert all(f.description for f in section.model_fields.values())


@pytest.mark.parametrize("key,value", [("top_p", 0.9), ("top_k", 50), ("temperature", 0.7),
                                       ("repetition_penalty", 1.05)])  # fmt: skip
def test_a_distribution_changing_sampler_is_refused(key: str, value) -> None:
    gen = {**TINY_GEN, key: value}
    GenerationConfig.model_validate(gen)  # an ordinary sampler setting, refused only here:
    for cls in (RLOOConfig, GRPOConfig):
        with pytest.raises(ValidationError, match=f"generation.{key}\n.*on-policy"):
            cls.model_validate({"generation": gen})


def stage_cmd(tmp: Path, policy: Path, reward: Path, params: Path, out: Path, ck: Path,
              stage: str = "rloo") -> list[str]:  # fmt: skip
    prompts = tmp / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    return [sys.executable, "-m", f"superhf.stages.{stage}", "--params", str(params), "--policy", str(policy),
            "--reward", str(reward), "--prompts", str(prompts), "--out", str(out), "--checkpoints", str(ck),
            "--metrics", str(out) + ".json", "--curve", str(out) + ".csv",
            "--samples", str(out) + ".jsonl", "--snapshots", str(out) + "_snaps"]  # fmt: skip


def test_a_disabled_section_writes_markers_and_trains_nothing(tiny, tmp_path) -> None:
    policy, reward = tiny
    params = write_params(tmp_path / "p.yaml", rloo={"enabled": False})
    out = tmp_path / "rloo"
    rloo_stage.main(stage_cmd(tmp_path, policy, reward, params, out, tmp_path / "ck")[3:])
    assert is_disabled(out) and not (out / "model.safetensors").exists()
    assert json.loads(Path(f"{out}.json").read_text()) == {"disabled": True}
    assert Path(f"{out}.csv").read_text().count("\n") == 1  # a header, no rows
    assert json.loads((Path(f"{out}_snaps") / "index.json").read_text()) == []
    assert not is_disabled(policy)


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["rloo", "grpo"])
def test_resume_after_kill_gives_identical_weights(tmp_path: Path, stage: str) -> None:
    policy, reward = make_tiny_models(tmp_path / "m")
    cls = RLOOConfig if stage == "rloo" else GRPOConfig
    c = cls.model_validate({"num_prompts": 8, "superbatch_size": 2, "minibatch_size": 1,
                            "gradient_accumulation": 2, "update_epochs": 2, "generation": TINY_GEN,
                            "optim": {"lr": 1e-3, "warmup_steps": 0}, "checkpoint_every": 1,
                            "snapshot_every": 3})  # fmt: skip
    params = write_params(tmp_path / "p.yaml", **{stage: json.loads(c.model_dump_json())})
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    full = stage_cmd(tmp_path, policy, reward, params, tmp_path / "full", tmp_path / "ck_f", stage)
    subprocess.run(full, check=True, env=env, capture_output=True)
    killed = stage_cmd(tmp_path, policy, reward, params, tmp_path / "res", tmp_path / "ck_k", stage)
    state = kill_after_checkpoint(killed, env, tmp_path / "ck_k" / "meta.json")
    assert 3 <= state["step"] < 8 and not (tmp_path / "res").exists()
    subprocess.run(killed, check=True, env=env, capture_output=True)  # the rerun resumes

    a = load_file(tmp_path / "full" / "model.safetensors")
    b = load_file(tmp_path / "res" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], v) for k, v in load_file(policy / "model.safetensors").items())
    m_full, m_res = (json.loads(Path(f"{tmp_path / n}.json").read_text()) for n in ("full", "res"))
    assert (
        m_full["reward_final"] == m_res["reward_final"] and m_full["kl_final"] == m_res["kl_final"]
    )
    # reward-model queries counted like SuperHF's: S per prompt, in every snapshot
    index = json.loads((tmp_path / "res_snaps" / "index.json").read_text())
    assert [s["reward_queries"] for s in index] == [3 * 2, 6 * 2]


def test_evaluate_skips_a_disabled_method_and_summary_keeps_every_trained_one(
    tiny, tmp_path
) -> None:
    from superhf.stages.evaluate_inputs import parse_models, parse_snapshots
    from superhf.summary import headline

    policy, _ = tiny
    off = tmp_path / "grpo"
    off.mkdir()
    (off / "superhf_meta.json").write_text(json.dumps({"stage": "grpo", "disabled": True}))
    snaps = tmp_path / "grpo_snapshots"
    snaps.mkdir()
    (snaps / "index.json").write_text("[]")
    models = parse_models([f"base={policy}", f"rloo={policy}", f"grpo={off}"])
    assert sorted(models) == ["base", "rloo"]
    assert parse_snapshots([f"grpo={snaps}"], models, "o.json", ["grpo"]) == {}
    block = {"mean": 0.5, "ci_low": 0.4, "ci_high": 0.6}
    ev = {"rloo": {"proxy": block, "gold": block, "kl_to_base": 0.1}}
    out = headline(ev, {}, {}, {}, {"rloo": {"reward_gain": 0.2, "wall_seconds": 3.0},
                                   "grpo": {"disabled": True}})  # fmt: skip
    assert out["rloo"]["train_gain"] == 0.2 and out["rloo"]["wall_s"] == 3.0
    assert "grpo" not in out


def test_report_leaves_out_a_disabled_stage_curve(tmp_path) -> None:
    from superhf.stages.report import further_curves

    (tmp_path / "off.csv").write_text("step,reward_mean,reward_ema\n")
    (tmp_path / "on.csv").write_text("step,reward_mean,reward_ema\n0,0.5,0.5\n1,0.7,0.52\n")
    curves = further_curves([f"grpo={tmp_path / 'off.csv'}", f"rloo={tmp_path / 'on.csv'}"])
    assert list(curves) == ["RLOO"] and curves["RLOO"]["reward_mean"] == [0.5, 0.7]
