"""The evaluation of stage ``evaluate``: base, best-of-n and the trained methods side by
side (paper Table 4).

Held-out reward under the proxy and the gold reward model (mean, std, 95% bootstrap
interval, overall and per dataset), reward-hacking diagnostics, KL to the base policy, and
the capability/alignment benchmarks. Every completion of the reward table is saved with its
scores.

Two samplers: the reward table (and its diagnostics and best-of-n row) samples with
``evaluate.generation`` as configured (the paper's top-p and repetition penalty); the KL to
the base and every point of the over-optimisation curves sample the *unwarped* policy
(temperature 1, no top-p/top-k, no repetition penalty; ``SAMPLERS``), so the KL is of the
policy itself and its rewards come from the same samples.

Samples per prompt: ``evaluate.samples_per_prompt`` (k) completions of every test prompt,
drawn in one call (each prompt repeated k times, prompt-major); the prompt is the unit of
every mean and interval (its k samples averaged first, ``superhf.stats``), the KL too.

Pieces: ``only`` restricts a run to some models and curves (``superhf.eval_pieces``).
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from superhf.capabilities.suite import run_benchmarks
from superhf.config.common import GenerationConfig, unwarped
from superhf.config.evaluate import EvaluateConfig
from superhf.core import (
    IGNORE,
    build_sft_batch,
    shifted_logprobs,
    tail_columns,
    tail_forward_inputs,
)
from superhf.eval_pieces import CURVE_PIECE, KL_KINDS, curves_of
from superhf.eval_pieces import curve_point as pure_curve_point
from superhf.generation import Completion, distinct_n, sample_completions
from superhf.models import load_causal_lm, load_tokenizer, pick_device, torch_dtype
from superhf.overopt import best_of_n_curve, kl_estimate
from superhf.prompting import format_prompt
from superhf.reward import RewardScorer
from superhf.stats import reward_block, summary, unit_means

__all__ = ["KL_KINDS", "SAMPLERS", "evaluate_models", "overoptimisation", "snapshot_points"]

log = logging.getLogger(__name__)

SAMPLERS = {
    "table": "evaluate.generation as configured: the reward table, its diagnostics, the "
    "saved completions and the table's best-of-n row",
    "kl_and_curves": "the unwarped policy (evaluate.generation with temperature 1, top_p 1, "
    "top_k 0, repetition_penalty 1): kl_to_base (mean over samples of the summed token "
    "log-ratio, with its standard error, never clamped), the rewards under 'unwarped' and "
    "every over-optimisation point, best-of-n's draws included",
}


# ----------------------------------------------------------------------------- diagnostics
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


@torch.inference_mode()
def sequence_logprobs(
    model,
    tok,
    texts: Sequence[str],
    completion_ids: Sequence[Sequence[int]],
    bs: int = 16,
    max_prompt_tokens: int | None = None,
) -> list[float]:
    """log p(completion | prompt text) under ``model``, one number per row; the completion
    is given as the token ids the policy sampled (cut at the trim point), never re-tokenised.
    ``max_prompt_tokens``: the prompt is cut from the left as generation cut it, so the
    tokens are scored under the context they were sampled from."""
    out = []
    for s in tqdm(
        range(0, len(texts), bs), desc="KL log-probs", disable=None, delay=2, leave=False
    ):
        p = [tok(t, add_special_tokens=False)["input_ids"] for t in texts[s : s + bs]]
        if max_prompt_tokens:
            p = [ids[-max_prompt_tokens:] for ids in p]
        c = [list(x) for x in completion_ids[s : s + bs]]
        b = build_sft_batch(p, c, tok.pad_token_id)
        b = {k: v.to(next(model.parameters()).device) for k, v in b.items()}
        keep = tail_columns(b["labels"] != IGNORE)  # logits for the completion columns only
        logits = model(**tail_forward_inputs(b["input_ids"], b["attention_mask"], keep)).logits
        lp = shifted_logprobs(logits, b["input_ids"][:, -keep:])
        mask = b["labels"][:, -keep:][:, 1:] != IGNORE
        out += (lp * mask).sum(1).tolist()
    return out


# ----------------------------------------------------------------------------- the models
def draws(cfg: EvaluateConfig, test: list[dict]) -> list[dict]:
    """Every test prompt ``samples_per_prompt`` times, prompt-major: the rows sampled."""
    k = cfg.samples_per_prompt
    return [t for t in test for _ in range(k)]


def score_all(
    scorers: dict[str, RewardScorer], prompts: list[str], comps: list[str]
) -> dict[str, list[float]]:
    return {name: s.score(prompts, comps) for name, s in scorers.items()}


def scored_rows(
    name: str, cfg: EvaluateConfig, test: list[dict], comps: list[str], scores: dict
) -> list[dict]:
    """One row per completion of ``draws(cfg, test)``: model, prompt, dataset, completion,
    proxy, gold, and with several samples per prompt the sample's index."""
    k, rows = cfg.samples_per_prompt, []
    for i, (t, c) in enumerate(zip(draws(cfg, test), comps, strict=True)):
        row = {
            "model": name,
            "prompt": t["prompt"],
            "dataset": t["dataset"],
            "completion": c,
            "proxy": scores["proxy"][i],
            "gold": scores["gold"][i],
        }
        if k > 1:
            row["sample"] = i % k
        rows.append(row)
    return rows


