"""Table 4's columns: their headers, where each value and its n sit in a model's
``benchmarks`` result, and which columns a set of results has. Pure: no model code, so the
figures and the tables can import it without the model stack."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# The HHH subsets the paper's script scored, in Table 4's order (the standard protocol's
# columns use the same three).
PAPER_HHH = ("helpful", "honest", "harmless")


# (header, protocol and task, key path of the value, key path of n) per column.
STANDARD_COLUMNS = [
    ("Twitter", "tweet_eval sentiment, 3-way", ("tweets",), ("n", "tweets")),
    ("SQuAD F1", "SQuAD v1.1 dev, greedy", ("squad", "f1"), ("n", "squad")),
    ("Lambada", "lambada_openai acc", ("lambada", "acc"), ("n", "lambada")),
    ("Winograd", "WSC273 partial scoring", ("wsc",), ("n", "wsc")),
    *[
        (s.capitalize(), f"HHH {s}, summed ll", ("hhh", s), ("n", "hhh", s))
        for s in ("helpful", "honest", "harmless")
    ],
]
PAPER_COLUMNS = [
    (
        "Twitter",
        "binary tweets 3-shot, '1'/'0' logits",
        ("paper", "twitter_binary", "acc"),
        ("paper", "twitter_binary", "n"),
    ),
    ("SQuAD", "GLUE QNLI 3-shot", ("paper", "qnli", "acc"), ("paper", "qnli", "n")),
    ("Lambada", "lambada_openai acc", ("paper", "lambada", "acc"), ("paper", "lambada", "n")),
    ("Winograd", "GLUE WNLI 3-shot", ("paper", "wnli", "acc"), ("paper", "wnli", "n")),
    *[
        (
            s.capitalize(),
            f"HHH {s}, dialogue mean ll",
            ("paper", "hhh", s, "acc"),
            ("paper", "hhh", s, "n"),
        )
        for s in PAPER_HHH
    ],
]


# The standard protocol's columns as (header, key path of the value): the benchmark figure.
TABLE4_COLUMNS = [(head, keys) for head, _, keys, _ in STANDARD_COLUMNS]


def get_path(d: Any, keys: Sequence[str]) -> Any:
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d


def table_columns(benches: Sequence[dict]) -> list[tuple[str, tuple[str, ...]]]:
    """(header, key path) of every benchmark column that some model has. The header names
    the protocol, the task and n; fixture results are marked as a smoke run."""
    cols = []
    smoke = any(b.get("smoke") for b in benches)
    for protocol, spec in (("standard", STANDARD_COLUMNS), ("paper", PAPER_COLUMNS)):
        for head, task, keys, nkeys in spec:
            ns = {get_path(b, nkeys) for b in benches if get_path(b, keys) is not None}
            if not ns:
                continue
            n = "/".join(str(x) for x in sorted(ns, key=str))
            tag = f"{protocol}, smoke" if smoke and protocol == "standard" else protocol
            cols.append((f"{head} ({tag}: {task}, n={n})", keys))
    lm_tasks = sorted(
        {(t, m) for b in benches for t, r in b.get("lm_eval", {}).items() for m in r if m != "n"}
    )
    for t, m in lm_tasks:
        ns = {get_path(b, ("lm_eval", t, "n")) for b in benches} - {None}
        n = "/".join(str(x) for x in sorted(ns)) or "?"
        cols.append((f"{t} (lm-eval: {m}, n={n})", ("lm_eval", t, m)))
    return cols
