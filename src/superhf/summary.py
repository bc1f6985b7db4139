"""Headline numbers: the few metrics a researcher compares across experiments.

``headline`` picks them from the detailed JSON files the other stages write (pure: dicts in,
a dict out); stage ``summary`` writes the result to ``metrics/summary.json``, the only file
DVC treats as metrics, so ``dvc exp show`` has a column per headline number instead of every
per-dataset count. ``exp_show_rows`` and ``seed_table`` turn ``dvc exp show --json`` into a
compact mean/spread table over a group of experiments (``scripts/seed_sweep.sh``).

Which numbers, and where each comes from (a missing source key leaves its number out, so a
renamed or restructured detail file degrades to a shorter summary, never to a crash):

- per model (base, best_of_n, superhf, rlhf, rloo, grpo; those evaluated), from
  ``eval.json``: ``proxy`` and ``gold`` (held-out mean reward) and ``proxy_ci``/``gold_ci``
  (half-width of the 95% bootstrap interval; the endpoints are in ``eval.json``);
  ``kl`` (KL to base; best-of-n: the analytic bound ``log n - (n-1)/n``; base has none,
  it is 0 by definition); ``bench`` (see ``benchmark_headline``; best-of-n has no
  benchmarks, it is the base policy's weights).
- every trained method (superhf, rlhf, rloo, grpo), from its stage JSON: ``train_gain``
  (training reward, last quarter minus first quarter) and ``wall_s`` (the training stage's
  wall time).
- ``reward_model``, from ``reward_model.json``: held-out pair accuracy of the proxy and the
  gold model, and of the length-only baseline.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

MODELS = ("base", "best_of_n", "superhf", "rlhf", "rloo", "grpo")
# Within one benchmark task: the score that stands for it, in this order of preference.
# lm-eval writes keys like "acc,none"; the part before the comma is matched.
SCORE_KEYS = ("acc", "accuracy", "f1", "em", "exact_match")
# Never averaged into the headline: not a score in [0, 1], or not a score at all.
SKIP_KEYS = ("ppl", "perplexity", "n", "stderr", "seed", "shots")


def _number(x: Any) -> float | None:
    """``x`` as a finite float, else None (bools, strings, NaN and dicts are not numbers)."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x) if math.isfinite(x) else None


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, Mapping):
            return None
        d = d.get(k)
    return d


def task_score(node: Any) -> float | None:
    """One task's headline score: a number in [0, 1] as it is; a dict by its first
    ``SCORE_KEYS`` entry, else the mean of its sub-tasks' scores (HHH's four subsets).
    Perplexities, counts, stderrs and anything outside [0, 1] are not scores."""
    x = _number(node)
    if x is not None:
        return x if 0.0 <= x <= 1.0 else None
    if not isinstance(node, Mapping):
        return None
    keyed = {str(k).split(",")[0]: v for k, v in node.items()}
    for key in SCORE_KEYS:
        s = task_score(keyed.get(key))
        if s is not None:
            return s
    subs = [
        task_score(v)
        for k, v in node.items()
        if not any(str(k).split(",")[0] == s or "stderr" in str(k) for s in SKIP_KEYS)
    ]
    subs = [s for s in subs if s is not None]
    return sum(subs) / len(subs) if subs else None


NOT_STANDARD = ("paper", "lm_eval", "smoke", "n", "source", "protocol")


def benchmark_headline(benchmarks: Any) -> float | None:
    """Unweighted mean over benchmark tasks of each task's ``task_score``.

    With today's ``eval.json``: mean of tweets accuracy, SQuAD F1, LAMBADA accuracy, WSC
    accuracy and HHH (mean of its subtasks). Not a number the paper reports: a one-column
    signal that capabilities moved; the per-task numbers are in ``eval.json`` and Table 4.
    """
    if not isinstance(benchmarks, Mapping):
        return None
    # the standard tasks only: the paper protocol and lm-eval tasks sit beside them
    standard = {k: v for k, v in benchmarks.items() if k not in NOT_STANDARD}
    return task_score(standard)


def _ci_half(block: Any) -> float | None:
    lo, hi = _number(_get(block, "ci_low")), _number(_get(block, "ci_high"))
    return (hi - lo) / 2 if lo is not None and hi is not None else None


