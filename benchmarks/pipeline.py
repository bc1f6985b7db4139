"""Whole-pipeline cost: wall time and peak memory of every stage, then the no-op repro.

    python benchmarks/pipeline.py                  # default profile (minutes on 2 cores)
    python benchmarks/pipeline.py --profile tiny   # seconds per stage
    python benchmarks/pipeline.py --ref HEAD~3     # the same for an earlier commit

Runs in a temporary copy of the tracked files (git ls-files, or ``git archive REF``), with
that copy's ``src`` first on PYTHONPATH, so the workspace's outputs are untouched. Each stage's command is taken from ``dvc.yaml`` and run in DAG order as a
child process; ``os.wait4`` gives its peak resident memory. Then ``dvc repro`` there must
have nothing to do, and its wall time is the no-op cost.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def copy_tree(dest: Path, ref: str | None = None) -> None:
    """The tracked files as they are in the working tree, or as committed at ``ref``."""
    dest.mkdir(parents=True)
    if ref:
        archive = subprocess.run(["git", "archive", ref], cwd=REPO, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    else:
        files = subprocess.run(
            ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.split()
        for rel in files:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)
    for rel in ("metrics", "reports"):  # start from nothing
        shutil.rmtree(dest / rel, ignore_errors=True)
    (dest / "dvc.lock").unlink(missing_ok=True)


def run_stage(cmd: str, cwd: Path, env: dict) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of one stage command."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, shell=True, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"stage failed: {cmd}\n{proc.stderr.read().decode()[-3000:]}")
    return wall, usage.ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="default")
    ap.add_argument("--ref", help="benchmark the tree committed at this git ref instead")
    ap.add_argument("--json", help="write the numbers here too")
    args = ap.parse_args()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MLFLOW_TRACKING_URI": ""}
    with tempfile.TemporaryDirectory() as d:
        work = Path(d) / "repo"
        copy_tree(work, args.ref)
        env["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
        env["PYTHONPATH"] = str(work / "src")  # the copied tree's code, not the installed one
        subprocess.run(["python", "-m", "superhf.profile", args.profile], cwd=work, check=True, env=env,
                       capture_output=True)  # fmt: skip
        for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "bench"]):
            subprocess.run(cmd, cwd=work, check=True, env=env, capture_output=True)
        stages = yaml.safe_load((work / "dvc.yaml").read_text())["stages"]
        rows = {}
        for name, stage in stages.items():  # dvc.yaml lists stages in DAG order
            wall, rss = run_stage(" ".join(stage["cmd"].split()), work, env)
            rows[name] = {"wall_s": wall, "peak_rss_mib": rss}
            print(f"{name:14} {wall:8.1f} s {rss:8.0f} MiB", flush=True)
        subprocess.run(
            ["dvc", "commit", "-f", "-q"], cwd=work, check=True, env=env, capture_output=True
        )
        t0 = time.perf_counter()
        out = subprocess.run(
            ["dvc", "repro"], cwd=work, check=True, env=env, capture_output=True, text=True
        )
        noop = time.perf_counter() - t0
        if "Running stage" in out.stdout:
            raise SystemExit("the second dvc repro was not a no-op:\n" + out.stdout[-2000:])
    total = sum(r["wall_s"] for r in rows.values())
    print(f"{'total':14} {total:8.1f} s   (profile {args.profile}); no-op dvc repro {noop:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"profile": args.profile, "ref": args.ref, "stages": rows,
                                               "total_s": total, "noop_repro_s": noop}, indent=2) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
