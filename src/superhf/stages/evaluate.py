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

In pieces (each within a session's time): the same command with ``--only NAME`` (repeat;
a ``--model`` name, ``best_of_n`` for the table's best-of-n row, ``best_of_n_curve`` for the
best-of-n pool curve; a method's snapshots come with its name) and ``--piece-out FILE``
writes that piece's numbers and completions instead of the outputs; then
``python -m superhf.stages.evaluate_merge`` combines the pieces into the outputs of one run.
The best-of-n pool splits by its prompts: ``--only best_of_n_curve --curve-prompts 0:32``
draws the pools of test prompts 0 to 31 alone (each prompt seeded by itself), and the merge
joins the ranges into the curve one run draws, point for point:

    python -m superhf.stages.evaluate <the arguments above, without the outputs> \
        --only best_of_n_curve --curve-prompts 0:32 --piece-out pieces/bon_curve_0.json
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import os
from collections.abc import Iterable

from superhf.capabilities.suite import check_lm_eval, load_benchmarks
from superhf.cli import add_params_arg, run, stage_parser
from superhf.config.evaluate import EvaluateConfig
from superhf.eval_curves import snapshot_points
from superhf.eval_pieces import CURVE_PIECE, PIECE_FORMAT, combine
from superhf.evaluation import SAMPLERS, evaluate_models
from superhf.io import atomic_path, write_json, write_jsonl
from superhf.models import is_disabled, pick_device, torch_dtype
from superhf.params import load_section, read_params
from superhf.paths import cache_root
from superhf.reward import RewardScorer
from superhf.stages.evaluate_inputs import (
    check_piece_args,
    curve_range,
    held_out_prompts,
    parse_snapshots,
    resolve_models,
)
from superhf.tables import table4
from superhf.tracking import TrackingConfig, stage_run


def parser() -> argparse.ArgumentParser:
    ap = stage_parser(__name__, __doc__)
    add_params_arg(ap)
    ap.add_argument(
        "--model",
        action="append",
        default=[],
        help="NAME=FOLDER of a policy to evaluate (repeat; base=FOLDER is required)",
    )
    ap.add_argument(
        "--prompts", required=True, help="JSONL of test prompts, {prompt, dataset} per line"
    )
    ap.add_argument("--reward", required=True, help="proxy reward model folder")
    ap.add_argument("--gold", required=True, help="gold reward model folder")
    ap.add_argument("--metrics", help="output JSON of every number")
    ap.add_argument("--table", help="output Markdown of Table 4")
    ap.add_argument("--completions", help="output JSONL of scored completions")
    ap.add_argument(
        "--snapshots",
        action="append",
        default=[],
        help="NAME=FOLDER of a training stage's snapshots (with index.json; repeat)",
    )
    ap.add_argument("--overopt", help="output JSON of the over-optimisation curves")
    ap.add_argument("--overopt-plots", help="output folder: one CSV per method, for DVC plots")
    ap.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="evaluate only this (repeat): a --model name (with its snapshots), best_of_n "
        f"(the table's row) or {CURVE_PIECE} (the pool curve); needs --piece-out",
    )
    ap.add_argument(
        "--curve-prompts",
        metavar="START:STOP",
        help=f"with --only {CURVE_PIECE}: draw the pool of only these test prompts (from "
        "START up to STOP, of the curve's best_of_n_curve_prompts); needs --piece-out",
    )
    ap.add_argument(
        "--piece-out",
        help="output JSON of this piece (numbers and completions) in place of the outputs; "
        "python -m superhf.stages.evaluate_merge combines pieces",
    )
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
    check_piece_args(args, models)
    disabled = [i.partition("=")[0] for i in args.model if is_disabled(i.partition("=")[2])]
    curves_to = args.overopt or args.piece_out
    snapshots = parse_snapshots(args.snapshots, models, curves_to, disabled)
    bench_data = load_benchmarks(cfg)
    test = held_out_prompts(cfg, args.prompts)
    curve_prompts = curve_range(cfg, args.curve_prompts, len(test))
    cache = cache_root() / "scores" if cfg.score_cache else None
    device, dtype = pick_device(), torch_dtype(cfg.precision)
    scorers = {
        name: RewardScorer(
            folder,
            cache_dir=cache,
            device=device,
            dtype=dtype,
            batch_size=cfg.score_batch_size,
            preamble=cfg.generation.preamble,
        )
        for name, folder in (("proxy", args.reward), ("gold", args.gold))
    }
    main_proc = int(os.environ.get("RANK", "0")) == 0
    profile = str(raw.get("profile", "unknown"))
    params = {"evaluate": raw["evaluate"]}
    with stage_run("evaluate", params, tracking, main_process=main_proc, profile=profile) as run:
        # every number first, then every file: a failure leaves the old outputs as they were
        results, rows = evaluate_models(cfg, models, test, scorers, bench_data, args.only)
        snaps = None
        if curves_to:
            snaps = snapshot_points(cfg, models, snapshots, test, scorers, args.only, curve_prompts)
        whole = expected(cfg, models, snapshots, snaps is not None)
        piece = make_piece(args, raw, models, test, (results, rows, snaps, whole))
        piece["mlflow_run_id"] = run.run_id
        if args.piece_out:
            write_json(args.piece_out, piece)
            return
        results, rows, curves = combine([piece], (cfg.bootstrap_samples, cfg.seed))
        results["test_prompts"] = len(test)
        results["mlflow_run_id"] = run.run_id
        write_outputs(args, results, rows, curves if args.overopt else None, len(test), run)


