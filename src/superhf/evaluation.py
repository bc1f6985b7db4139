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

Where the pieces are: each model's samples, scores and KL (``superhf.eval_samples``, which
also says how the samples per prompt are drawn and averaged), the text diagnostics
(``superhf.text_diagnostics``), the over-optimisation curves (``superhf.eval_curves``).

Pieces: ``only`` restricts a run to some models and curves (``superhf.eval_pieces``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from superhf.capabilities.suite import run_benchmarks
from superhf.config.evaluate import EvaluateConfig
from superhf.eval_samples import draws, sample_scored, score_all, unwarped_point
from superhf.generation import sample_completions
from superhf.models import load_causal_lm, load_tokenizer, pick_device, torch_dtype
from superhf.prompting import format_prompt
from superhf.stats import reward_block
from superhf.text_diagnostics import diagnostics

__all__ = ["SAMPLERS", "evaluate_models"]

log = logging.getLogger(__name__)

SAMPLERS = {
    "table": "evaluate.generation as configured: the reward table, its diagnostics, the "
    "saved completions and the table's best-of-n row",
    "kl_and_curves": "the unwarped policy (evaluate.generation with temperature 1, top_p 1, "
    "top_k 0, repetition_penalty 1): kl_to_base (mean over samples of the summed token "
    "log-ratio, with its standard error, never clamped), the rewards under 'unwarped' and "
    "every over-optimisation point, best-of-n's draws included",
}


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
