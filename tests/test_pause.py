"""A training run cut into timed pieces (SUPERHF_PAUSE_AFTER_MIN): each piece stops at a step
boundary with a checkpoint and exit status 3, and the same command resumes, to the weights of
a run never paused."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from helpers import TINY_GEN, make_tiny_models, write_params
from safetensors.torch import load_file
from test_rlhf_resume import stage_cmd

from superhf.cli import PAUSED_EXIT
from superhf.config.rlhf import RLHFConfig
from superhf.errors import UserError
from superhf.trainer_loop import PAUSE_ENV, pause_deadline, paused_file


def test_the_pause_deadline_is_minutes_from_now_or_none() -> None:
    assert pause_deadline(None, 100.0) is None
    assert pause_deadline(" ", 100.0) is None
    assert pause_deadline("1.5", 100.0) == 190.0
    assert pause_deadline("0", 100.0) == 100.0
    for bad in ("-1", "ten", "nan"):
        with pytest.raises(UserError, match=f"{PAUSE_ENV}='{bad}': must be a number of minutes"):
            pause_deadline(bad, 100.0)


def test_the_pause_is_recorded_beside_the_checkpoint_folder() -> None:
    assert paused_file("checkpoints/rlhf") == Path("checkpoints/rlhf.paused.json")


@pytest.mark.slow
def test_ppo_paused_at_every_step_resumes_to_the_weights_of_one_run(tmp_path: Path) -> None:
    policy, reward = make_tiny_models(tmp_path / "m")
    c = RLHFConfig.model_validate({
        "num_prompts": 8, "batch_size": 2, "minibatch_size": 1, "ppo_epochs": 2, "generation": TINY_GEN,
        "optim": {"lr": 1e-3, "scheduler": "constant", "warmup_steps": 0}, "checkpoint_every": 100})  # fmt: skip
    params = write_params(tmp_path / "p.yaml", rlhf=json.loads(c.model_dump_json()))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    env.pop(PAUSE_ENV, None)
    full = stage_cmd(tmp_path, policy, reward, params, tmp_path / "full", tmp_path / "ck_full")
    subprocess.run(full, check=True, env=env, capture_output=True)

    ck = tmp_path / "ck_paused"
    cmd = stage_cmd(tmp_path, policy, reward, params, tmp_path / "paused", ck)
    pieces = []
    for _ in range(6):  # 4 steps: one a piece (0 minutes: the first step boundary pauses)
        out = subprocess.run(cmd, env={**env, PAUSE_ENV: "0"}, capture_output=True, text=True)
        pieces.append(out.returncode)
        if out.returncode != PAUSED_EXIT:
            break
        info = json.loads(paused_file(ck).read_text())
        assert info == {"stage": "rlhf", "step": len(pieces), "steps": 4}
        assert json.loads((ck / "meta.json").read_text())["step"] == len(pieces)
        assert f"rlhf: paused after step {len(pieces)} of 4 ({PAUSE_ENV})" in out.stderr
        assert "Traceback" not in out.stderr and not (tmp_path / "paused").exists()
    assert pieces == [PAUSED_EXIT] * 3 + [0]  # the last step ends the run: no pause there
    assert not paused_file(ck).exists()

    a = load_file(tmp_path / "full" / "model.safetensors")
    b = load_file(tmp_path / "paused" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    m_full = json.loads((tmp_path / "full.json").read_text())
    m_paused = json.loads((tmp_path / "paused.json").read_text())
    assert m_full["kl_coef_final"] == m_paused["kl_coef_final"]
    assert m_full["reward_final"] == m_paused["reward_final"]
