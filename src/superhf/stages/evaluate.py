"""Stage ``evaluate``: base, best-of-n and every trained method (SuperHF, PPO, RLOO, GRPO)
side by side (paper Table 4).

Held-out reward under the proxy and the gold reward model (mean, std, 95% bootstrap
interval, overall and per dataset), reward-hacking diagnostics, KL to the base policy, and
the capability/alignment benchmarks. Every completion is saved with its scores.

    python -m superhf.stages.evaluate --params params.yaml --prompts data/prompts/test.jsonl \
        --model base=models/base --model superhf=models/superhf --model rlhf=models/rlhf \
        --reward models/reward --gold models/reward_gold --metrics metrics/eval.json \
        --table metrics/table4.md --completions metrics/eval_completions.jsonl \
        --snapshots superhf=models/superhf_snapshots --snapshots rlhf=models/rlhf_snapshots \
        --overopt metrics/overoptimisation.json --overopt-plots metrics/overopt
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import random
from collections.abc import Iterable
from pathlib import Path

from superhf.capabilities.suite import check_lm_eval, load_benchmarks
from superhf.cli import add_params_arg, run, stage_parser
from superhf.config.evaluate import EvaluateConfig
from superhf.errors import BadInputError
from superhf.evaluation import evaluate_models, overoptimisation
from superhf.generation import check_context
from superhf.io import atomic_path, read_jsonl, write_json, write_jsonl
from superhf.model_check import check_model_folder
from superhf.models import is_disabled, pick_device, torch_dtype
from superhf.params import load_section, read_params
from superhf.paths import cache_root
from superhf.reward import RewardScorer
from superhf.tables import table4
from superhf.tracking import TrackingConfig, stage_run

log = logging.getLogger(__name__)


def parse_models(items: list[str]) -> dict[str, Path]:
    """NAME -> folder of each ``--model``; a disabled training stage's marker folder
    (``enabled: false``) is left out with a message, so is its method everywhere after."""
    models = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise BadInputError(f"--model expects NAME=PATH, got {item!r}")
        if is_disabled(path):
            log.info("--model %s: %s is a disabled stage's marker; not evaluated", name, path)
            continue
        if not (Path(path) / "config.json").is_file():
            raise BadInputError(f"--model {name}: {path} is not a model folder (no config.json)")
        models[name] = Path(path)
    if "base" not in models:
        raise BadInputError(
            "--model base=PATH is required (KL and best-of-n are measured against it)"
        )
    return models


def parse_snapshots(items: list[str], models: dict[str, Path], overopt: str | None,
                    disabled: Iterable[str] = ()) -> dict:  # fmt: skip
    """--snapshots NAME=FOLDER (a training stage's snapshot folder, with index.json); those
    of a ``disabled`` method are left out."""
    snaps = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise BadInputError(f"--snapshots expects NAME=FOLDER, got {item!r}")
        if not (Path(path) / "index.json").is_file():
            raise BadInputError(f"--snapshots {name}: {path}/index.json is missing")
        if name in disabled:  # a disabled stage writes an empty index
            continue
        if name not in models:
            raise BadInputError(f"--snapshots {name}: no --model {name}=PATH (its final model)")
        snaps[name] = Path(path)
    if snaps and not overopt:
        raise BadInputError("--snapshots needs --overopt (where the curves are written)")
    return snaps


PLOTTED_METHODS = (
    "superhf",
    "rlhf",
    "rloo",
    "grpo",
    "best_of_n",
)  # dvc.yaml's over-optimisation plots


def write_overopt(curves: dict[str, list[dict]], path: str, plots: str | None, n: int) -> None:
    """The curves as JSON (per method, a list of points) and one CSV per method. ``kl_kind``
    says what ``kl`` is: ``estimate`` (sampled, ``kl_se`` its standard error) or
    ``upper_bound`` (best-of-n's log n - (n-1)/n, ``kl_se`` empty); ``sqrt_kl`` is signed."""
    write_json(path, {"test_prompts": n, **curves})
    if plots:
        with atomic_path(plots) as tmp:
            tmp.mkdir()
            # every method the DVC plots name gets a file, header only when it has no curve
            for method in dict.fromkeys([*PLOTTED_METHODS, *curves]):
                pts = curves.get(method, [])
                cols = ["step", "reward_queries", "kl", "kl_se", "kl_kind", "sqrt_kl",
                        "gold_mean", "proxy_mean"]  # fmt: skip
                with (tmp / f"{method}.csv").open("w", newline="") as f:
                    w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
                    w.writeheader()
                    w.writerows(pts)


def parser() -> argparse.ArgumentParser:
    ap = stage_parser(__name__, __doc__)
    add_params_arg(ap)
    ap.add_argument(
        "--model", action="append", default=[],
        help="NAME=FOLDER of a policy to evaluate (repeat; base=FOLDER is required)",
    )  # fmt: skip
    ap.add_argument(
        "--prompts", required=True, help="JSONL of test prompts, {prompt, dataset} per line"
    )
    ap.add_argument("--reward", required=True, help="proxy reward model folder")
    ap.add_argument("--gold", required=True, help="gold reward model folder")
    ap.add_argument("--metrics", required=True, help="output JSON of every number")
    ap.add_argument("--table", required=True, help="output Markdown of Table 4")
    ap.add_argument("--completions", required=True, help="output JSONL of scored completions")
    ap.add_argument(
        "--snapshots", action="append", default=[],
        help="NAME=FOLDER of a training stage's snapshots (with index.json; repeat)",
    )  # fmt: skip
    ap.add_argument("--overopt", help="output JSON of the over-optimisation curves")
    ap.add_argument("--overopt-plots", help="output folder: one CSV per method, for DVC plots")
    return ap


def main(argv: Iterable[str] | None = None) -> None:
    args = parser().parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = load_section("evaluate", EvaluateConfig, args.params)
    tracking = load_section("tracking", TrackingConfig, args.params)
    raw = read_params(args.params)
    # every input checked before any model loads: a bad one fails fast
    check_lm_eval(cfg)
    models = resolve_models(cfg, args.model, [args.reward, args.gold])
    disabled = [i.partition("=")[0] for i in args.model if is_disabled(i.partition("=")[2])]
    snapshots = parse_snapshots(args.snapshots, models, args.overopt, disabled)
    bench_data = load_benchmarks(cfg)
    test = held_out_prompts(cfg, args.prompts)
    cache = cache_root() / "scores" if cfg.score_cache else None
    device, dtype = pick_device(), torch_dtype(cfg.precision)
    scorers = {
        name: RewardScorer(folder, cache_dir=cache, device=device, dtype=dtype,
                           batch_size=cfg.score_batch_size, preamble=cfg.generation.preamble)
        for name, folder in (("proxy", args.reward), ("gold", args.gold))
    }  # fmt: skip
    main_proc = int(os.environ.get("RANK", "0")) == 0
    with stage_run("evaluate", {"evaluate": raw["evaluate"]}, tracking, main_process=main_proc,
                   profile=str(raw.get("profile", "unknown"))) as run:  # fmt: skip
        results, rows = evaluate_models(cfg, models, test, scorers, bench_data)
        results["test_prompts"] = len(test)
        results["mlflow_run_id"] = run.run_id
        # every number first, then every file: a failure leaves the old outputs as they were
        curves = (
            overoptimisation(cfg, models, snapshots, test, scorers, results)
            if args.overopt
            else None
        )
        write_outputs(args, results, rows, curves, len(test), run)


def resolve_models(cfg: EvaluateConfig, items: list[str], reward_dirs: list[str]) -> dict:
    """NAME -> folder (or hub id) of every model to evaluate: ``--model`` items plus
    ``evaluate.reference_models``; folders and generation lengths checked, nothing loaded."""
    models = parse_models(items)
    for name, ref in cfg.reference_models.items():  # the paper's extra rows: hub id or folder
        if name in models:
            raise BadInputError(f"evaluate.reference_models.{name}: the name is taken by --model")
        models[name] = Path(ref) if Path(ref).is_dir() else ref
    chat = cfg.generation.prompt_format == "chat"
    for path in models.values():
        if isinstance(path, Path) or Path(path).exists():  # a hub id is checked when it loads
            check_model_folder(path, "policy", chat=chat)
    for path in reward_dirs:
        check_model_folder(path, "reward", input_format=True)
    for path in models.values():
        if Path(path).is_dir():  # a hub id is checked when it loads
            check_context(path, cfg.generation, "evaluate.generation")
    return models


def held_out_prompts(cfg: EvaluateConfig, path: str) -> list[dict]:
    """The test prompts, a seeded subsample of ``max_test_prompts`` when there are more."""
    test = read_jsonl(path, fields=("prompt", "dataset"))
    if cfg.max_test_prompts and len(test) > cfg.max_test_prompts:
        keep = sorted(random.Random(cfg.seed).sample(range(len(test)), cfg.max_test_prompts))
        test = [test[i] for i in keep]
    return test


def write_outputs(args, results: dict, rows: list[dict], curves: dict | None, n_test: int,
                  run) -> None:  # fmt: skip
    """Every output file (each atomic), the MLflow metrics and artifacts, and the table."""
    write_json(args.metrics, results)
    table = table4(results)
    with atomic_path(args.table) as tmp:
        tmp.write_text("# Table 4 (this run)\n\n" + table)
    write_jsonl(args.completions, rows)
    for name, r in results.items():
        if isinstance(r, dict) and "proxy" in r:
            run.log_metrics(
                {f"eval/{name}/proxy": r["proxy"]["mean"], f"eval/{name}/gold": r["gold"]["mean"]},
                0,
            )
    run.log_artifact(args.table)
    if curves is not None:
        write_overopt(curves, args.overopt, args.overopt_plots, n_test)
        run.log_artifact(args.overopt)
    print(table)


if __name__ == "__main__":
    run(main)
