"""Two CPU processes (torchrun + gloo): prompts sharded, gradients synced, rank 0 writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import PROMPTS, TINY_GEN, make_tiny_models, write_params
from safetensors.torch import load_file

from superhf.config import RLHFConfig, SuperHFConfig


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["superhf", "rlhf"])
def test_two_cpu_processes(tmp_path: Path, stage: str) -> None:
    policy, reward = make_tiny_models(tmp_path / "m")
    if stage == "superhf":
        section = {"superhf": json.loads(SuperHFConfig.model_validate(
            {"num_prompts": 4, "superbatch_size": 4, "minibatch_size": 2, "generation": TINY_GEN,
             "optim": {"lr": 1e-2, "warmup_steps": 0}, "checkpoint_every": 1}).model_dump_json())}  # fmt: skip
    else:
        section = {"rlhf": json.loads(RLHFConfig.model_validate(
            {"num_prompts": 8, "batch_size": 2, "minibatch_size": 2, "ppo_epochs": 1, "generation": TINY_GEN,
             "optim": {"lr": 1e-3}}).model_dump_json())}  # fmt: skip
    params = write_params(tmp_path / "p.yaml", **section)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517" if stage == "rlhf" else "29513",
           "-m", f"superhf.stages.{stage}", "--params", str(params), "--policy", str(policy), "--reward", str(reward),
           "--prompts", str(prompts), "--out", str(tmp_path / "out"), "--checkpoints", str(tmp_path / "ck"),
           "--metrics", str(tmp_path / "m.json"), "--curve", str(tmp_path / "c.csv"),
           "--samples", str(tmp_path / "s.jsonl")]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    m = json.loads((tmp_path / "m.json").read_text())
    steps = m.get("superbatches", m.get("ppo_steps"))
    assert steps == 2  # the prompts were split between the two processes
    rows = (tmp_path / "c.csv").read_text().splitlines()
    assert len(rows) == 3
    trained = load_file(tmp_path / "out" / "model.safetensors")
    start = load_file(policy / "model.safetensors")
    assert any(not torch.equal(trained[k], start[k]) for k in start)
    assert not (tmp_path / "ck").exists()  # a finished run removes its checkpoints
