"""MLflow tracking: one run per stage run, logged from the main process only.

Tracking URI, in order: ``tracking.uri`` in params, ``$MLFLOW_TRACKING_URI``, else a sqlite
file at an *absolute* path in the main repository (``<repo>/mlflow.db``). DVC runs queued
experiments in temporary copies under ``.dvc/tmp/exps``; a relative URI there would write
runs into a folder that is deleted afterwards, so it is refused with a clear error.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from superhf.config.tracking import TrackingConfig
from superhf.errors import UserError
from superhf.params import ParamsError


class TrackingError(UserError, RuntimeError):
    """The MLflow store cannot be used (unreachable, refused)."""


DVC_TMP = os.sep.join(("", ".dvc", "tmp", "exps", ""))


def main_repo_root(cwd: Path | None = None) -> Path:
    """The user's repository, also from inside a DVC temporary experiment workspace."""
    cwd = (cwd or Path.cwd()).resolve()
    text = str(cwd) + os.sep
    if DVC_TMP in text:
        return Path(text.split(DVC_TMP)[0])
    return cwd


def resolve_uri(cfg: TrackingConfig, cwd: Path | None = None) -> str:
    uri = cfg.uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        local = uri.removeprefix("sqlite:///") if uri.startswith("sqlite:///") else None
        if uri.startswith("file:") or (local is None and "://" not in uri):
            raise ParamsError(f"tracking.uri {uri!r}: MLflow 3 refuses the file store; use sqlite")
        in_temp = DVC_TMP in str((cwd or Path.cwd()).resolve()) + os.sep
        if local is not None and not Path(local).is_absolute() and in_temp:
            raise ParamsError(
                f"tracking.uri {uri!r} is relative inside a DVC temporary workspace; runs "
                "would be lost with it. Use an absolute sqlite path or an http server."
            )
        return uri
    return f"sqlite:///{main_repo_root(cwd) / 'mlflow.db'}"


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


class NullRun:
    """Stands in for an MLflow run when tracking is off or on non-main processes."""

    run_id: str | None = None

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        pass

    def log_artifact(self, path: str | Path) -> None:
        pass


class MlflowRun(NullRun):
    def __init__(self, mlflow: Any, run: Any) -> None:
        self.mlflow = mlflow
        self.run_id = run.info.run_id

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    def log_artifact(self, path: str | Path) -> None:
        self.mlflow.log_artifact(str(path))


def connect(cfg: TrackingConfig) -> Any:
    """Set the tracking URI and check the store answers: fail before any training."""
    # Fail in seconds, not after minutes of retries, when an http store is down.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
    uri = resolve_uri(cfg)  # a refused URI fails before mlflow's slow import
    import mlflow

    mlflow.set_tracking_uri(uri)
    try:
        mlflow.set_experiment(cfg.experiment)
    except Exception as exc:  # noqa: BLE001 - any failure here means: unusable store
        raise TrackingError(f"MLflow tracking store at {uri} is unreachable: {exc}") from exc
    return mlflow


@contextlib.contextmanager
def stage_run(
    stage: str,
    params: dict[str, Any],
    cfg: TrackingConfig,
    *,
    main_process: bool = True,
    profile: str = "unknown",
) -> Iterator[NullRun]:
    """One MLflow run for this stage run, tagged so a model on disk leads back to it."""
    if not (cfg.enabled and main_process):
        yield NullRun()
        return
    mlflow = connect(cfg)
    tags = {
        "stage": stage,
        "profile": profile,
        "git_commit": git_commit(),
        "dvc_exp_name": os.environ.get("DVC_EXP_NAME", "workspace"),
        "dvc_exp_baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV", "unknown"),
    }
    name = f"{stage}-{tags['dvc_exp_name']}"
    with mlflow.start_run(run_name=name, tags=tags) as run:
        flat = flatten(params)
        mlflow.log_params({k: str(v)[:500] for k, v in flat.items()})
        yield MlflowRun(mlflow, run)
