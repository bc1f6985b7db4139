"""Where a sampled completion ends: the trim rules that cut it at the first sign of the
model starting the next dialogue turn, applied to its text and to its sampled token ids.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

# trim "later" (today's rule): the next turn starts at "Human:", "Assistant:", or a
# "\n\n<Name>:" of one to three words.
TURN_RE = re.compile(r"Human:|Assistant:|\n\n[^\s:]+(?: [^\s:]+){0,2}:")
# trim "paper": the paper-era regex (../shared/REFERENCE.md): cuts at the first newline,
# double quote or hyphen too (single-line answers), and at the bare word "Human".
PAPER_TRIM_RE = re.compile(r'\n\n[^:]+:|\n|"|-|Human|Assistant')
TRIM_RES = {"later": TURN_RE, "paper": PAPER_TRIM_RE}


def trim_point(text: str, mode: str = "later") -> int | None:
    """Character index where ``text`` is cut under trim ``mode``; None when it is not cut."""
    if mode == "none":
        return None
    m = TRIM_RES[mode].search(text)
    return m.start() if m else None


def trim_completion(text: str, mode: str = "later") -> str:
    """Cut ``text`` at the first sign of a new dialogue turn (``mode``), and strip it."""
    cut = trim_point(text, mode)
    return (text if cut is None else text[:cut]).strip()


def cut_ids_at_trim(
    ids: Sequence[int], decode: Callable[[list[int]], str], mode: str = "later"
) -> list[int]:
    """The sampled ``ids`` a trimmed completion consists of: all of them when the trim cuts
    nothing (a sampled EOS included), else the shortest prefix whose decoded text covers
    the text kept before the cut (no re-tokenisation: the tokens are the policy's own).
    ``decode`` turns ids into text as the completion was decoded (special tokens skipped).
    """
    ids = list(ids)
    raw = decode(ids)
    cut = trim_point(raw, mode)
    if cut is None:
        return ids
    kept = raw[:cut].rstrip()
    if not kept.strip():
        return []
    for n in range(1, len(ids) + 1):
        if decode(ids[:n]).startswith(kept):
            return ids[:n]
    return ids
