"""The standard protocol: each Table 4 task as lm-eval scores it (HHH, LAMBADA, WSC273,
tweet sentiment, SQuAD), and ``run_all``, every task on one model."""

from __future__ import annotations

import random
import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from superhf.capabilities.scoring import loglikelihood

TWEET_LABELS = (" negative", " neutral", " positive")


def argmax_random_ties(scores: Sequence[float], rng: random.Random) -> int:
    """Index of the maximum; equal maxima are broken at random (never 'first maximum')."""
    best = max(scores)
    return rng.choice([i for i, s in enumerate(scores) if s == best])


def multiple_choice(
    model, tok, items: list[tuple[str, list[str]]], rng: random.Random, bs: int
) -> list[int]:
    reqs = [(ctx, ch) for ctx, choices in items for ch in choices]
    lls = [ll for ll, _ in loglikelihood(model, tok, reqs, bs)]
    picks, k = [], 0
    for _, choices in items:
        picks.append(argmax_random_ties(lls[k : k + len(choices)], rng))
        k += len(choices)
    return picks


def hhh_accuracy(model, tok, examples: list[dict], rng: random.Random, bs: int = 16) -> float:
    """BIG-bench protocol: context '\\nHuman: ' + input + '\\nAssistant:', summed ll."""
    items = [
        ("\nHuman: " + e["input"] + "\nAssistant:", [" " + c for c in e["choices"]])
        for e in examples
    ]
    picks = multiple_choice(model, tok, items, rng, bs)
    return sum(e["labels"][p] == 1 for e, p in zip(examples, picks)) / len(examples)


def lambada(model, tok, rows: list[dict], bs: int = 16) -> dict[str, float]:
    res = loglikelihood(model, tok, [(r["context"], r["continuation"]) for r in rows], bs)
    import math

    return {
        "acc": sum(g for _, g in res) / len(res),
        "ppl": math.exp(-sum(ll for ll, _ in res) / len(res)),
    }


def wsc(model, tok, rows: list[dict], rng: random.Random, bs: int = 16) -> float:
    """Partial scoring: the shared continuation after each candidate context."""
    reqs = [(ctx, " " + r["continuation"]) for r in rows for ctx in r["context_options"]]
    lls = [ll for ll, _ in loglikelihood(model, tok, reqs, bs)]
    correct, k = 0, 0
    for r in rows:
        n = len(r["context_options"])
        correct += argmax_random_ties(lls[k : k + n], rng) == r["gold"]
        k += n
    return correct / len(rows)


def tweet_prompt(text: str) -> str:
    return f"Tweet: {text}\nSentiment:"


def tweets(
    model, tok, data: dict[str, list[dict]], shots: int, rng: random.Random, bs: int = 16
) -> float:
    """3-way sentiment by argmax log-likelihood, ``shots`` examples drawn from val."""
    items = []
    for r in data["test"]:
        demo = rng.sample(data["val"], shots) if shots else []
        prefix = "".join(tweet_prompt(d["text"]) + TWEET_LABELS[d["label"]] + "\n\n" for d in demo)
        items.append((prefix + tweet_prompt(r["text"]), list(TWEET_LABELS)))
    picks = multiple_choice(model, tok, items, rng, bs)
    return sum(p == r["label"] for p, r in zip(picks, data["test"])) / len(items)


def normalize_answer(s: str) -> str:
    """Official SQuAD v1.1 normalisation: lower, drop punctuation, articles, extra spaces."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def squad_f1(prediction: str, truth: str) -> float:
    p, t = normalize_answer(prediction).split(), normalize_answer(truth).split()
    common = Counter(p) & Counter(t)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(t)
    return 2 * precision * recall / (precision + recall)


def squad_em(prediction: str, truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(truth))


def squad_prompt(r: dict) -> str:
    lines = (
        f"Title: {r['title']}",
        f"Background: {r['context']}",
        f"Question: {r['question']}",
        "Answer:",
    )
    return "\n\n".join(lines)


def squad(model, tok, rows: list[dict], max_new_tokens: int = 32, bs: int = 8) -> dict[str, float]:
    """Greedy generation to the first newline; EM and F1 against the best reference."""
    from superhf.prompting import tokenize_prompts

    device = next(model.parameters()).device
    preds = []
    for s in tqdm(range(0, len(rows), bs), desc="squad", disable=None, delay=2, leave=False):
        chunk = rows[s : s + bs]
        texts = [squad_prompt(r) for r in chunk]
        enc = tokenize_prompts(tok, texts, 1024).to(device)
        with torch.inference_mode():
            # the answer ends at the first newline: stop there instead of at max_new_tokens
            seqs = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
                temperature=None,
                top_p=None,
                top_k=None,
                stop_strings=["\n"],
                tokenizer=tok,
            )
        for t in tok.batch_decode(seqs[:, enc["input_ids"].shape[1] :], skip_special_tokens=True):
            preds.append(t.strip().split("\n")[0].strip())
    em = sum(max(squad_em(p, a) for a in r["answers"]) for p, r in zip(preds, rows)) / len(rows)
    f1 = sum(max(squad_f1(p, a) for a in r["answers"]) for p, r in zip(preds, rows)) / len(rows)
    return {"em": em, "f1": f1}


def subsample(rows: list, n: int | None, rng: random.Random) -> list:
    if n is None or len(rows) <= n:
        return rows
    return [rows[i] for i in sorted(rng.sample(range(len(rows)), n))]


@dataclass(frozen=True)
class StandardRun:
    """How ``run_all`` samples and batches the standard tasks (``evaluate.benchmarks``)."""

    max_examples: dict[str, int | None] = field(default_factory=dict)  # per task; None = all
    shots: int = 0  # tweet sentiment examples drawn from val before each test tweet
    seed: int = 0  # the subsample (same for every model), tie breaks and shots
    batch_size: int = 16  # requests per log-likelihood forward (SQuAD generates half)


def run_all(model, tok, data: dict[str, Any], run: StandardRun) -> dict[str, Any]:
    """Every benchmark on one model; same subsample for every model (seeded)."""
    cap = run.max_examples.get
    pick = random.Random(run.seed)
    hhh = {sub: subsample(ex, cap("hhh"), pick) for sub, ex in data["hhh"].items()}
    lam = subsample(data["lambada"], cap("lambada"), pick)
    wsc_rows = subsample(data["wsc"], cap("wsc"), pick)
    tw = {
        "test": subsample(data["tweets"]["test"], cap("tweets"), pick),
        "val": data["tweets"]["val"],
    }
    sq = subsample(data["squad"], cap("squad"), pick)
    rng = random.Random(run.seed + 1)  # tie breaks and shots, drawn in the order below
    bs = run.batch_size
    return {
        "hhh": {sub: hhh_accuracy(model, tok, ex, rng, bs) for sub, ex in hhh.items()},
        "lambada": lambada(model, tok, lam, bs),
        "wsc": wsc(model, tok, wsc_rows, rng, bs),
        "tweets": tweets(model, tok, tw, run.shots, rng, bs),
        "squad": squad(model, tok, sq, bs=max(1, bs // 2)),
        "n": {
            "hhh": {sub: len(ex) for sub, ex in hhh.items()},
            "lambada": len(lam),
            "wsc": len(wsc_rows),
            "tweets": len(tw["test"]),
            "squad": len(sq),
        },
    }
