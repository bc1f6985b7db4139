"""Where the package's own files and the user's cache live (no I/O beyond path lookup)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path


def fixture_dir() -> Path:
    """Raw-format prompt/preference fixtures shipped with the package (hub repo layout)."""
    return Path(str(resources.files("superhf") / "fixtures" / "raw"))


def fixture_eval_dir() -> Path:
    """Small benchmark fixtures shipped with the package (laid out like shared/data/eval)."""
    return Path(str(resources.files("superhf") / "fixtures" / "eval"))


def cache_root() -> Path:
    """Cache for fetched wheels and reward scores: ``$SUPERHF_CACHE`` or ~/.cache/superhf."""
    return Path(os.environ.get("SUPERHF_CACHE", Path.home() / ".cache" / "superhf"))
