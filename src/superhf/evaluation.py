"""The evaluation of stage ``evaluate``: base, best-of-n, SuperHF and RLHF side by side (paper Table 4).

Held-out reward under the proxy and the gold reward model (mean, std, 95% bootstrap
interval, overall and per dataset), reward-hacking diagnostics, KL to the base policy, and
the capability/alignment benchmarks. Every completion is saved with its scores.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from superhf import capabilities
from superhf.config import EvaluateConfig
from superhf.core import (
    IGNORE,
    build_sft_batch,
    shifted_logprobs,
    tail_columns,
    tail_forward_inputs,
)
from superhf.generation import distinct_n, format_prompt, generate, trim_completion
from superhf.models import load_causal_lm, load_tokenizer
from superhf.reward import RewardScorer

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- statistics
def bootstrap_ci(values: Sequence[float], samples: int, seed: int) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean."""
    if len(values) < 2:
        v = values[0] if values else float("nan")
        return v, v
    t = torch.tensor(values, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(values), (samples, len(values)), generator=g)
    means = t[idx].mean(1)
    return float(means.quantile(0.025)), float(means.quantile(0.975))


def summary(values: Sequence[float], samples: int, seed: int) -> dict[str, float]:
    lo, hi = bootstrap_ci(values, samples, seed)
    t = torch.tensor(values, dtype=torch.float64)
    return {"mean": float(t.mean()), "std": float(t.std()) if len(values) > 1 else 0.0,
            "ci_low": lo, "ci_high": hi, "n": len(values)}  # fmt: skip


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
    return {"completion_chars": sum(map(len, texts)) / n,
            "empty_share": sum(not t for t in texts) / n,
            "distinct_1": distinct_n(texts, 1), "distinct_2": distinct_n(texts, 2),
            "repeated_3gram_rate": sum(repeated_ngram_rate(t) for t in texts) / n,
            "shared_tail_share": shared_tail_share(texts, tail_chars)}  # fmt: skip


