"""Mean and spread over experiments of the headline numbers (metrics/summary.json).

    python scripts/sweep_table.py seed-0 seed-1 seed-2   # these experiments
    python scripts/sweep_table.py                         # every experiment listed
    dvc exp show --json | python scripts/sweep_table.py --json - seed-0 seed-1

Reads `dvc exp show --json` (run here unless --json gives a file, or - for stdin) and prints
one Markdown line per headline number: mean, sample standard deviation, min, max, and each
experiment's value. `scripts/seed_sweep.sh` ends with it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from superhf.summary import exp_show_rows, seed_table

METRICS_FILE = "metrics/summary.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="experiment names (default: every experiment)")
    ap.add_argument("--json", help="a saved `dvc exp show --json` output, or - for stdin")
    args = ap.parse_args()
    if args.json == "-":
        text = sys.stdin.read()
    elif args.json:
        with open(args.json) as f:
            text = f.read()
    else:
        cmd = ["dvc", "exp", "show", "--json"]
        text = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = exp_show_rows(json.loads(text), METRICS_FILE)
    if args.names:
        missing = [n for n in args.names if n not in {r["name"] for r in rows}]
        if missing:
            sys.exit(f"sweep_table: no finished experiment with {METRICS_FILE} named {missing}")
        rows = [next(r for r in rows if r["name"] == n) for n in args.names]
    else:
        rows = [r for r in rows if r["kind"] == "experiment"]
    if not rows:
        sys.exit(f"sweep_table: no experiment with {METRICS_FILE} in `dvc exp show`")
    print(f"{len(rows)} experiments: " + ", ".join(r["name"] for r in rows))
    print(seed_table(rows), end="")


if __name__ == "__main__":
    main()
