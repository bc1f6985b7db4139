"""The evaluate stage's inputs, each checked before any model loads (a bad one fails fast):
the ``--model`` and ``--snapshots`` arguments, ``--only`` and ``--curve-prompts`` with
``--piece-out``, the policy and reward-model folders, and the held-out test prompts."""

from __future__ import annotations

import argparse
import logging
import random
from collections.abc import Iterable
from pathlib import Path

from superhf.config.evaluate import EvaluateConfig
from superhf.errors import BadInputError
from superhf.eval_pieces import CURVE_PIECE
from superhf.io import read_jsonl
from superhf.model_check import check_model_folder
from superhf.models import is_disabled
from superhf.prompting import check_context

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


def parse_snapshots(
    items: list[str], models: dict[str, Path], overopt: str | None, disabled: Iterable[str] = ()
) -> dict:
    """--snapshots NAME=FOLDER (a training stage's snapshot folder, with index.json); those
    of a ``disabled`` method are left out. ``overopt``: where the curves go (the curves'
    output, or a piece's file)."""
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
        raise BadInputError(
            "--snapshots needs --overopt (where the curves are written) or --piece-out"
        )
    return snaps


def check_piece_args(args: argparse.Namespace, models: dict) -> None:
    """--only names exist and come with --piece-out, so does --curve-prompts (with --only
    best_of_n_curve, and a range START:STOP); without --piece-out, every output is named."""
    if args.only and not args.piece_out:
        raise BadInputError("--only needs --piece-out (a piece's numbers go to their own file)")
    for name in args.only or ():
        if name not in models and name not in ("best_of_n", CURVE_PIECE):
            raise BadInputError(f"--only {name}: not a --model name, best_of_n or {CURVE_PIECE}")
    if args.curve_prompts is not None:
        if CURVE_PIECE not in (args.only or ()) or not args.piece_out:
            raise BadInputError(
                f"--curve-prompts needs --only {CURVE_PIECE} and --piece-out (a range of the "
                "pool is a piece; evaluate_merge joins the ranges)"
            )
        parse_range(args.curve_prompts)
    if not args.piece_out:
        for opt in ("metrics", "table", "completions"):
            if getattr(args, opt) is None:
                raise BadInputError(f"--{opt} is required (or --piece-out for a piece)")


def parse_range(text: str) -> tuple[int, int]:
    """--curve-prompts START:STOP: test prompt indices START up to STOP (not included)."""
    start, sep, stop = text.partition(":")
    if not sep or not start.strip().isdigit() or not stop.strip().isdigit():
        raise BadInputError(f"--curve-prompts expects START:STOP (two integers), got {text!r}")
    if int(start) >= int(stop):
        raise BadInputError(f"--curve-prompts {text}: an empty range (START must be < STOP)")
    return int(start), int(stop)


def curve_range(cfg: EvaluateConfig, text: str | None, n_test: int) -> tuple[int, int] | None:
    """The prompts (start, stop) of the best-of-n pool that --curve-prompts names (None: all
    of them), within the curve's prompts: the first ``best_of_n_curve_prompts`` of the
    ``n_test`` test prompts."""
    if text is None:
        return None
    if cfg.curve_n_max == 0:
        raise BadInputError("--curve-prompts: the best-of-n curve is off (best_of_n_curve: 0)")
    start, stop = parse_range(text)
    total = min(n_test, cfg.best_of_n_curve_prompts or n_test)
    if stop > total:
        raise BadInputError(
            f"--curve-prompts {text}: the curve has {total} prompts (the first "
            f"best_of_n_curve_prompts of {n_test} test prompts); STOP must be <= {total}"
        )
    return start, stop


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
