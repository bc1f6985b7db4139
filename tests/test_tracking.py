from __future__ import annotations

import os
import time
from pathlib import Path
from unittest import mock

import pytest

from superhf.tracking import TrackingConfig, connect, flatten, main_repo_root, resolve_uri


def test_default_uri_is_absolute_and_survives_dvc_temp_workspaces(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert (
        resolve_uri(TrackingConfig(), tmp_path) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    )
    temp_ws = tmp_path / ".dvc" / "tmp" / "exps" / "tmpabc123"
    temp_ws.mkdir(parents=True)
    assert main_repo_root(temp_ws) == tmp_path.resolve()
    assert resolve_uri(TrackingConfig(), temp_ws) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"


def test_relative_uri_in_temp_workspace_and_file_store_are_refused(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    temp_ws = tmp_path / ".dvc" / "tmp" / "exps" / "tmpabc123"
    temp_ws.mkdir(parents=True)
    with pytest.raises(ValueError, match="relative inside a DVC temporary workspace"):
        resolve_uri(TrackingConfig(uri="sqlite:///mlflow.db"), temp_ws)
    assert resolve_uri(TrackingConfig(uri="sqlite:///mlflow.db"), tmp_path) == "sqlite:///mlflow.db"
    with pytest.raises(ValueError, match="file store"):
        resolve_uri(TrackingConfig(uri="./mlruns"), tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert resolve_uri(TrackingConfig(), tmp_path) == "http://127.0.0.1:5000"


def test_unreachable_store_fails_fast(monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    t0 = time.perf_counter()
    # connect() sets mlflow's URI (and MLFLOW_* variables) process-wide: undo it afterwards
    with mock.patch.dict(os.environ), pytest.raises(RuntimeError, match="unreachable"):
        try:
            connect(TrackingConfig(uri="http://127.0.0.1:9"))  # nothing listens on port 9
        finally:
            import mlflow

            mlflow.set_tracking_uri(None)
    assert time.perf_counter() - t0 < 120


def test_flatten() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a.b": 1, "a.c.d": 2, "e": 3}
