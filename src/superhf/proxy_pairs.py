"""The proxy's training pairs under ``proxy_labels: gold``, as a file a later run can train on.

Under Gao et al.'s protocol the proxy learns the gold's order of pairs: hh pairs relabelled by
the gold, and pairs of two base-policy samples ordered by it. Those are discrete decisions on
float scores. On another CPU the gold's scores (and the base's samples) differ in their last
bits, a few near-ties come out the other way, and the proxy is another model
(results/hh/rebuilds/2026-12-06). So the stage writes the pairs it derived, as references into
its inputs plus the policy samples' texts, and a rebuild trains the proxy on that record
instead of deriving it again (``--proxy-pairs``); only float-level differences remain.

    rows = encode(hh_share, swapped, train_rows, policy_train, policy_heldout, prompt_rows)
    hh, policy_train, policy_heldout = decode(rows, train_rows, prompt_rows, source)

One row per pair, in the proxy's training order, the held-out policy pairs last:
``{"hh": i, "swap": bool}`` (row i of the preference training file, chosen and rejected
swapped when the gold preferred the rejected one) or ``{"prompt": j, "chosen": ...,
"rejected": ..., "heldout": bool}`` (row j of the policy prompts).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from superhf.errors import BadInputError
from superhf.io import atomic_path


def swapped_flags(before: Sequence[dict], after: Sequence[dict]) -> list[bool]:
    """Which pairs a relabelling swapped (``after[k]``'s chosen is ``before[k]``'s rejected
    and the two differ; a pair of equal texts is never counted as swapped)."""
    return [
        a["chosen"] != b["chosen"] and a["chosen"] == b["rejected"]
        for b, a in zip(before, after, strict=True)
    ]


def hh_rows(share: Sequence[dict], train_rows: Sequence[dict]) -> list[int]:
    """The rows of ``train_rows`` that ``share``'s pairs are (the same objects, in order)."""
    where = {id(p): i for i, p in enumerate(train_rows)}
    return [where[id(p)] for p in share]


def encode(
    hh_share: Sequence[dict],
    swapped: Sequence[bool],
    train_rows: Sequence[dict],
    policy_train: Sequence[dict],
    policy_heldout: Sequence[dict],
    prompt_rows: Sequence[dict],
) -> list[dict[str, Any]]:
    """The rows of the record (module docstring). ``hh_share`` are pair dicts out of
    ``train_rows`` (the same objects, as ``split_pairs`` returns them); policy pairs name
    their prompt by its first row in ``prompt_rows``."""
    first_row: dict[str, int] = {}
    for j, r in enumerate(prompt_rows):
        first_row.setdefault(r["prompt"], j)
    rows: list[dict[str, Any]] = [
        {"hh": i, "swap": bool(s)}
        for i, s in zip(hh_rows(hh_share, train_rows), swapped, strict=True)
    ]
    for heldout, pairs in ((False, policy_train), (True, policy_heldout)):
        rows += [
            {
                "prompt": first_row[p["prompt"]],
                "chosen": p["chosen"],
                "rejected": p["rejected"],
                "heldout": heldout,
            }
            for p in pairs
        ]
    return rows


def decode(
    rows: Sequence[dict], train_rows: Sequence[dict], prompt_rows: Sequence[dict], source: str
) -> tuple[list[dict], list[dict], list[dict]]:
    """(hh pairs as relabelled, policy training pairs, held-out policy pairs) from the
    record's ``rows``; a row that does not fit the inputs is a BadInputError naming
    ``source`` and the row."""
    hh: list[dict] = []
    policy: dict[bool, list[dict]] = {False: [], True: []}
    for n, row in enumerate(rows, 1):
        if set(row) == {"hh", "swap"} and _index(row["hh"], train_rows) and _flag(row["swap"]):
            pair = train_rows[row["hh"]]
            if row["swap"]:
                pair = {**pair, "chosen": pair["rejected"], "rejected": pair["chosen"]}
            hh.append(dict(pair))
        elif (
            set(row) == {"prompt", "chosen", "rejected", "heldout"}
            and _index(row["prompt"], prompt_rows)
            and isinstance(row["chosen"], str)
            and isinstance(row["rejected"], str)
            and _flag(row["heldout"])
        ):
            text = prompt_rows[row["prompt"]]["prompt"]
            pair = {"prompt": text, "chosen": row["chosen"], "rejected": row["rejected"]}
            policy[row["heldout"]].append(pair)
        else:
            raise BadInputError(
                f"{source} row {n}: expected {{hh, swap}} with hh a row of the preference "
                f"training file ({len(train_rows)} rows) or {{prompt, chosen, rejected, "
                f"heldout}} with prompt a row of the policy prompts ({len(prompt_rows)} rows)"
            )
    return hh, policy[False], policy[True]


def _index(value: Any, rows: Sequence[dict]) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(rows)


def _flag(value: Any) -> bool:
    return isinstance(value, bool)


def dumps(rows: Sequence[dict]) -> bytes:
    """The record's canonical bytes (one JSON object per line)."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def sha256(rows: Sequence[dict]) -> str:
    """Fingerprint of the record, the same whether derived or read back."""
    return hashlib.sha256(dumps(rows)).hexdigest()


def write(path: str | Path, rows: Sequence[dict]) -> None:
    """Write the record gzipped, atomically, the same bytes for the same rows (no mtime)."""
    with (
        atomic_path(path) as tmp,
        tmp.open("wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f,
    ):
        f.write(dumps(rows))
