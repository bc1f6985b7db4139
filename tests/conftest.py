from __future__ import annotations

import os
from pathlib import Path

import pytest

# Before any test module imports huggingface_hub or datasets, which read these at import:
# tests never reach a hub (the fixture below keeps them set for each test as well).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

REPO = Path(__file__).resolve().parents[1]
# ../shared beside the repository; SUPERHF_SHARED points elsewhere (e.g. from a worktree)
SHARED = Path(os.environ.get("SUPERHF_SHARED", REPO.parent / "shared"))
SHARED_DATA = SHARED / "data"

needs_shared = pytest.mark.skipif(
    not (SHARED_DATA / "hh-rlhf").is_dir(), reason="../shared/data is not beside the repo"
)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never reach a hub."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
