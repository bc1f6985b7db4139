"""Tables of a finished run, rendered from its metrics files (nothing typed in): the reward
models' held-out accuracy, the evaluated models side by side with their diagnostics, the
best-of-n ladder and the over-optimisation curves. Used for ``results/<name>/tables.md``.

    python -m superhf.results --metrics metrics --out results/harmless/tables.md
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from superhf.errors import MissingInputError
from superhf.evaluation import MIN_CI_N, TABLE_ORDER

FILES = ("eval.json", "overoptimisation.json", "reward_model.json")


def _interval(s: dict[str, Any]) -> str:
    if s.get("n", MIN_CI_N) < MIN_CI_N or "ci_low" not in s:
        return f"{s['mean']:.3f} (n={s.get('n')})"
    return f"{s['mean']:.3f} [{s['ci_low']:.3f}, {s['ci_high']:.3f}]"


def _point_interval(p: dict[str, Any], which: str) -> str:
    return f"{p[f'{which}_mean']:.3f} [{p[f'{which}_ci_low']:.3f}, {p[f'{which}_ci_high']:.3f}]"


def reward_models_table(rm: dict[str, Any]) -> str:
    """Held-out pair accuracy of the proxy, the gold model and the length baseline."""
    lines = [
        "| reward model | train pairs | held-out pairs | held-out accuracy |",
        "|---|---|---|---|",
    ]
    for which in ("proxy", "gold"):
        r = rm[which]
        acc = r.get("test_accuracy")
        lines.append(f"| {which} | {r.get('train_pairs', 'pretrained')} | {rm['test_pairs']} | "
                     f"{acc:.3f} |" if acc is not None else f"| {which} | - | 0 | n/a |")  # fmt: skip
    base = rm.get("length_baseline_accuracy")
    lines.append(f"| length baseline (longer wins) | - | {rm['test_pairs']} | "
                 + (f"{base:.3f} |" if base is not None else "n/a |"))  # fmt: skip
    return "\n".join(lines) + "\n"


def models_table(ev: dict[str, Any]) -> str:
    """Every evaluated model: proxy and gold reward (mean, 95% bootstrap interval), KL to
    the base (for best-of-n the analytic bound log n - (n-1)/n), completion length,
    distinct-2 and the empty-completion share."""
    names = [n for n in TABLE_ORDER if n in ev]
    names += [n for n, r in ev.items() if n not in names and isinstance(r, dict) and "proxy" in r]
    head = "| model | proxy reward | gold reward | KL to base | chars | distinct-2 | empty |"
    lines = [head, "|---|---|---|---|---|---|---|"]
    for name in names:
        r = ev[name]
        kl = r.get("kl_to_base", r.get("kl_to_base_bound"))
        label = f"best-of-{r['n']}" if name == "best_of_n" else name
        kl_s = "n/a" if kl is None else (f"{kl:.3f}" + (" (bound)" if name == "best_of_n" else ""))
        lines.append(f"| {label} | {_interval(r['proxy'])} | {_interval(r['gold'])} | {kl_s} | "
                     f"{r['completion_chars']:.0f} | {r['distinct_2']:.3f} | {r['empty_share']:.3f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def curves_table(overopt: dict[str, Any]) -> str:
    """Every point of every over-optimisation curve: method, step (n for best-of-n),
    reward-model queries, KL to the base, proxy and gold reward with intervals."""
    lines = ["| method | step / n | reward queries | KL | sqrt KL | proxy | gold |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for method, pts in overopt.items():
        if not isinstance(pts, list):
            continue
        for p in pts:
            lines.append(f"| {method} | {p.get('n', p['step'])} | {p['reward_queries']} | "
                         f"{p['kl']:.3f} | {p['sqrt_kl']:.3f} | {_point_interval(p, 'proxy')} | "
                         f"{_point_interval(p, 'gold')} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def render(metrics: str | Path) -> str:
    """All tables of the run whose metrics are in ``metrics`` (a missing file is an error
    naming it); the Table 4 Markdown that evaluate wrote is included as it is."""
    folder = Path(metrics)
    for name in (*FILES, "table4.md"):
        if not (folder / name).is_file():
            raise MissingInputError(f"{folder / name} not found (run the pipeline first)")
    ev, overopt, rm = (json.loads((folder / f).read_text()) for f in FILES)
    table4 = (folder / "table4.md").read_text().split("\n", 2)[-1].strip()
    return (
        f"## Reward models\n\n{reward_models_table(rm)}\n"
        f"## Held-out prompts (n={ev.get('test_prompts')})\n\n{models_table(ev)}\n"
        f"## Table 4 columns\n\n{table4}\n\n"
        f"## Over-optimisation curves (n={overopt.get('test_prompts')} prompts per point)\n\n"
        f"{curves_table(overopt)}"
    )


def main(argv: Iterable[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m superhf.results", description=__doc__)
    ap.add_argument("--metrics", default="metrics", help="the run's metrics folder")
    ap.add_argument("--out", default=None, help="output Markdown file (default: stdout)")
    args = ap.parse_args(list(argv) if argv is not None else None)
    text = render(args.metrics)
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    from superhf.cli import run

    run(main)
