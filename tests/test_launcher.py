"""The ``launcher`` param: DDP from ``dvc exp run -S launcher=...`` without editing dvc.yaml."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from superhf.params import ParamsError
from superhf.profile import deep_merge, defaults, resolve

REPO = Path(__file__).resolve().parents[1]


def test_every_profile_carries_the_launcher_and_the_training_stages_use_it() -> None:
    for name in ("default", "tiny", "paper"):
        assert resolve(name)["launcher"] == "python"
    assert yaml.safe_load((REPO / "params.yaml").read_text())["launcher"] == "python"
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for stage in ("superhf", "rlhf", "rloo", "grpo"):
        assert stages[stage]["cmd"].startswith(f"${{launcher}} -m superhf.stages.{stage} ")
    assert deep_merge(defaults(), {"launcher": "torchrun"})["launcher"] == "torchrun"


def test_an_empty_launcher_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("launcher: ''\n")
    with pytest.raises(ParamsError, match="launcher must be a command"):
        resolve("bad", profile_dir=tmp_path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sh(cmd: list[str], cwd: Path, env: dict) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_dvc_exp_run_with_a_two_process_torchrun_launcher(tmp_path: Path) -> None:
    """Tiny profile; SuperHF, PPO, RLOO and GRPO run as two CPU processes from
    ``dvc exp run -S``."""
    work = tmp_path / "repo"
    files = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    for rel in files:
        if rel.startswith(("metrics/", "reports/")) or rel == "dvc.lock":
            continue
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, work / rel)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env = {**env, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    sh(["python", "-m", "superhf.profile", "tiny"], work, env)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        sh(cmd, work, env)

    launcher = f"python -m torch.distributed.run --nproc_per_node 2 --master_port {free_port()}"
    trained = ("superhf", "rlhf", "rloo", "grpo")
    out = sh(["dvc", "exp", "run", "-S", f"launcher={launcher}", *trained], work, env)
    for stage in trained:
        assert f"> {launcher} -m superhf.stages.{stage} " in out
    tiny = resolve("tiny")
    # the prompts were split between two processes: half the steps of one process
    m = json.loads((work / "metrics/superhf.json").read_text())
    assert m["superbatches"] == tiny["superhf"]["num_prompts"] // 2
    m = json.loads((work / "metrics/rlhf.json").read_text())
    assert m["ppo_steps"] == tiny["rlhf"]["num_prompts"] // (2 * tiny["rlhf"]["batch_size"])
    for stage in ("rloo", "grpo"):
        m = json.loads((work / f"metrics/{stage}.json").read_text())
        assert m["steps"] == tiny[stage]["num_prompts"] // 2
    start = load_file(work / "models/base/model.safetensors")
    for stage in trained:
        rows = (work / f"metrics/{stage}_curve.csv").read_text().splitlines()
        steps = json.loads((work / f"metrics/{stage}.json").read_text())
        assert len(rows) == 1 + steps.get(
            "superbatches", steps.get("ppo_steps", steps.get("steps"))
        )
        weights = load_file(work / f"models/{stage}/model.safetensors")
        assert weights.keys() == start.keys()
        assert any(not torch.equal(weights[k], start[k]) for k in start)
        assert not (work / f"checkpoints/{stage}").exists()
    # rank 0 alone tracked the run: one MLflow run per stage
    con = sqlite3.connect(work / "mlflow.db")
    tags = con.execute("SELECT value FROM tags WHERE key = 'stage'").fetchall()
    assert sorted(v for (v,) in tags if v in trained) == sorted(trained)
    assert yaml.safe_load((work / "params.yaml").read_text())["launcher"] == launcher
