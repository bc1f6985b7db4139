"""Did a change alter what the default run measures? Compares every tracked file under
``metrics/`` in the working tree with a commit's, ignoring only timings and MLflow run ids
(keys or CSV columns named *time*, *wall*, *per_second*, ``mlflow_run_id``). Run it after
``dvc repro`` on a refactor that should change no number; exit 1 when anything else differs.

    python scripts/metrics_identical.py [--ref HEAD]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import subprocess
import sys

VOLATILE = re.compile(r"time|wall|per_second|mlflow_run_id")


def strip(value):
    """``value`` without its volatile keys, at any depth."""
    if isinstance(value, dict):
        return {k: strip(v) for k, v in value.items() if not VOLATILE.search(k)}
    if isinstance(value, list):
        return [strip(v) for v in value]
    return value


def same(path: str, old: str, new: str) -> bool:
    if path.endswith(".json"):
        return strip(json.loads(old)) == strip(json.loads(new))
    if path.endswith(".csv"):
        a, b = csv.DictReader(io.StringIO(old)), csv.DictReader(io.StringIO(new))
        rows_a, rows_b = [strip(r) for r in a], [strip(r) for r in b]
        return a.fieldnames == b.fieldnames and rows_a == rows_b
    return old == new


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ref", default="HEAD", help="the commit whose metrics are the reference")
    ref = ap.parse_args().ref
    git = lambda *a: subprocess.run(["git", *a], capture_output=True, text=True, check=True)  # noqa: E731
    changed = git("diff", "--name-only", ref, "--", "metrics/").stdout.split()
    different = []
    for path in changed:
        old = git("show", f"{ref}:{path}").stdout
        with open(path, encoding="utf-8") as f:
            new = f.read()
        ok = same(path, old, new)
        print(f"{'same' if ok else 'DIFFERENT'} apart from timings and run ids: {path}")
        different += [] if ok else [path]
    tracked = len(git("ls-files", "metrics/").stdout.split())
    print(f"{tracked - len(changed)} of {tracked} metrics files byte-identical to {ref}")
    return 1 if different else 0


if __name__ == "__main__":
    sys.exit(main())
