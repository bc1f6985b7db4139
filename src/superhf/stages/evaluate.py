"""Stage ``evaluate``: base, best-of-n, SuperHF and RLHF side by side (paper Table 4).

Held-out reward under the proxy and the gold reward model (mean, std, 95% bootstrap
interval, overall and per dataset), reward-hacking diagnostics, KL to the base policy, and
the capability/alignment benchmarks. Every completion is saved with its scores.

    python -m superhf.stages.evaluate --params params.yaml --prompts data/prompts/test.jsonl \
        --model base=models/base --model superhf=models/superhf --model rlhf=models/rlhf \
        --reward models/reward --gold models/reward_gold --metrics metrics/eval.json \
        --table metrics/table4.md --completions metrics/eval_completions.jsonl
"""

from __future__ import annotations

import argparse
import logging
import os
import random
from collections.abc import Iterable
from pathlib import Path

from superhf.capabilities import load_benchmarks
from superhf.config import EvaluateConfig
from superhf.evaluation import evaluate_models, table4
from superhf.io import atomic_path, read_jsonl, write_json, write_jsonl
from superhf.params import load_section, read_params
from superhf.paths import cache_root
from superhf.reward import RewardScorer
from superhf.tracking import TrackingConfig, stage_run

log = logging.getLogger(__name__)


def parse_models(items: list[str]) -> dict[str, Path]:
    models = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--model expects NAME=PATH, got {item!r}")
        if not (Path(path) / "config.json").is_file():
            raise SystemExit(f"--model {name}: {path} is not a model folder (no config.json)")
        models[name] = Path(path)
    if "base" not in models:
        raise SystemExit("--model base=PATH is required (KL and best-of-n are measured against it)")
    return models


def main(argv: Iterable[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--model", action="append", default=[], help="NAME=PATH (repeat)")
    for name in ("prompts", "reward", "gold", "metrics", "table", "completions"):
        ap.add_argument(f"--{name}", required=True)
    args = ap.parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = load_section("evaluate", EvaluateConfig, args.params)
    tracking = load_section("tracking", TrackingConfig, args.params)
    raw = read_params(args.params)
    models = parse_models(args.model)
    for name, ref in cfg.reference_models.items():  # the paper's extra rows: hub id or folder
        if name in models:
            raise SystemExit(f"evaluate.reference_models.{name}: the name is taken by --model")
        models[name] = Path(ref) if Path(ref).is_dir() else ref
    bench_data = load_benchmarks(cfg)  # before any model work: a missing file fails fast
    test = read_jsonl(args.prompts)
    if cfg.max_test_prompts and len(test) > cfg.max_test_prompts:
        keep = sorted(random.Random(cfg.seed).sample(range(len(test)), cfg.max_test_prompts))
        test = [test[i] for i in keep]
    cache = cache_root() / "scores" if cfg.score_cache else None
    scorers = {
        "proxy": RewardScorer(args.reward, cache_dir=cache),
        "gold": RewardScorer(args.gold, cache_dir=cache),
    }
    main_proc = int(os.environ.get("RANK", "0")) == 0
    with stage_run("evaluate", {"evaluate": raw["evaluate"]}, tracking, main_process=main_proc,
                   profile=str(raw.get("profile", "unknown"))) as run:  # fmt: skip
        results, rows = evaluate_models(cfg, models, test, scorers, bench_data)
        results["test_prompts"] = len(test)
        results["mlflow_run_id"] = run.run_id
        write_json(args.metrics, results)
        table = table4(results)
        with atomic_path(args.table) as tmp:
            tmp.write_text("# Table 4 (this run)\n\n" + table)
        write_jsonl(args.completions, rows)
        for name, r in results.items():
            if isinstance(r, dict) and "proxy" in r:
                run.log_metrics(
                    {
                        f"eval/{name}/proxy": r["proxy"]["mean"],
                        f"eval/{name}/gold": r["gold"]["mean"],
                    },
                    0,
                )
        run.log_artifact(args.table)
        print(table)


if __name__ == "__main__":
    main()
