"""Is a rebuild of a study's reward models the study's, to float precision?

Every session of the hh study starts on a fresh machine, not always with the same CPU, and
rebuilds the data, the base and the reward models (results/hh/PLAN.md). fp32 kernels differ
between CPUs in their last bits, so the rebuilt models cannot have the study's hashes. What
must hold instead: the proxy trained on the same pairs (the record's sha256, the same bytes),
and every number of the reward-model metrics within ``tol`` of the study's (losses to float
precision, accuracies within a few of ~850 pairs). Times (``*_s``) and where the pairs came
from (``from``) may differ; so may what a rebuild from the record cannot know (how many
prompts were sampled and pairs dropped); anything else of the study's must be there.

    python -m superhf.rebuild_check results/hh/metrics/reward_model.json metrics/reward_model.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REQUIRED = ("proxy_pairs.sha256", "heldout.proxy.accuracy", "heldout.gold.accuracy")
# what a rebuild from the record cannot know: how the derivation sampled and dropped pairs
UNKNOWN_TO_A_REBUILD = ("policy_pairs.prompts", "policy_pairs.dropped.")


def ignored(key: str) -> bool:
    """Times and provenance, which differ between runs of the same study."""
    last = key.rsplit(".", 1)[-1]
    return last.endswith("_s") or last == "from"


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Leaves of nested dicts and lists, keyed by their dotted path (lists by index)."""
    if isinstance(obj, dict):
        items: Iterable[tuple[str, Any]] = obj.items()
    elif isinstance(obj, list):
        items = ((str(i), v) for i, v in enumerate(obj))
    else:
        return {prefix: obj}
    out: dict[str, Any] = {}
    for k, v in items:
        out |= flatten(v, f"{prefix}.{k}" if prefix else str(k))
    return out


def differences(study: dict, here: dict, tol: float) -> list[str]:
    """What keeps ``here`` (a rebuild's metrics) from being ``study``'s, one line each."""
    a, b = flatten(study), flatten(here)
    out = [f"{k}: missing" for k in REQUIRED if k not in a or k not in b]
    out += [
        f"{k}: missing here"
        for k in sorted(a.keys() - b.keys())
        if k not in REQUIRED and not ignored(k) and not k.startswith(UNKNOWN_TO_A_REBUILD)
    ]
    for key in sorted(a.keys() & b.keys()):
        if ignored(key):
            continue
        x, y = a[key], b[key]
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (x, y))
        if numbers and abs(x - y) > tol:
            out.append(f"{key}: {x} in the study, {y} here (more than {tol} apart)")
        elif not numbers and x != y:
            out.append(f"{key}: {x!r} in the study, {y!r} here")
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("study", help="the study's reward_model.json")
    ap.add_argument("here", help="the rebuild's reward_model.json")
    ap.add_argument("--tol", type=float, default=0.01, help="largest difference of a number")
    args = ap.parse_args(argv)
    for path in (args.study, args.here):
        if not Path(path).is_file():
            sys.exit(f"rebuild_check: no metrics file at {path}")
    study, here = (json.loads(Path(p).read_text()) for p in (args.study, args.here))
    diff = differences(study, here, args.tol)
    if diff:
        sys.exit(
            f"rebuild_check: {args.here} is not the study's ({args.study}): " + "; ".join(diff)
        )
    print(f"rebuild_check: {args.here} is the study's to within {args.tol}")


if __name__ == "__main__":
    main()