def expected(cfg: EvaluateConfig, models: dict, snapshots: dict, curves: bool) -> dict:
    """What one run over everything measures: every model, the table's best-of-n, and with
    curves each snapshot method's and best-of-n's."""
    n_max = cfg.curve_n_max
    out = {"results": [*models, *(["best_of_n"] if cfg.best_of_n > 0 else [])], "curves": []}
    if curves:
        out["curves"] = [*snapshots, *([CURVE_PIECE] if n_max > 0 else [])]
    return out


def fingerprint(args: argparse.Namespace, raw: dict, models: dict, test: list[dict]) -> dict:
    """What every piece of one evaluation shares: params, models, reward models, prompts."""
    prompts = hashlib.sha256(json.dumps(test, sort_keys=True).encode()).hexdigest()
    return {
        "evaluate": raw["evaluate"],
        "models": {name: str(path) for name, path in models.items()},
        "reward": [str(args.reward), str(args.gold)],
        "prompts_sha256": prompts,
    }


def make_piece(args, raw: dict, models: dict, test: list[dict], measured: tuple) -> dict:
    """This run's numbers as a piece (``superhf.eval_pieces``): the models' blocks and rows,
    the snapshot points and the range of the best-of-n pool it drew (``measured``: results,
    rows, snaps, and what a whole run measures, ``expected``)."""
    results, rows, snaps, whole = measured
    drawn = [] if snaps is None else list(snaps["points"])
    if snaps is not None and snaps["best_of_n"]:
        drawn.append(CURVE_PIECE)
    return {
        "format": PIECE_FORMAT,
        "fingerprint": {**fingerprint(args, raw, models, test), "expected": whole},
        "models": list(models),
        "results": {n: r for n, r in results.items() if n != "samplers"},
        "samplers": SAMPLERS,
        "rows": rows,
        "snapshots": snaps,
        "curves_drawn": drawn,
        "test_prompts": len(test),
    }


def write_outputs(
    args, results: dict, rows: list[dict], curves: dict | None, n_test: int, run
) -> None:
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


PLOTTED_METHODS = (
    "superhf",
    "rlhf",
    "rloo",
    "grpo",
    "best_of_n",
)  # dvc.yaml's over-optimisation plots


CURVE_COLUMNS = [
    "step",
    "reward_queries",
    "kl",
    "kl_se",
    "kl_kind",
    "sqrt_kl",
    "gold_mean",
    "proxy_mean",
]


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
                with (tmp / f"{method}.csv").open("w", newline="") as f:
                    w = csv.DictWriter(f, fieldnames=CURVE_COLUMNS, extrasaction="ignore")
                    w.writeheader()
                    w.writerows(pts)


if __name__ == "__main__":
    run(main)