def evaluate_one(
    cfg: EvaluateConfig, name: str, model, tok, test: list[dict], scorers, base: tuple, bench_data
) -> tuple[dict, list[dict]]:
    """One model's block (rewards, diagnostics, KL, unwarped rewards, benchmarks) and its
    scored rows; ``base``: (base model, base tokenizer)."""
    k = cfg.samples_per_prompt
    sampled, scores = sample_scored(cfg, cfg.generation, model, tok, test, scorers)
    comps = [c.text for c in sampled]
    point = unwarped_point(cfg, model, tok, test, scorers, *base, table=(sampled, scores))
    rows = scored_rows(name, cfg, test, comps, scores)
    block = {
        **reward_block(rows, cfg.bootstrap_samples, cfg.seed, k),
        **diagnostics(comps, cfg.tail_chars),
        "kl_to_base": point["kl"],
        "kl_to_base_se": point["kl_se"],
        "unwarped": {w: point[w] for w in ("proxy", "gold")},
    }
    if bench_data is not None:
        block["benchmarks"] = run_benchmarks(model, tok, bench_data, cfg)
    return block, rows


def evaluate_models(
    cfg: EvaluateConfig,
    models: dict[str, Path],
    test: list[dict],
    scorers,
    bench_data,
    only: Collection[str] | None = None,
):
    """Every model of ``models`` (those in ``only`` when given; the base is loaded as the
    reference either way) and the table's best-of-n row (``best_of_n`` in ``only``):
    (results, rows)."""
    results: dict[str, Any] = {}
    all_rows: list[dict] = []
    device, dtype = pick_device(), torch_dtype(cfg.precision)
    log.info("evaluate on %s (%s)", device, cfg.precision)
    base_model = load_causal_lm(models["base"], dtype=dtype).to(device).eval()
    base_tok = load_tokenizer(models["base"])
    names = [n for n in models if only is None or n in only]
    bar = tqdm(names, desc="evaluate", unit="model", disable=None)
    for name in bar:
        bar.set_postfix_str(name)
        path = models[name]
        model = base_model if name == "base" else load_causal_lm(path, dtype=dtype)
        model = model.to(device).eval()
        tok = base_tok if name == "base" else load_tokenizer(path)
        results[name], rows = evaluate_one(
            cfg, name, model, tok, test, scorers, (base_model, base_tok), bench_data
        )
        all_rows += rows
        r = results[name]
        log.info("%s: proxy %.3f gold %.3f", name, r["proxy"]["mean"], r["gold"]["mean"])
        del model
    results["samplers"] = SAMPLERS
    if cfg.best_of_n > 0 and (only is None or "best_of_n" in only):
        results["best_of_n"], rows = best_of_n(cfg, base_model, base_tok, test, scorers)
        all_rows += rows
    return results, all_rows


