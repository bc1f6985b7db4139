"""The tables of the hh study (issue 24), rendered from its metrics: how good and how
independent the two reward models are, every model's rewards with intervals over seeds,
prompts and samples, and paired differences between methods on the same prompts. Metrics
files and completion rows in, Markdown out (no model, no torch); a missing file leaves its
tables out.

A model's completions (rows of ``eval_completions.jsonl``, in the order evaluate wrote them:
prompt-major, ``sample`` 0..k-1 within a prompt) become an array ``r[seed, prompt, sample]``
(``superhf.study_stats``): the main run is seed 0, each ``--seed-run`` folder that
evaluated a trained method adds a seed of it; the base and best-of-n come from the main run.
Length-controlled gold: the gold reward's residual after a line gold ~ completion length
(characters) fitted on the base's samples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from superhf.io import read_json, read_jsonl
from superhf.judges import policy_correlation
from superhf.study_curves import UNSEEDED, seed_curves, seed_curves_table
from superhf.study_inputs import (
    data_table,
    gold_recipes_table,
    heldout_table,
    interval_cell,
    policy_pairs_table,
    reward_training_table,
)
from superhf.study_stats import (
    hierarchical_bootstrap,
    length_fit,
    length_residual,
    paired_difference,
)

LENGTH = "length (chars)"
Key = Callable[[dict], float]


def kl_text(kl: float, se: float | None = None, kind: str | None = None) -> str:
    """A KL with its standard error, or marked as best-of-n's bound (files written before
    ``kl_kind`` existed carry neither and show the bare number)."""
    if kind == "upper_bound":
        return f"<= {kl:.3f} (bound)"
    return f"{kl:.3f}" + (f" +- {se:.3f}" if se is not None else "")


def _point_interval(p: dict[str, Any], which: str) -> str:
    return f"{p[f'{which}_mean']:.3f} [{p[f'{which}_ci_low']:.3f}, {p[f'{which}_ci_high']:.3f}]"


def curves_table(overopt: dict[str, Any]) -> str:
    """Every point of every over-optimisation curve: method, step (n for best-of-n),
    reward-model queries, KL to the base, proxy and gold reward with intervals."""
    lines = [
        "| method | step / n | reward queries | KL | sqrt KL | proxy | gold |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, pts in overopt.items():
        if not isinstance(pts, list):
            continue
        for p in pts:
            lines.append(
                f"| {method} | {p.get('n', p['step'])} | {p['reward_queries']} | "
                f"{kl_text(p['kl'], p.get('kl_se'), p.get('kl_kind'))} | {p['sqrt_kl']:.3f} | "
                f"{_point_interval(p, 'proxy')} | "
                f"{_point_interval(p, 'gold')} |"
            )
    return "\n".join(lines) + "\n"


def correlation_table(rows: Sequence[dict], n_resamples: int = 1000) -> str:
    """Proxy-gold correlation on policy samples, per model and over every sample
    (``superhf.judges.policy_correlation``), with 95% bootstrap intervals."""
    corr = policy_correlation(rows, n_resamples)
    lines = ["| samples of | n | Pearson r | Spearman rho |", "|---|---|---|---|"]
    for name, c in corr.items():
        cells = [
            interval_cell(c[k], c[f"{k}_ci_low"], c[f"{k}_ci_high"])
            for k in ("pearson", "spearman")
        ]
        lines.append(f"| {name} | {c['n']} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- the models
def model_array(rows: Sequence[dict], key: Key) -> np.ndarray:
    """One run's rows of one model as ``r[prompt, sample]`` (rows in evaluate's order)."""
    k = 1 + max(r.get("sample", 0) for r in rows)
    if len(rows) % k:
        raise ValueError(f"{len(rows)} rows of {rows[0]['model']!r} are not {k} per prompt")
    return np.asarray([key(r) for r in rows], dtype=float).reshape(-1, k)


def seeds_array(runs: Sequence[Sequence[dict]], key: Key) -> np.ndarray:
    """``r[seed, prompt, sample]`` of one model over its runs (the same prompts in each)."""
    arrays = [model_array(rows, key) for rows in runs]
    if len({a.shape for a in arrays}) != 1:
        shapes = [a.shape for a in arrays]
        raise ValueError(f"runs of one model differ in prompts or samples: {shapes}")
    return np.stack(arrays)


def keys(base_rows: Sequence[dict]) -> dict[str, Key]:
    """The measured columns: proxy, gold, length-controlled gold (when the base's samples
    allow a line) and completion length."""
    out: dict[str, Key] = {"proxy": lambda r: r["proxy"], "gold": lambda r: r["gold"]}
    lengths = [len(r["completion"]) for r in base_rows]
    if len(set(lengths)) > 1:
        fit = length_fit(lengths, [r["gold"] for r in base_rows])

        def controlled(r: dict) -> float:
            return float(length_residual([len(r["completion"])], [r["gold"]], fit)[0])

        out["gold, length-controlled"] = controlled
    out[LENGTH] = lambda r: float(len(r["completion"]))
    return out


def runs_by_model(main: Sequence[dict], seeds: Sequence[Sequence[dict]]) -> dict[str, list]:
    """Each model's runs: the main run's rows, then each seed run's rows of a trained method."""
    out: dict[str, list] = {}
    for i, rows in enumerate([main, *seeds]):
        for name in dict.fromkeys(r["model"] for r in rows):
            if i == 0 or name not in UNSEEDED:
                out.setdefault(name, []).append([r for r in rows if r["model"] == name])
    return out


