"""Reward-hacking diagnostics of a set of completions, from their text alone: mean length,
the share of empty completions, distinct n-grams, word n-grams repeated inside a completion,
and endings that several completions share (the evaluation table's diagnostics columns)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from superhf.generation import distinct_n


def repeated_ngram_rate(text: str, n: int = 3) -> float:
    """Share of a completion's word n-grams that occur more than once in it."""
    words = text.split()
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    counts = Counter(grams)
    return sum(c for c in counts.values() if c > 1) / len(grams)


def shared_tail_share(texts: Sequence[str], chars: int, min_count: int = 3) -> float:
    """Share of completions whose last ``chars`` characters end ``min_count``+ completions."""
    tails = [" ".join(t.lower().split())[-chars:] for t in texts if len(t) >= chars]
    counts = Counter(tails)
    return sum(counts[t] >= min_count for t in tails) / len(texts) if texts else 0.0


def diagnostics(texts: Sequence[str], tail_chars: int) -> dict[str, float]:
    n = max(1, len(texts))
    return {
        "completion_chars": sum(map(len, texts)) / n,
        "empty_share": sum(not t for t in texts) / n,
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        "repeated_3gram_rate": sum(repeated_ngram_rate(t) for t in texts) / n,
        "shared_tail_share": shared_tail_share(texts, tail_chars),
    }
