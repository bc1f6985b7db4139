"""Markdown rendering of the evaluation's Table 4 (paper Table 4): one row per evaluated
model, its benchmark columns (labelled by ``capabilities.columns``) and its proxy and gold
reward with their 95% intervals. Pure: it reads the metrics dict and imports no model code.
"""

from __future__ import annotations

from typing import Any

from superhf.capabilities.columns import get_path, table_columns

MIN_CI_N = 10  # below this many rows a bootstrap interval says nothing: print n instead
TABLE_ORDER = ("base", "best_of_n", "superhf", "rlhf", "rloo", "grpo")
SMOKE_NOTE = (
    "Smoke run: the standard columns are scored on our fixture sets (2-12 items), "
    "not results; use `evaluate.benchmarks.source: local` or `hub` for numbers.\n\n"
)


def reward_cell(s: dict[str, Any]) -> str:
    """Mean with its 95% interval, or with n alone when there are fewer than MIN_CI_N rows."""
    if s.get("n", MIN_CI_N) < MIN_CI_N:
        return f"{s['mean']:.3f} (n={s['n']}, no interval)"
    return f"{s['mean']:.3f} [{s['ci_low']:.3f}, {s['ci_high']:.3f}]"


def table4(results: dict[str, Any]) -> str:
    """Table 4: every evaluated model (the pipeline's first, then the others in order), its
    benchmark columns labelled with protocol, task and n, and proxy and gold reward."""
    names = [n for n in TABLE_ORDER if n in results]
    names += [
        n for n, r in results.items() if n not in names and isinstance(r, dict) and "proxy" in r
    ]
    benches = [results[n]["benchmarks"] for n in names if "benchmarks" in results[n]]
    cols = table_columns(benches)
    head = ["model", *(h for h, _ in cols), "proxy reward", "gold reward"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        r = results[name]
        cells = [name]
        for _, keys in cols:
            v = get_path(r.get("benchmarks"), keys)
            cells.append(f"{v:.3f}" if isinstance(v, float) else "n/a")
        cells += [reward_cell(r[which]) for which in ("proxy", "gold")]
        lines.append("| " + " | ".join(cells) + " |")
    note = SMOKE_NOTE if any(b.get("smoke") for b in benches) else ""
    return note + "\n".join(lines) + "\n"