def kl_cell(name: str, evals: Sequence[dict]) -> str:
    """KL to the base: one run's estimate +- its SE, the mean and sd over seeds, or
    best-of-n's bound; n/a when no eval.json has it."""
    blocks = [e[name] for e in (evals[:1] if name in UNSEEDED else evals) if name in e]
    if blocks and "kl_to_base_bound" in blocks[0]:
        return f"<= {blocks[0]['kl_to_base_bound']:.3f} (bound)"
    kls = [b["kl_to_base"] for b in blocks if "kl_to_base" in b]
    if not kls:
        return "n/a"
    if len(kls) == 1:
        se = blocks[0].get("kl_to_base_se")
        return f"{kls[0]:.3f}" + (f" +- {se:.3f}" if se is not None else "")
    sd = float(np.std(kls, ddof=1))
    return f"{np.mean(kls):.3f} (sd {sd:.3f} over {len(kls)} seeds)"


def study_models_table(
    by_model: dict[str, list],
    columns: dict[str, Key],
    evals: Sequence[dict],
    n_resamples: int = 1000,
) -> str:
    """Every model: each column's mean with its hierarchical 95% interval (seeds, prompts,
    samples), the shape it was measured on, and KL to the base."""
    head = " | ".join(columns)
    lines = [
        f"| model | seeds x prompts x samples | {head} | KL to base |",
        "|---|---|" + "---|" * len(columns) + "---|",
    ]
    for name, runs in by_model.items():
        cells = []
        for key in columns.values():
            arr = seeds_array(runs, key)
            iv = hierarchical_bootstrap(arr, n_resamples)
            cells.append(interval_cell(iv.mean, iv.low, iv.high))
        shape = " x ".join(map(str, arr.shape))
        lines.append(f"| {name} | {shape} | {' | '.join(cells)} | {kl_cell(name, evals)} |")
    return "\n".join(lines) + "\n"


def comparisons(models: Sequence[str]) -> list[tuple[str, str]]:
    """Every model against the base, then SuperHF against every other model but the base."""
    pairs = [(m, "base") for m in models if m != "base" and "base" in models]
    if "superhf" in models:
        pairs += [("superhf", m) for m in models if m not in ("superhf", "base")]
    return pairs


