"""FSDP and DeepSpeed past one machine (superhf.sharding): what refuses on CPU, and sampling
from FSDP2-sharded parameters (torch's fully_shard over gloo, two CPU processes)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import PROMPTS, TINY_GEN, make_tiny_models, write_params

from superhf.config.superhf import SuperHFConfig
from superhf.errors import BadInputError
from superhf.sharding import check_sharding_backend, full_parameters

REPO = Path(__file__).resolve().parents[1]


def run_group(cmd: list[str], env: dict, timeout: float) -> subprocess.CompletedProcess:
    """Run ``cmd``; past ``timeout`` (a collective waiting forever) kill all its processes."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"hung for {timeout}s: a process waits in a collective for the other")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("env", "gpu", "refused"),
    [
        ({"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2"}, False, "FSDP needs a GPU"),
        ({"ACCELERATE_USE_DEEPSPEED": "true"}, False, "DeepSpeed needs a GPU"),
        ({"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "1"}, True, "FSDP version 1"),
        ({"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2"}, True, None),
        ({"ACCELERATE_USE_DEEPSPEED": "true"}, True, None),
        ({}, False, None),
    ],
)
def test_sharding_backends_refused_where_accelerate_would_not_run_them(
    monkeypatch: pytest.MonkeyPatch, env: dict, gpu: bool, refused: str | None
) -> None:
    for key in ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED", "FSDP_VERSION"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if refused is None:
        check_sharding_backend(gpu)
    else:
        with pytest.raises(BadInputError, match=refused):
            check_sharding_backend(gpu)


def test_an_unsharded_model_is_sampled_as_before() -> None:
    with full_parameters(torch.nn.Linear(2, 2)) as extra:
        assert extra == {}


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU refusal; a GPU runs FSDP")
def test_the_fsdp_config_on_cpu_stops_in_one_line_before_a_model_loads(tmp_path: Path) -> None:
    """accelerate would quietly train plain DDP here; the stage says so instead."""
    policy, reward = make_tiny_models(tmp_path / "m")
    cfg = SuperHFConfig.model_validate({"num_prompts": 4, "generation": TINY_GEN})
    params = write_params(tmp_path / "p.yaml", superhf=json.loads(cfg.model_dump_json()))
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    launch = ["accelerate", "launch", "--config_file", "configs/accelerate/fsdp.yaml",
              "--num_processes", "2", "--mixed_precision", "no", "--main_process_port",
              str(free_port())]  # fmt: skip
    stage = ["-m", "superhf.stages.superhf", "--params", str(params), "--policy", str(policy),
             "--reward", str(reward), "--prompts", str(prompts), "--out", str(tmp_path / "out"),
             "--checkpoints", str(tmp_path / "ck"), "--metrics", str(tmp_path / "m.json"),
             "--curve", str(tmp_path / "c.csv"), "--samples", str(tmp_path / "s.jsonl")]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        launch + stage, cwd=REPO, capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("superhf: error:")]
    assert len(lines) == 2, proc.stderr[-3000:]  # one line from each process
    assert "FSDP needs a GPU" in lines[0] and "torch.distributed.run" in lines[0]
    assert "Loading weights" not in proc.stderr  # refused before a model loaded
    assert not (tmp_path / "out").exists() and not (tmp_path / "m.json").exists()


RANK_SCRIPT = """
import copy, json, sys
import torch, torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from transformers import AutoModelForCausalLM, AutoTokenizer
from superhf.config.common import GenerationConfig
from superhf.generation import sample_completions
from superhf.sharding import full_parameters

policy_dir, gen, prompts, out = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
dist.init_process_group("gloo")
rank = dist.get_rank()
tok = AutoTokenizer.from_pretrained(policy_dir)
policy = AutoModelForCausalLM.from_pretrained(policy_dir)
full = copy.deepcopy(policy)
class Holder(torch.nn.Module):  # PPO's shape: it trains the root, samples from .policy
    def __init__(self, policy):
        super().__init__()
        self.policy, self.value = policy, torch.nn.Linear(policy.config.hidden_size, 1)

    def forward(self, ids):
        out = self.policy(input_ids=ids, output_hidden_states=True)
        return out.logits.mean() + self.value(out.hidden_states[-1]).mean()

holder = Holder(policy)
mesh = init_device_mesh("cpu", (2,))  # CPU shards over gloo, also on a machine with a GPU
for layer in policy.gpt_neox.layers:
    fully_shard(layer, mesh=mesh)
fully_shard(holder, mesh=mesh)  # the root: embeddings, final norm, head and value head
holder(torch.tensor([[1, 2, 3]])).backward()  # a training step first, as in the trainers
# rank 0 repeats a prompt (its shared-prefill forward), rank 1 does not; and rank 1 samples
# longer, as when one process's rows have all ended: the processes' forwards differ in number
texts = [prompts[0]] * 3 + [prompts[1]] if rank == 0 else prompts[1:] + [prompts[0]]
cfg = GenerationConfig.model_validate({**gen, "max_new_tokens": 3 + 5 * rank})
torch.manual_seed(rank)
want = sample_completions(full, tok, texts, cfg, share_prefill=False)
torch.manual_seed(rank)
with full_parameters(holder) as extra:
    got = sample_completions(holder.policy, tok, texts, cfg, **extra)
p = holder.policy.gpt_neox.embed_in.weight
json.dump({"same": [c.ids for c in got] == [c.ids for c in want],
           "lengths": sorted({len(c.ids) for c in got}), "extra": sorted(extra),
           "sharded_after": [type(p).__name__, p.to_local().shape[0], p.shape[0]]},
          open(f"{out}/rank{rank}.json", "w"))
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_sampling_from_fsdp2_shards_gathers_them_and_matches_the_full_model(
    tmp_path: Path,
) -> None:
    policy, _ = make_tiny_models(tmp_path / "m")
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", str(free_port()), str(script), str(policy), json.dumps(TINY_GEN),
           json.dumps(PROMPTS), str(tmp_path)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # without the gathering, sampling from model.policy fails on the root's shards, and the
    # unequal forwards hang in a collective (the timeout turns that into a failure)
    proc = run_group(cmd, env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    for rank in (0, 1):
        r = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert r["same"]  # the same tokens as the unsharded model with the same seed
        assert r["extra"] == ["share_prefill", "synced_gpus"]
        assert r["sharded_after"][0] == "DTensor"  # the shards are back after sampling
        assert r["sharded_after"][1] * 2 == r["sharded_after"][2]
