"""What ``evaluate.benchmarks`` asks for: its data loaded before any model work (a missing
file fails fast), then every protocol run on one model."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from superhf.capabilities.harness import lm_eval_available, run_lm_eval
from superhf.capabilities.loaders import load_all, load_hub
from superhf.capabilities.paper import load_paper, run_paper
from superhf.capabilities.tasks import StandardRun, run_all
from superhf.config.evaluate import EvaluateConfig
from superhf.errors import BadInputError, MissingInputError
from superhf.paths import fixture_eval_dir

log = logging.getLogger(__name__)


def load_benchmarks(cfg: EvaluateConfig) -> dict[str, Any] | None:
    """The data of every protocol ``evaluate.benchmarks`` asks for (before any model work, so
    a missing file fails fast): ``{"standard": ..., "paper": ..., "source": ...}``."""
    b = cfg.benchmarks
    if not b.enabled:
        return None
    out: dict[str, Any] = {"source": b.source, "standard": None, "paper": None}
    root = Path(b.data_dir) if b.source == "local" else fixture_eval_dir()
    if b.source != "hub" and not root.is_dir():
        raise MissingInputError(f"evaluate.benchmarks.data_dir: {root} is not a directory")
    if b.protocol in ("standard", "both"):
        out["standard"] = load_hub() if b.source == "hub" else load_all(root)
    if b.protocol in ("paper", "both"):
        paper_root = Path(b.paper_data_dir) if b.paper_data_dir else None
        out["paper"] = load_paper(paper_root, None if b.source == "hub" else root)
    return out


def run_benchmarks(model, tok, bench: dict[str, Any], cfg: EvaluateConfig) -> dict[str, Any]:
    """Every protocol ``evaluate.benchmarks`` asks for on one model. The standard results
    sit at the top (``hhh``, ``lambada``, ...), the paper's under ``paper``, lm-eval's under
    ``lm_eval``; ``smoke`` marks results on our fixture sets (2-12 items: not results)."""
    b = cfg.benchmarks
    out: dict[str, Any] = {"smoke": bench["source"] == "fixture"}
    if bench["standard"] is not None:
        run = StandardRun(dict(b.max_examples), b.tweet_shots, cfg.seed, b.batch_size)
        out.update(run_all(model, tok, bench["standard"], run))
    if bench["paper"] is not None:
        out["paper"] = run_paper(model, tok, bench["paper"], b.paper_quirks, b.batch_size)
    if b.lm_eval_tasks:
        check_lm_eval(cfg)
        out["lm_eval"] = run_lm_eval(model, tok, b.lm_eval_tasks, b.lm_eval_limit, b.batch_size)
    return out


def check_lm_eval(cfg: EvaluateConfig) -> None:
    """``lm_eval_tasks`` without lm-eval installed is an error, raised before any work (a
    skipped task would leave a cached, incomplete output)."""
    b = cfg.benchmarks
    if b.enabled and b.lm_eval_tasks and not lm_eval_available():
        raise BadInputError(
            f"evaluate.benchmarks.lm_eval_tasks {b.lm_eval_tasks} needs lm-eval, which is not "
            "installed: pip install -e '.[eval]', or set lm_eval_tasks: []"
        )