def study_paired_table(
    by_model: dict[str, list], columns: dict[str, Key], n_resamples: int = 1000
) -> str:
    """A minus B on the same prompts for each of ``comparisons``: the mean difference of
    each reward column with its paired interval (prompts drawn once for both; seeds and
    samples for each on its own)."""
    rewards = {c: k for c, k in columns.items() if c != LENGTH}
    lines = ["| comparison | " + " | ".join(rewards) + " |", "|---|" + "---|" * len(rewards)]
    for a, b in comparisons(list(by_model)):
        cells = []
        for key in rewards.values():
            iv = paired_difference(
                seeds_array(by_model[a], key), seeds_array(by_model[b], key), n_resamples
            )
            cells.append(interval_cell(iv.mean, iv.low, iv.high, signed=True))
        lines.append(f"| {a} - {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- rendering
def _load(path: Path) -> Any:
    """A metrics file's contents, None when it does not exist."""
    if not path.is_file():
        return None
    return read_jsonl(path) if path.suffix == ".jsonl" else read_json(path)


def study_sections(folder: Path, seeds: Sequence[tuple[str, Path]]) -> list[tuple[str, str]]:
    """(title, table) of the hh study's model tables, from the completions of the main run
    and of each seed run, and their eval.json for KL."""
    rows = _load(folder / "eval_completions.jsonl")
    if not rows:
        return []
    seed_rows = [_load(Path(f) / "eval_completions.jsonl") for _, f in seeds]
    by_model = runs_by_model(rows, [r for r in seed_rows if r])
    columns = keys(by_model["base"][0] if "base" in by_model else [])
    evals = [_load(Path(f) / "eval.json") or {} for f in (folder, *(f for _, f in seeds))]
    return [
        ("Proxy-gold correlation on policy samples", correlation_table(rows)),
        (
            "Models (95% hierarchical bootstrap over seeds, prompts and samples)",
            study_models_table(by_model, columns, evals),
        ),
        (
            "Paired differences (same prompts, 95% paired bootstrap)",
            study_paired_table(by_model, columns),
        ),
    ]


def render_study(metrics: str | Path, seeds: Sequence[tuple[str, Path]] = ()) -> str:
    """The hh study's tables (``superhf.study_tables``) from whatever metrics ``metrics``
    holds: a missing file leaves its tables out. ``seeds``: (name, metrics folder) of extra
    training seeds."""
    folder = Path(metrics)
    parts = []
    data = _load(folder / "data.json")
    if data and data.get("split") == "parts":
        parts.append(("Data: hh-rlhf split by first prompt", data_table(data)))
    rm = _load(folder / "reward_model.json")
    if rm and any("steps" in (rm.get(w) or {}) for w in ("proxy", "gold")):
        parts.append(("Reward models: training", reward_training_table(rm)))
    if rm and rm.get("heldout"):
        parts.append(("Reward models on held-out pairs (human labels)", heldout_table(rm)))
    if rm and rm.get("policy_pairs"):
        title = "The proxy's pairs of base-policy samples, ordered by the gold"
        parts.append((title, policy_pairs_table(rm["policy_pairs"])))
    recipes = {f.stem: _load(f) for f in sorted((folder / "gold_recipes").glob("*.json"))}
    if recipes:
        title = "Gold recipes tried (held-out pairs, human labels, 95% Wilson)"
        parts.append((title, gold_recipes_table(recipes)))
    parts += study_sections(folder, seeds)
    overopt = _load(folder / "overoptimisation.json")
    curves = seed_curves([overopt, *(_load(Path(f) / "overoptimisation.json") for _, f in seeds)])
    n = (overopt or {}).get("test_prompts")
    pool = {p.get("prompts") for p in (overopt or {}).get("best_of_n") or []} - {None, n}
    pool_prompts = pool.pop() if len(pool) == 1 else None
    if any(len(runs) > 1 for m, runs in curves.items() if m not in UNSEEDED):
        title = (
            "Over-optimisation over training seeds "
            "(each seed read at the same KL, linear between its points"
            + (
                f"; best-of-n: its pool, on the first {pool_prompts} prompts"
                if pool_prompts
                else ""
            )
            + ")"
        )
        parts.append((title, seed_curves_table(curves)))
    if overopt:
        pool_text = f"; best-of-n: the first {pool_prompts} of them" if pool_prompts else ""
        title = f"Over-optimisation curves (n={n} prompts per point{pool_text})"
        parts.append((title, curves_table(overopt)))
    return "\n".join(f"## {title}\n\n{table}" for title, table in parts)
