"""Tables of a finished run, rendered from its metrics files (nothing typed in): the reward
models' held-out accuracy, the evaluated models side by side with their diagnostics, the
best-of-n ladder and the over-optimisation curves. Used for ``results/<name>/tables.md``.

    python -m superhf.results --metrics metrics --out results/harmless/tables.md

``--study``: the hh study's tables instead (``superhf.study_tables``), from whatever metrics
exist. Imports no model code and no torch (a test holds it).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from superhf.cli import add_seed_run_arg, seed_runs
from superhf.errors import MissingInputError
from superhf.io import read_json, read_jsonl
from superhf.stats import paired
from superhf.study_tables import curves_table, kl_text, render_study
from superhf.tables import TABLE_ORDER, reward_cell

FILES = ("eval.json", "overoptimisation.json", "reward_model.json")


def reward_models_table(rm: dict[str, Any]) -> str:
    """Held-out pair accuracy of the proxy, the gold model and the length baseline."""
    lines = [
        "| reward model | train pairs | held-out pairs | held-out accuracy |",
        "|---|---|---|---|",
    ]
    for which in ("proxy", "gold"):
        r = rm[which]
        acc = r.get("test_accuracy")
        acc_s = f"{acc:.3f}" if acc is not None else "n/a"
        lines.append(
            f"| {which} | {r.get('train_pairs', 'pretrained')} | {rm['test_pairs']} | {acc_s} |"
        )
    base = rm.get("length_baseline_accuracy")
    lines.append(
        f"| length baseline (longer wins) | - | {rm['test_pairs']} | "
        + (f"{base:.3f} |" if base is not None else "n/a |")
    )
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
        se = r.get("kl_to_base_se")
        kl_s = "n/a" if kl is None else (f"{kl:.3f}" + (" (bound)" if name == "best_of_n" else ""))
        kl_s = kl_s if se is None else kl_text(kl, se)
        lines.append(
            f"| {label} | {reward_cell(r['proxy'])} | {reward_cell(r['gold'])} | {kl_s} | "
            f"{r['completion_chars']:.0f} | {r['distinct_2']:.3f} | {r['empty_share']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def paired_table(rows: list[dict]) -> str:
    """Paired differences: every model against the base, and SuperHF against PPO."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    pairs = [(m, "base") for m in models if m != "base" and "base" in models]
    if "superhf" in models and "rlhf" in models:
        pairs.append(("superhf", "rlhf"))
    lines = [
        "| comparison | n | proxy difference | gold difference | identical completions |",
        "|---|---|---|---|---|",
    ]
    for a, b in pairs:
        d = paired(rows, a, b)
        cells = [
            f"{d[w]['mean']:+.3f} [{d[w]['ci_low']:+.3f}, {d[w]['ci_high']:+.3f}]"
            for w in ("proxy", "gold")
        ]
        lines.append(
            f"| {a} - {b} | {d['n']} | {cells[0]} | {cells[1]} | {d['same_completion']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def seeds_table(runs: Sequence[tuple[str, Path]], method: str = "superhf") -> str:
    """One row per training seed of ``method`` (each a metrics folder with ``eval.json`` and
    ``eval_completions.jsonl``): held-out proxy and gold, KL, the paired gold difference to
    the base; then the mean and sample standard deviation over the seeds."""
    lines = ["| seed | proxy | gold | KL to base | gold - base (paired) |", "|---|---|---|---|---|"]
    finals: dict[str, list[float]] = {"proxy": [], "gold": [], "kl": []}
    for name, folder in runs:
        r = read_json(Path(folder) / "eval.json")[method]
        d = paired(read_jsonl(Path(folder) / "eval_completions.jsonl"), method, "base")
        finals["proxy"].append(r["proxy"]["mean"])
        finals["gold"].append(r["gold"]["mean"])
        finals["kl"].append(r["kl_to_base"])
        lines.append(
            f"| {name} | {reward_cell(r['proxy'])} | {reward_cell(r['gold'])} | "
            f"{r['kl_to_base']:.3f} | {d['gold']['mean']:+.3f} "
            f"[{d['gold']['ci_low']:+.3f}, {d['gold']['ci_high']:+.3f}] |"
        )
    if len(runs) > 1:

        def ms(xs: list[float]) -> str:
            m = sum(xs) / len(xs)
            sd = (sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5
            return f"{m:.3f} +- {sd:.3f}"

        lines.append(
            f"| mean +- sd over {len(runs)} seeds | {ms(finals['proxy'])} | "
            f"{ms(finals['gold'])} | {ms(finals['kl'])} | |"
        )
    return "\n".join(lines) + "\n"


SEED_METHODS = {"superhf": "SuperHF", "rlhf": "PPO"}


def seed_tables(seeds: Sequence[tuple[str, Path]]) -> list[tuple[str, str]]:
    """(title, seeds table) for each trained method that some seed folder evaluated, then,
    with seeds of both, SuperHF against PPO over their seeds."""
    out, finals = [], {}
    loaded = [(name, Path(f), read_json(Path(f) / "eval.json")) for name, f in seeds]
    for method, label in SEED_METHODS.items():
        runs = [(name, f, ev[method]) for name, f, ev in loaded if method in ev]
        if runs:
            out.append((f"Training seeds of {label}", seeds_table([r[:2] for r in runs], method)))
            finals[method] = [r[2] for r in runs]
    if len(finals) == 2 and min(len(v) for v in finals.values()) > 1:
        out.append(
            (
                "SuperHF against PPO over training seeds",
                seeds_comparison(finals["superhf"], finals["rlhf"]),
            )
        )
    return out


def seeds_comparison(superhf: list[dict], ppo: list[dict]) -> str:
    """Mean held-out reward over each method's seeds, the difference of the means, and in
    how many (SuperHF seed, PPO seed) pairs SuperHF is higher (seeds are independent, so
    every pair counts)."""
    lines = [
        "| reward | SuperHF mean | PPO mean | difference | SuperHF higher in seed pairs |",
        "|---|---|---|---|---|",
    ]
    for which in ("proxy", "gold"):
        a = [r[which]["mean"] for r in superhf]
        b = [r[which]["mean"] for r in ppo]
        higher = sum(x > y for x in a for y in b)
        ma, mb = sum(a) / len(a), sum(b) / len(b)
        lines.append(
            f"| {which} | {ma:.3f} | {mb:.3f} | {ma - mb:+.3f} | {higher} of {len(a) * len(b)} |"
        )
    return "\n".join(lines) + "\n"


def render(metrics: str | Path, seeds: Sequence[tuple[str, Path]] = ()) -> str:
    """All tables of the run whose metrics are in ``metrics`` (a missing file is an error
    naming it); the Table 4 Markdown that evaluate wrote is included as it is. ``seeds``:
    (name, metrics folder) of training seeds; each trained method found in their
    ``eval.json`` gets a table of its seeds."""
    folder = Path(metrics)
    for name in (*FILES, "table4.md", "eval_completions.jsonl"):
        if not (folder / name).is_file():
            raise MissingInputError(f"{folder / name} not found (run the pipeline first)")
    ev, overopt, rm = (json.loads((folder / f).read_text()) for f in FILES)
    table4 = (folder / "table4.md").read_text().split("\n", 2)[-1].strip()
    return (
        f"## Reward models\n\n{reward_models_table(rm)}\n"
        f"## Held-out prompts (n={ev.get('test_prompts')})\n\n{models_table(ev)}\n"
        f"## Paired differences (same prompts; 95% paired bootstrap)\n\n"
        f"{paired_table(read_jsonl(folder / 'eval_completions.jsonl'))}\n"
        + "".join(f"## {title}\n\n{table}\n" for title, table in seed_tables(seeds))
        + f"## Table 4 columns\n\n{table4}\n\n"
        f"## Over-optimisation curves (n={overopt.get('test_prompts')} prompts per point)\n\n"
        f"{curves_table(overopt)}"
    )


def readme_tables(readme: str, heading: str = "# Tables") -> str:
    """The tables of a results README as ``render`` writes them: everything from the first
    ``###`` heading after ``heading`` to the end, each heading one level up."""
    after = readme.split(f"\n{heading}\n", 1)[-1]
    start = after.index("### ")
    return after[start:].replace("### ", "## ")


def main(argv: Iterable[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m superhf.results", description=__doc__)
    ap.add_argument("--metrics", default="metrics", help="the run's metrics folder")
    ap.add_argument("--out", default=None, help="output Markdown file (default: stdout)")
    add_seed_run_arg(
        ap, "eval.json, eval_completions.jsonl: each method it evaluated gets a seeds table"
    )
    ap.add_argument(
        "--study",
        action="store_true",
        help="the hh study's tables (whatever metrics exist) in place of the pilot's",
    )
    args = ap.parse_args(list(argv) if argv is not None else None)
    seeds = seed_runs(args.seed_run, "eval.json")
    text = (render_study if args.study else render)(args.metrics, seeds)
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    from superhf.cli import run

    run(main)