def headline(
    evaluation: Mapping[str, Any],
    reward_model: Mapping[str, Any],
    superhf: Mapping[str, Any],
    rlhf: Mapping[str, Any],
    others: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, dict[str, float]]:
    """The headline numbers (module docstring) from the detailed JSON files' contents;
    ``others``: the stage JSON of further trained methods by name (rloo, grpo)."""
    train = {"superhf": superhf, "rlhf": rlhf, **(others or {})}
    out: dict[str, dict[str, float | None]] = {}
    for name in MODELS:
        ev = evaluation.get(name)
        if not isinstance(ev, Mapping):
            continue
        row: dict[str, float | None] = {}
        for which in ("proxy", "gold"):
            row[which] = _number(_get(ev, which, "mean"))
            row[f"{which}_ci"] = _ci_half(ev.get(which))
        if name != "base":
            row["kl"] = _number(ev.get("kl_to_base", ev.get("kl_to_base_bound")))
        row["bench"] = benchmark_headline(ev.get("benchmarks"))
        if name in train:
            row["train_gain"] = _number(train[name].get("reward_gain"))
            row["wall_s"] = _number(train[name].get("wall_seconds"))
        out[name] = row
    out["reward_model"] = {
        "proxy_acc": _number(_get(reward_model, "proxy", "test_accuracy")),
        "gold_acc": _number(_get(reward_model, "gold", "test_accuracy")),
        "length_acc": _number(reward_model.get("length_baseline_accuracy")),
    }
    return {k: {m: v for m, v in row.items() if v is not None} for k, row in out.items()}


# ----------------------------------------------------------------------------- sweeps
def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            flat.update(_flatten(v, key))
        else:
            flat[key] = v
    return flat


def exp_show_rows(shown: Sequence[Mapping[str, Any]], metrics_file: str) -> list[dict[str, Any]]:
    """Every experiment (and the baseline commits) in ``dvc exp show --json`` output as
    ``{"name", "rev", "metrics"}``, ``metrics`` the flattened contents of ``metrics_file``.
    ``kind`` is ``workspace``, ``commit`` (a baseline) or ``experiment``. Rows without that
    file (queued, failed) are left out."""
    rows = []

    def add(entry: Mapping[str, Any], name: str | None, kind: str) -> None:
        data = entry.get("data") or {}
        m = _get(data, "metrics", metrics_file, "data")
        if isinstance(m, Mapping):
            rev = str(entry.get("rev") or data.get("rev") or "")
            name = name or (rev if rev == "workspace" else rev[:7])
            rows.append({"name": name, "rev": rev, "kind": kind, "metrics": _flatten(m)})

    for commit in shown:
        rev = commit.get("rev")
        add(commit, commit.get("name"), "workspace" if rev == "workspace" else "commit")
        for exp in commit.get("experiments") or []:
            for entry in exp.get("revs") or []:
                add(entry, entry.get("name") or exp.get("name"), "experiment")
    return rows


def seed_table(rows: Sequence[Mapping[str, Any]], keys: Iterable[str] | None = None) -> str:
    """A Markdown table, one line per headline number: mean, sample standard deviation, min
    and max over ``rows`` (from ``exp_show_rows``), and each experiment's value. With two or
    more experiments, numbers equal in all of them (the stages the sweep did not rerun) are
    listed by name under the table instead of taking a line each."""
    names = [r["name"] for r in rows]
    if keys is None:
        keys = list(dict.fromkeys(k for r in rows for k in r["metrics"]))
    head = ["metric", "mean", "std", "min", "max", *names]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    same = []
    for key in keys:
        vals = [_number(r["metrics"].get(key)) for r in rows]
        got = [v for v in vals if v is not None]
        if not got:
            continue
        if len(rows) > 1 and len(got) == len(vals) and len(set(got)) == 1:
            same.append(key)
            continue
        std = statistics.stdev(got) if len(got) > 1 else 0.0
        stats = [statistics.fmean(got), std, min(got), max(got)]
        cells = [f"{v:.4g}" for v in stats] + ["-" if v is None else f"{v:.4g}" for v in vals]
        lines.append("| " + " | ".join([key, *cells]) + " |")
    if same:
        lines.append(f"\nthe same in every experiment: {', '.join(same)}")
    return "\n".join(lines) + "\n"