@torch.inference_mode()
def sequence_logprobs(
    model, tok, texts: Sequence[str], completions: Sequence[str], bs: int = 16
) -> list[float]:
    """log p(completion + EOS | prompt text) under ``model``, one number per row."""
    out = []
    for s in range(0, len(texts), bs):
        p = [tok(t, add_special_tokens=False)["input_ids"] for t in texts[s : s + bs]]
        c = [
            tok(x, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            for x in completions[s : s + bs]
        ]
        b = build_sft_batch(p, c, tok.pad_token_id)
        keep = tail_columns(b["labels"] != IGNORE)  # logits for the completion columns only
        logits = model(**tail_forward_inputs(b["input_ids"], b["attention_mask"], keep)).logits
        lp = shifted_logprobs(logits, b["input_ids"][:, -keep:])
        mask = b["labels"][:, -keep:][:, 1:] != IGNORE
        out += (lp * mask).sum(1).tolist()
    return out


# ----------------------------------------------------------------------------- the stage
def score_all(
    scorers: dict[str, RewardScorer], prompts: list[str], comps: list[str]
) -> dict[str, list[float]]:
    return {name: s.score(prompts, comps) for name, s in scorers.items()}


def reward_block(rows: list[dict], cfg: EvaluateConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for which in ("proxy", "gold"):
        vals = [r[which] for r in rows]
        out[which] = summary(vals, cfg.bootstrap_samples, cfg.seed)
        per = {}
        for ds in sorted({r["dataset"] for r in rows}):
            per[ds] = summary(
                [r[which] for r in rows if r["dataset"] == ds], cfg.bootstrap_samples, cfg.seed
            )
        out[which]["per_dataset"] = per
    return out


def evaluate_models(
    cfg: EvaluateConfig, models: dict[str, Path], test: list[dict], scorers, bench_data
):
    results: dict[str, Any] = {}
    all_rows: list[dict] = []
    prompts = [t["prompt"] for t in test]
    base_model = load_causal_lm(models["base"]).eval()
    base_tok = load_tokenizer(models["base"])
    base_texts = [format_prompt(p, base_tok, cfg.generation) for p in prompts]
    for name, path in models.items():
        model = base_model if name == "base" else load_causal_lm(path).eval()
        tok = base_tok if name == "base" else load_tokenizer(path)
        texts = [format_prompt(p, tok, cfg.generation) for p in prompts]
        torch.manual_seed(cfg.seed)
        comps = [trim_completion(c) for c in generate(model, tok, texts, cfg.generation)]
        scores = score_all(scorers, prompts, comps)
        rows = [{"model": name, "prompt": p, "dataset": t["dataset"], "completion": c,
                 "proxy": sp, "gold": sg} for p, t, c, sp, sg in zip(prompts, test, comps, scores["proxy"], scores["gold"])]  # fmt: skip
        if name == "base":
            kl = [0.0] * len(comps)  # log p_base - log p_base
        else:
            lp_model = sequence_logprobs(model, tok, texts, comps)
            lp_base = sequence_logprobs(base_model, base_tok, base_texts, comps)
            kl = [a - b for a, b in zip(lp_model, lp_base)]
        results[name] = {**reward_block(rows, cfg), **diagnostics(comps, cfg.tail_chars),
                         "kl_to_base": sum(kl) / len(kl)}  # fmt: skip
        if bench_data is not None:
            results[name]["benchmarks"] = capabilities.run_benchmarks(model, tok, bench_data, cfg)
        all_rows += rows
        log.info(
            "%s: proxy %.3f gold %.3f",
            name,
            results[name]["proxy"]["mean"],
            results[name]["gold"]["mean"],
        )
        if name != "base":
            del model
    if cfg.best_of_n > 0:
        results["best_of_n"], rows = best_of_n(cfg, base_model, base_tok, base_texts, test, scorers)
        all_rows += rows
    return results, all_rows


def best_of_n(cfg: EvaluateConfig, model, tok, texts: list[str], test: list[dict], scorers):
    """The base policy samples n completions per prompt; the proxy picks one. No training."""
    n = cfg.best_of_n
    torch.manual_seed(cfg.seed + 1)
    comps = [
        trim_completion(c)
        for c in generate(model, tok, [t for t in texts for _ in range(n)], cfg.generation)
    ]
    prompts = [t["prompt"] for t in test]
    proxy = scorers["proxy"].score([p for p in prompts for _ in range(n)], comps)
    picked = []
    for i in range(len(prompts)):
        cands = [(proxy[i * n + j], comps[i * n + j]) for j in range(n) if comps[i * n + j]]
        picked.append(max(cands)[1] if cands else "")
    scores = score_all(scorers, prompts, picked)
    rows = [{"model": "best_of_n", "prompt": p, "dataset": t["dataset"], "completion": c, "proxy": sp, "gold": sg}
            for p, t, c, sp, sg in zip(prompts, test, picked, scores["proxy"], scores["gold"])]  # fmt: skip
    res = {**reward_block(rows, cfg), **diagnostics(picked, cfg.tail_chars), "n": n,
           "kl_to_base_bound": math.log(n) - (n - 1) / n}  # fmt: skip
    return res, rows


MIN_CI_N = 10  # below this many rows a bootstrap interval says nothing: print n instead
TABLE_ORDER = ("base", "best_of_n", "superhf", "rlhf")


def reward_cell(s: dict[str, Any]) -> str:
    """Mean with its 95% interval, or with n alone when there are fewer than MIN_CI_N rows."""
    if s.get("n", MIN_CI_N) < MIN_CI_N:
        return f"{s['mean']:.3f} (n={s['n']}, no interval)"
    return f"{s['mean']:.3f} [{s['ci_low']:.3f}, {s['ci_high']:.3f}]"


def table4(results: dict[str, Any]) -> str:
    """Table 4: every evaluated model (the pipeline's first, then the others in order), its
    benchmark columns labelled with protocol, task and n, and proxy and gold reward."""
    names = [n for n in TABLE_ORDER if n in results]
    names += [
        n for n, r in results.items() if n not in names and isinstance(r, dict) and "proxy" in r
    ]
    benches = [results[n]["benchmarks"] for n in names if "benchmarks" in results[n]]
    cols = capabilities.table_columns(benches)
    head = ["model", *(h for h, _ in cols), "proxy reward", "gold reward"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        r = results[name]
        cells = [name]
        for _, keys in cols:
            v = capabilities.get_path(r.get("benchmarks"), keys)
            cells.append(f"{v:.3f}" if isinstance(v, float) else "n/a")
        cells += [reward_cell(r[which]) for which in ("proxy", "gold")]
        lines.append("| " + " | ".join(cells) + " |")
    note = ""
    if any(b.get("smoke") for b in benches):
        note = ("Smoke run: the standard columns are scored on our fixture sets (2-12 items), "
                "not results; use `evaluate.benchmarks.source: local` or `hub` for numbers.\n\n")  # fmt: skip
    return note + "\n".join(lines) + "\n"