def sample_scored(
    cfg: EvaluateConfig, gen: GenerationConfig, model, tok, test: list[dict], scorers
) -> tuple[list[Completion], dict[str, list[float]]]:
    """``model``'s completions for the test prompts (``draws``: k per prompt) under sampler
    ``gen`` (seed ``cfg.seed``) and their proxy and gold scores."""
    prompts = [t["prompt"] for t in draws(cfg, test)]
    texts = [format_prompt(p, tok, gen) for p in prompts]
    torch.manual_seed(cfg.seed)
    sampled = sample_completions(model, tok, texts, gen)
    return sampled, score_all(scorers, prompts, [c.text for c in sampled])


def log_ratios(
    cfg: EvaluateConfig,
    model,
    tok,
    sampled: list[Completion],
    test: list[dict],
    base_model,
    base_tok,
) -> list[float]:
    """Per completion log p_model(y|x) - log p_base(y|x), y every token ``model`` sampled (up
    to and including EOS, before trimming: the sequence the sampler stopped on), scored by
    both models on the model's own ids (zeros when ``model`` is the base)."""
    if model is base_model:
        return [0.0] * len(sampled)  # log p_base - log p_base
    gen, cut, bs = cfg.generation, cfg.generation.max_prompt_tokens, cfg.kl_batch_size
    rows = draws(cfg, test)
    texts = [format_prompt(t["prompt"], tok, gen) for t in rows]
    base_texts = [format_prompt(t["prompt"], base_tok, gen) for t in rows]
    ids = [c.sampled_ids for c in sampled]
    lp_model = sequence_logprobs(model, tok, texts, ids, bs, cut)
    lp_base = sequence_logprobs(base_model, base_tok, base_texts, ids, bs, cut)
    return [a - b for a, b in zip(lp_model, lp_base)]


def unwarped_point(
    cfg: EvaluateConfig,
    model,
    tok,
    test: list[dict],
    scorers,
    base_model,
    base_tok,
    table: tuple | None = None,
) -> dict[str, Any]:
    """KL(model || base) of the unwarped model (``kl_estimate`` over its prompts, each
    prompt's samples averaged: mean and standard error) and the proxy and gold summaries of
    the same samples. ``table``: the (completions, scores) already drawn with
    ``evaluate.generation``, reused when that sampler is already unwarped (same seed: the
    same draws)."""
    gen, k = unwarped(cfg.generation), cfg.samples_per_prompt
    if table is not None and gen == cfg.generation:
        sampled, scores = table
    else:
        sampled, scores = sample_scored(cfg, gen, model, tok, test, scorers)
    ratios = log_ratios(cfg, model, tok, sampled, test, base_model, base_tok)
    kl, se = kl_estimate(unit_means(ratios, k))
    if model is base_model:
        kl, se = 0.0, 0.0  # exactly: every log-ratio is zero
    boot = (cfg.bootstrap_samples, cfg.seed, k)
    return {
        "kl": kl,
        "kl_se": se,
        "proxy": summary(scores["proxy"], *boot),
        "gold": summary(scores["gold"], *boot),
    }


