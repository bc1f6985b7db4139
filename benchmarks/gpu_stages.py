"""Run the pipeline's stages as ``dvc.yaml`` writes them, without dvc (for the GPU machine).

The lent GPU machine reaches no registry and dvc's wheels with their dependencies do not
fit in what travels, so this reads ``dvc.yaml`` and runs each named stage's ``cmd`` in
file order (a valid order: each stage comes after the stages it depends on), in a work
folder holding the profile's resolved ``params.yaml`` (``${launcher}`` substituted).

    python benchmarks/gpu_stages.py --profile tiny --work /tmp/tiny --json tiny.json
    python benchmarks/gpu_stages.py --profile default --work /tmp/default \
        --stages prepare,superhf,rlhf,evaluate --set tracking.enabled=false

Each stage's seconds, exit status and the device lines it logged ("training on cuda",
"evaluate on cuda", ...) go to the JSON, written after every stage. A failed stage stops
the run (its output's last line is recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DEVICE_WORDS = (" on cuda", " on cpu", "training on ")


def set_dotted(params: dict, key: str, value: str) -> None:
    *path, last = key.split(".")
    node = params
    for p in path:
        node = node[p]
    if last not in node:
        raise SystemExit(f"--set {key}: no such param")
    node[last] = yaml.safe_load(value)


def prepare_work(profile: str, work: Path, sets: list[str]) -> dict:
    """The work folder: dvc.yaml and the profile's params with the overrides applied."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "dvc.yaml").write_text((REPO / "dvc.yaml").read_text())
    subprocess.run([sys.executable, "-m", "superhf.profile", profile, "--out",
                    str(work / "params.yaml")], check=True, cwd=work)  # fmt: skip
    params = yaml.safe_load((work / "params.yaml").read_text())
    for s in sets:
        key, _, value = s.partition("=")
        set_dotted(params, key, value)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return params


def run_stage(name: str, cmd: str, work: Path) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, shell=True, cwd=work, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    lines = []
    for line in proc.stdout:
        if "it/s]" not in line and "s/it]" not in line:  # progress bars: noise in the log
            print(f"[{name}] {line}", end="", flush=True)
        lines.append(line.rstrip())
    rc = proc.wait()
    device = [ln for ln in lines if any(w in ln for w in DEVICE_WORDS)]
    return {"stage": name, "rc": rc, "seconds": round(time.perf_counter() - t0, 2),
            "device_lines": device[:6], "last_line": lines[-1] if lines else ""}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--stages", help="comma-separated; default all, in dvc.yaml's order")
    ap.add_argument("--set", action="append", default=[], help="dotted.key=yaml value")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH", "")) if p
    )
    params = prepare_work(args.profile, args.work, args.set)  # outputs already there stay
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    names = args.stages.split(",") if args.stages else list(stages)
    out = {"profile": args.profile, "sets": args.set, "launcher": params["launcher"], "stages": []}
    for name in names:
        cmd = stages[name]["cmd"].replace("${launcher}", params["launcher"])
        r = run_stage(name, cmd, args.work)
        out["stages"].append(r)
        if args.json:
            args.json.write_text(json.dumps(out, indent=2) + "\n")
        if r["rc"] != 0:
            sys.exit(f"stage {name} failed (rc {r['rc']}): {r['last_line']}")
    print(json.dumps({r["stage"]: r["seconds"] for r in out["stages"]}))


if __name__ == "__main__":
    main()
