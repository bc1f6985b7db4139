"""Two CPU processes (torchrun + gloo): prompts sharded, gradients synced, rank 0 writes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import PROMPTS, TINY_GEN, make_tiny_models, write_params
from safetensors.torch import load_file

from superhf.config.group_pg import GRPOConfig, RLOOConfig
from superhf.config.rlhf import RLHFConfig
from superhf.config.superhf import SuperHFConfig


def free_port() -> int:
    """A port nobody listens on now (no fixed port: parallel test runs must not collide)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["superhf", "rlhf", "rloo", "grpo"])
def test_two_cpu_processes(tmp_path: Path, stage: str) -> None:
    policy, reward = make_tiny_models(tmp_path / "m")
    if stage in ("rloo", "grpo"):
        cls = RLOOConfig if stage == "rloo" else GRPOConfig
        section = {stage: json.loads(cls.model_validate(
            {"num_prompts": 4, "superbatch_size": 4, "minibatch_size": 2, "generation": TINY_GEN,
             "optim": {"lr": 1e-2, "warmup_steps": 0}, "checkpoint_every": 1}).model_dump_json())}  # fmt: skip
    elif stage == "superhf":
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
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           "-m", f"superhf.stages.{stage}", "--params", str(params), "--policy", str(policy), "--reward", str(reward),
           "--prompts", str(prompts), "--out", str(tmp_path / "out"), "--checkpoints", str(tmp_path / "ck"),
           "--metrics", str(tmp_path / "m.json"), "--curve", str(tmp_path / "c.csv"),
           "--samples", str(tmp_path / "s.jsonl")]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    m = json.loads((tmp_path / "m.json").read_text())
    steps = m.get("superbatches", m.get("ppo_steps", m.get("steps")))
    assert steps == 2  # the prompts were split between the two processes
    rows = (tmp_path / "c.csv").read_text().splitlines()
    assert len(rows) == 3
    trained = load_file(tmp_path / "out" / "model.safetensors")
    start = load_file(policy / "model.safetensors")
    assert any(not torch.equal(trained[k], start[k]) for k in start)
    assert not (tmp_path / "ck").exists()  # a finished run removes its checkpoints


RANK_SCRIPT = """
import hashlib, json, sys
from superhf import ppo_trainer, superhf_trainer
from superhf.config.rlhf import RLHFConfig
from superhf.config.superhf import SuperHFConfig

stage, cfg_json, policy, reward, prompts_file, out = sys.argv[1:]
mod, cls = (superhf_trainer, SuperHFConfig) if stage == "superhf" else (ppo_trainer, RLHFConfig)
seen = []
real = mod.sample_completions
def spy(model, tok, texts, cfg, **kw):
    seen.append(sorted(set(texts)))
    return real(model, tok, texts, cfg, **kw)
mod.sample_completions = spy
prompts = [json.loads(line)["prompt"] for line in open(prompts_file)]
model, tok, history, samples, acc = mod.train(cls.model_validate_json(cfg_json), policy, reward,
                                              prompts, out + "/ck")
sd = acc.unwrap_model(model).state_dict()
digest = hashlib.sha256(b"".join(sd[k].detach().cpu().contiguous().numpy().tobytes()
                                 for k in sorted(sd))).hexdigest()
with open(f"{out}/rank{acc.process_index}.json", "w") as f:
    json.dump({"steps": seen, "weights": digest}, f)
"""


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["superhf", "rlhf"])
def test_ranks_see_disjoint_prompts_and_end_with_identical_weights(
    tmp_path: Path, stage: str
) -> None:
    policy, reward = make_tiny_models(tmp_path / "m")
    if stage == "superhf":
        cfg = SuperHFConfig.model_validate(
            {"num_prompts": 4, "superbatch_size": 3, "minibatch_size": 1, "top_k": 2, "generation": TINY_GEN,
             "optim": {"lr": 1e-2, "warmup_steps": 0}, "checkpoint_every": 5})  # fmt: skip
    else:
        cfg = RLHFConfig.model_validate(
            {"num_prompts": 4, "batch_size": 1, "minibatch_size": 1, "ppo_epochs": 2, "generation": TINY_GEN,
             "optim": {"lr": 1e-3}, "checkpoint_every": 5})  # fmt: skip
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           str(script), stage, cfg.model_dump_json(), str(policy), str(reward), str(prompts), str(tmp_path)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    r0, r1 = (json.loads((tmp_path / f"rank{i}.json").read_text()) for i in (0, 1))
    assert len(r0["steps"]) == len(r1["steps"]) == 2  # 4 prompts, 1 per process per step
    for a, b in zip(r0["steps"], r1["steps"]):
        assert len(a) == len(b) == 1 and not set(a) & set(b)  # each step: disjoint prompts
    seen = [p for steps in (r0["steps"], r1["steps"]) for s in steps for p in s]
    assert sorted(seen) == sorted(PROMPTS)  # one pass: every prompt exactly once
    assert r0["weights"] == r1["weights"]  # gradients synced: the ranks never diverge