def pick_best(proxy: list[float], comps: list[str], n: int) -> list[str]:
    """From each consecutive group of ``n`` candidates the one the proxy scores highest
    (empty candidates never; "" when all are empty)."""
    picked = []
    for g in range(len(comps) // n):
        cands = [(proxy[g * n + j], comps[g * n + j]) for j in range(n) if comps[g * n + j]]
        picked.append(max(cands)[1] if cands else "")
    return picked


def best_of_n(cfg: EvaluateConfig, model, tok, test: list[dict], scorers):
    """The base policy samples n completions per drawn row (``draws``: k per prompt); the
    proxy picks one of each n. No training."""
    n, rows_in = cfg.best_of_n, draws(cfg, test)
    prompts = [t["prompt"] for t in rows_in]
    texts = [format_prompt(p, tok, cfg.generation) for p in prompts]
    torch.manual_seed(cfg.seed + 1)
    cands = [t for t in texts for _ in range(n)]
    comps = [c.text for c in sample_completions(model, tok, cands, cfg.generation)]
    proxy = scorers["proxy"].score([p for p in prompts for _ in range(n)], comps)
    picked = pick_best(proxy, comps, n)
    rows = scored_rows("best_of_n", cfg, test, picked, score_all(scorers, prompts, picked))
    # the bound is relative to the base under the sampler the n draws came from (the table's)
    res = {
        **reward_block(rows, cfg.bootstrap_samples, cfg.seed, cfg.samples_per_prompt),
        **diagnostics(picked, cfg.tail_chars),
        "n": n,
        "kl_to_base_bound": math.log(n) - (n - 1) / n,
    }
    return res, rows


# ----------------------------------------------------------------------------- the curves
def read_snapshot_index(folder: str | Path) -> list[dict]:
    """The snapshots a training stage kept (``index.json``: step, reward_queries, path)."""
    index = Path(folder) / "index.json"
    if not index.is_file():
        raise FileNotFoundError(f"{index}: no snapshot index (run the training stage first)")
    rows = json.loads(index.read_text())
    for r in rows:
        if not (Path(folder) / r["path"] / "config.json").is_file():
            raise FileNotFoundError(f"{index}: snapshot {r['path']} has no config.json")
    return rows


def curve_point(
    cfg: EvaluateConfig,
    method: str,
    step: int,
    queries: int,
    kl: tuple[float, float | None, str],
    proxy: list[float] | dict,
    gold: list[float] | dict,
    **extra: Any,
) -> dict:
    """One point of an over-optimisation curve (``superhf.eval_pieces.curve_point``) with
    the bootstrap of ``cfg``."""
    boot = (cfg.bootstrap_samples, cfg.seed)
    return pure_curve_point(method, step, queries, kl, (proxy, gold), boot, **extra)


def score_snapshot(
    cfg: EvaluateConfig, path: Path, base_model, base_tok, test: list[dict], scorers
) -> dict[str, Any]:
    """``unwarped_point`` of one snapshot on the test prompts, as for the final models."""
    device, dtype = pick_device(), torch_dtype(cfg.precision)
    model = load_causal_lm(path, dtype=dtype).to(device).eval()
    return unwarped_point(cfg, model, load_tokenizer(path), test, scorers, base_model, base_tok)


def best_of_n_points(
    cfg: EvaluateConfig, n_max: int, base_model, base_tok, test: list[dict], scorers
) -> list[dict]:
    """Best-of-n without training for n = 1, 2, 4, ..., ``n_max``: ``n_max`` draws per test
    prompt from the unwarped base (the sampler of the trained methods' curves, so the KL
    bound is relative to the same base; the seed of ``best_of_n``), on the first
    ``best_of_n_curve_prompts`` test prompts; a pool of ``best_of_n_pool`` >= n_max draws per
    prompt and the unbiased estimator over all n-subsets of it (``superhf.overopt``).
    Reward-model queries: n proxy scores per test prompt. KL: the upper bound
    log n - (n-1)/n."""
    prompts = [t["prompt"] for t in test[: cfg.best_of_n_curve_prompts]]
    gen = unwarped(cfg.generation)
    texts = [format_prompt(p, base_tok, gen) for p in prompts]
    torch.manual_seed(cfg.seed + 1)
    pool = max(n_max, cfg.best_of_n_pool or n_max)
    rows = [t for t in texts for _ in range(pool)]
    comps = [c.text for c in sample_completions(base_model, base_tok, rows, gen)]
    scores = score_all(scorers, [p for p in prompts for _ in range(pool)], comps)
    per = {
        w: [scores[w][i * pool : (i + 1) * pool] for i in range(len(prompts))]
        for w in ("proxy", "gold")
    }
    curve = best_of_n_curve(per["proxy"], per["gold"], n_max, pool=pool)
    return [
        curve_point(
            cfg,
            "best_of_n",
            c["n"],
            c["n"] * len(prompts),
            (c["kl"], None, "upper_bound"),
            c["proxy"],
            c["gold"],
            n=c["n"],
        )
        for c in curve
    ]


def method_snapshots(
    cfg: EvaluateConfig, method: str, folder: Path, base: tuple, test: list[dict], scorers
) -> list[dict]:
    """The curve points of every snapshot of ``method`` (``base``: model, tokenizer)."""
    pts = []
    for snap in read_snapshot_index(folder):
        pt = score_snapshot(cfg, Path(folder) / snap["path"], *base, test, scorers)
        pts.append(
            curve_point(
                cfg,
                method,
                snap["step"],
                snap["reward_queries"],
                (pt["kl"], pt["kl_se"], "estimate"),
                pt["proxy"],
                pt["gold"],
            )
        )
        log.info(
            "%s step %d: proxy %.3f gold %.3f KL %.3f",
            method,
            snap["step"],
            pts[-1]["proxy_mean"],
            pts[-1]["gold_mean"],
            pt["kl"],
        )
    return pts


def snapshot_points(
    cfg: EvaluateConfig,
    models: dict[str, Path],
    snapshots: dict[str, Path],
    test: list[dict],
    scorers,
    only: Collection[str] | None = None,
) -> dict:
    """What the curves need beyond the models' own blocks: each trained method's snapshot
    points and final step (``superhf_meta.json``), and the best-of-n curve
    (``best_of_n_points``; ``best_of_n_curve`` in ``only``): {points, finals, best_of_n}."""
    out: dict[str, Any] = {"points": {}, "finals": {}, "best_of_n": None}
    for method in snapshots:
        if method not in models:
            raise ValueError(f"snapshots given for {method!r} but no --model {method}=PATH")
    methods = [m for m in snapshots if only is None or m in only]
    n_max = cfg.best_of_n if cfg.best_of_n_curve is None else cfg.best_of_n_curve
    curve = n_max > 0 and (only is None or CURVE_PIECE in only)
    if not methods and not curve:
        return out
    device, dtype = pick_device(), torch_dtype(cfg.precision)
    base_model = load_causal_lm(models["base"], dtype=dtype).to(device).eval()
    base = (base_model, load_tokenizer(models["base"]))
    for method in methods:
        folder = snapshots[method]
        out["points"][method] = method_snapshots(cfg, method, folder, base, test, scorers)
        meta = json.loads((models[method] / "superhf_meta.json").read_text())
        out["finals"][method] = {k: meta[k] for k in ("step", "reward_queries")}
    if curve:
        out["best_of_n"] = best_of_n_points(cfg, n_max, *base, test, scorers)
    return out


def overoptimisation(
    cfg: EvaluateConfig,
    models: dict[str, Path],
    snapshots: dict[str, Path],
    test: list[dict],
    scorers,
    results: dict[str, Any],
) -> dict[str, list[dict]]:
    """Proxy and gold reward against KL to the base and reward-model queries, per method.

    Each trained method's curve: the base (step 0), every snapshot in ``snapshots[method]``,
    and the final model (its numbers from ``results``, already measured by
    ``evaluate_models``), each from samples of the unwarped policy (``unwarped_point``).
    Best-of-n: ``best_of_n_points``.
    """
    snaps = snapshot_points(cfg, models, snapshots, test, scorers)
    return curves_of(results, snaps, (cfg.bootstrap_samples, cfg.seed))
