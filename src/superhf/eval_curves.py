"""The over-optimisation curves' points that need models: every snapshot a training stage
kept, scored as the final models are (``superhf.eval_samples.unwarped_point``: KL to the base
and rewards of the unwarped policy), and best-of-n's pool from the unwarped base (a range
of its prompts at a time, each prompt seeded by itself);
``overoptimisation`` joins them with the models' own blocks into each method's curve
(``superhf.eval_pieces``, which also holds a point's fields; the maths in ``superhf.overopt``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from pathlib import Path
from typing import Any

import torch

from superhf.config.common import unwarped
from superhf.config.evaluate import EvaluateConfig
from superhf.eval_pieces import CURVE_PIECE, KL_KINDS, curves_of, pool_range
from superhf.eval_pieces import curve_point as pure_curve_point
from superhf.eval_samples import score_all, unwarped_point
from superhf.generation import sample_completions
from superhf.models import load_causal_lm, load_tokenizer, pick_device, torch_dtype
from superhf.overopt import best_of_n_curve
from superhf.prompting import format_prompt

__all__ = ["KL_KINDS", "overoptimisation", "snapshot_points"]

log = logging.getLogger(__name__)


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


def pool_seed(seed: int, prompt: int) -> int:
    """The torch seed of the pool of test prompt ``prompt`` (its index among the test
    prompts): ``seed + 1 + prompt``, so a prompt's draws are the same whichever range of
    prompts a run draws (prompt 0 keeps the table's best-of-n seed, ``seed + 1``)."""
    return seed + 1 + prompt


def best_of_n_pool(
    cfg: EvaluateConfig,
    n_max: int,
    base: tuple,
    test: list[dict],
    scorers,
    prompts: tuple[int, int] | None = None,
) -> dict:
    """Best-of-n without training for n = 1, 2, 4, ..., ``n_max`` on the test prompts
    ``prompts`` (start, stop; None = all of the first ``best_of_n_curve_prompts``): a pool
    of ``best_of_n_pool`` >= n_max draws per prompt from the unwarped base (``base``: model,
    tokenizer; the sampler of the trained methods' curves, so the KL bound is relative to
    the same base), and per n each prompt's expected proxy and gold over all n-subsets of
    its pool (``superhf.overopt``), as a range for ``superhf.eval_pieces.pool_curve``.

    Each prompt is drawn in its own seeded call (``pool_seed``) and scored in its own call,
    so its values do not depend on the other prompts of the range: ranges drawn apart join
    into the curve of one run. Reward-model queries: n proxy scores per prompt. KL: the
    upper bound log n - (n-1)/n."""
    model, tok = base
    curve_prompts = test[: cfg.best_of_n_curve_prompts]
    start, stop = prompts or (0, len(curve_prompts))
    gen = unwarped(cfg.generation)
    pool = max(n_max, cfg.best_of_n_pool or n_max)
    per: dict[str, list[list[float]]] = {"proxy": [], "gold": []}
    for i in range(start, stop):
        prompt = curve_prompts[i]["prompt"]
        torch.manual_seed(pool_seed(cfg.seed, i))
        rows = [format_prompt(prompt, tok, gen)] * pool
        comps = [c.text for c in sample_completions(model, tok, rows, gen)]
        scores = score_all(scorers, [prompt] * pool, comps)
        for w in per:
            per[w].append(scores[w])
        log.info("best-of-n pool: prompt %d drawn (prompts %d:%d)", i, start, stop)
    curve = best_of_n_curve(per["proxy"], per["gold"], n_max, pool=pool)
    return pool_range(start, len(curve_prompts), curve)


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
    curve_prompts: tuple[int, int] | None = None,
) -> dict:
    """What the curves need beyond the models' own blocks: each trained method's snapshot
    points and final step (``superhf_meta.json``), and the best-of-n pool of the test
    prompts ``curve_prompts`` (start, stop; None = all) as a list of one range
    (``best_of_n_pool``; ``best_of_n_curve`` in ``only``): {points, finals, best_of_n}."""
    out: dict[str, Any] = {"points": {}, "finals": {}, "best_of_n": None}
    for method in snapshots:
        if method not in models:
            raise ValueError(f"snapshots given for {method!r} but no --model {method}=PATH")
    methods = [m for m in snapshots if only is None or m in only]
    n_max = cfg.curve_n_max
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
        out["best_of_n"] = [best_of_n_pool(cfg, n_max, base, test, scorers, curve_prompts)]
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
    Best-of-n: ``best_of_n_pool`` over every prompt of its curve.
    """
    snaps = snapshot_points(cfg, models, snapshots, test, scorers)
    return curves_of(results, snaps, (cfg.bootstrap_samples, cfg.seed))
