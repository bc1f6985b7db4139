"""PPO resumes after kill -9 to the weights of an uninterrupted run (SuperHF has the same
test in test_superhf.py): policy, value head, optimiser, RNG and the KL coefficient."""

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

from superhf.config.rlhf import RLHFConfig


def stage_cmd(
    tmp: Path, policy: Path, reward: Path, params: Path, out: Path, ck: Path
) -> list[str]:
    prompts = tmp / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    return [sys.executable, "-m", "superhf.stages.rlhf", "--params", str(params), "--policy", str(policy),
            "--reward", str(reward), "--prompts", str(prompts), "--out", str(out), "--checkpoints", str(ck),
            "--metrics", str(out) + ".json", "--curve", str(out) + ".csv",
            "--samples", str(out) + ".jsonl"]  # fmt: skip


@pytest.mark.slow
def test_ppo_resume_after_kill_gives_identical_weights(tmp_path: Path) -> None:
    policy, reward = make_tiny_models(tmp_path / "m")
    c = RLHFConfig.model_validate({
        "num_prompts": 16, "batch_size": 2, "minibatch_size": 1, "ppo_epochs": 2, "generation": TINY_GEN,
        "optim": {"lr": 1e-3, "scheduler": "constant", "warmup_steps": 0}, "checkpoint_every": 1})  # fmt: skip
    params = write_params(tmp_path / "p.yaml", rlhf=json.loads(c.model_dump_json()))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    full = stage_cmd(tmp_path, policy, reward, params, tmp_path / "full", tmp_path / "ck_full")
    subprocess.run(full, check=True, env=env, capture_output=True)

    killed = stage_cmd(tmp_path, policy, reward, params, tmp_path / "resumed", tmp_path / "ck_kill")
    meta = tmp_path / "ck_kill" / "meta.json"
    state = kill_after_checkpoint(killed, env, meta)
    assert 3 <= state["step"] < 8 and not (tmp_path / "resumed").exists()
    assert state["state"]["kl_coef"] < 0.2  # the adaptive coefficient moved and was saved
    subprocess.run(killed, check=True, env=env, capture_output=True)  # the rerun resumes

    a = load_file(tmp_path / "full" / "model.safetensors")
    b = load_file(tmp_path / "resumed" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    first = load_file(policy / "model.safetensors")
    assert any(not torch.equal(a[k], first[k]) for k in a)
    m_full = json.loads((tmp_path / "full.json").read_text())
    m_res = json.loads((tmp_path / "resumed.json").read_text())
    assert m_full["kl_coef_final"] == m_res["kl_coef_final"]
    assert m_full["reward_final"] == m_res["reward_final"]
