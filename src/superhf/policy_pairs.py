"""Preference pairs on the policy's own samples (Gao et al. 2022): two completions of the
base policy per prompt, ordered by a judge (the gold). A proxy trained on hh-rlhf pairs alone
sees the gold poorly on what the policy writes (results/hh, piece 7a: within-prompt
agreement 0.537 on the base's samples against 0.670 on hh pairs); these pairs put the
policy's distribution into the proxy's training.

    prompts = pick_prompts(rows, n, seed)            # a seeded subset of the policy prompts
    a, b = sample_two(model, tok, prompts, gen, seed)  # two samples per prompt
    pairs, dropped = judged_pairs(prompts, a, b, gold(a), gold(b))
    train, heldout = split_heldout(pairs, share, seed)
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from superhf.config.common import GenerationConfig
from superhf.generation import sample_completions
from superhf.prompting import format_prompt


def pick_prompts(rows: Sequence[dict], n: int, seed: int) -> list[str]:
    """``n`` prompts drawn without replacement from ``rows`` (seeded), in drawn order; all of
    them (shuffled) when there are fewer."""
    idx = list(range(len(rows)))
    random.Random(seed).shuffle(idx)
    return [rows[i]["prompt"] for i in idx[:n]]


def sample_two(
    model, tok, prompts: Sequence[str], gen: GenerationConfig, seed: int
) -> tuple[list[str], list[str]]:
    """Two trimmed completions of every prompt, drawn in one seeded call (each prompt twice,
    prompt-major, as evaluation draws its samples): (first samples, second samples)."""
    texts = [format_prompt(p, tok, gen) for p in prompts for _ in range(2)]
    torch.manual_seed(seed)
    comps = [c.text for c in sample_completions(model, tok, texts, gen)]
    return comps[0::2], comps[1::2]


def judged_pairs(
    prompts: Sequence[str],
    first: Sequence[str],
    second: Sequence[str],
    score_first: Sequence[float],
    score_second: Sequence[float],
) -> tuple[list[dict], dict[str, int]]:
    """{prompt, chosen, rejected} pairs, chosen = the completion the judge scores higher.
    Dropped, and counted by reason: the two texts equal (nothing to prefer), an empty
    completion (the trimmed sample says nothing), a tie in the judge's scores."""
    pairs: list[dict] = []
    dropped = {"same_text": 0, "empty": 0, "tie": 0}
    for p, a, b, sa, sb in zip(prompts, first, second, score_first, score_second, strict=True):
        if a == b:
            dropped["same_text"] += 1
        elif not a.strip() or not b.strip():
            dropped["empty"] += 1
        elif sa == sb:
            dropped["tie"] += 1
        else:
            chosen, rejected = (a, b) if sa > sb else (b, a)
            pairs.append({"prompt": p, "chosen": chosen, "rejected": rejected})
    return pairs, dropped


def split_heldout(pairs: Sequence[dict], share: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(training pairs, held-out pairs): a seeded ``share`` of the pairs held out (rounded;
    at least one when share > 0 and there are two or more), the rest kept in order."""
    n_out = round(share * len(pairs))
    if share > 0 and len(pairs) >= 2:
        n_out = min(max(n_out, 1), len(pairs) - 1)
    idx = list(range(len(pairs)))
    random.Random(seed).shuffle(idx)
    out = set(idx[:n_out])
    return (
        [p for i, p in enumerate(pairs) if i not in out],
        [p for i, p in enumerate(pairs) if i in out],
    )
