"""Before/after: the same benchmark sections on an earlier commit's code and on this tree's.

    python benchmarks/ab.py --base 58d9730 --setups default --sections superhf,ppo --rounds 2

The earlier commit is checked out in a temporary git worktree; ``benchmarks/run.py`` (this
tree's, so both sides measure the same way) runs once per side per round, alternating
base / ours, each in a child process with that side's ``src`` first on PYTHONPATH. Models
are the workspace's ``models/`` for both. Prints, per figure, the median over rounds on
each side and ours / base.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_side(src: Path, args: argparse.Namespace, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, str(REPO / "benchmarks" / "run.py"), "--setups", args.setups,
           "--sections", args.sections, "--no-peer", "--pipeline", "none",
           "--repeats", str(args.repeats), "--json", str(out)]  # fmt: skip
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def flatten(result: dict, setups: list[str]) -> dict[str, float]:
    return {
        f"{s} {section} {k}": v
        for s in setups
        for section, vals in result.get(s, {}).items()
        for k, v in vals.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="git ref of the 'before' code")
    ap.add_argument("--setups", default="default")
    ap.add_argument("--sections", default="generation,superhf,ppo,evaluation")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="write both sides' numbers here too")
    args = ap.parse_args()
    setups = args.setups.split(",")
    sides: dict[str, list[dict]] = {"base": [], "ours": []}
    with tempfile.TemporaryDirectory() as d:
        wt = Path(d) / "base"
        subprocess.run(["git", "worktree", "add", "-q", "--detach", str(wt), args.base], cwd=REPO,
                       check=True)  # fmt: skip
        try:
            for r in range(args.rounds):
                for side, src in (("base", wt / "src"), ("ours", REPO / "src")):
                    res = run_side(src, args, Path(d) / f"{side}{r}.json")
                    sides[side].append(flatten(res, setups))
                    print(f"round {r + 1}/{args.rounds}: {side} done", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(wt)], cwd=REPO)
    keys = [k for k in sides["ours"][0] if k in sides["base"][0]]
    print(f"\nbase {args.base} vs this tree; medians of {args.rounds} alternating rounds")
    print(f"{'figure':52} {'base':>10} {'ours':>10} {'ours/base':>10}")
    table = {}
    for k in keys:
        b = statistics.median(x[k] for x in sides["base"])
        o = statistics.median(x[k] for x in sides["ours"])
        table[k] = {"base": b, "ours": o, "ratio": o / b if b else float("nan")}
        print(f"{k:52} {b:10.4g} {o:10.4g} {table[k]['ratio']:10.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"base": args.base, "table": table}, indent=2) + "\n")


if __name__ == "__main__":
    main()
