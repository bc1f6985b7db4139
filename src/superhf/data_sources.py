"""The raw rows of one subset, read from a local directory laid out like the hub repos or
from the hub through ``datasets.load_dataset``."""

from __future__ import annotations

import gzip
import json
import logging
import zlib
from pathlib import Path
from typing import Any

from superhf.config.prepare import PrepareConfig
from superhf.data_extract import Malformed
from superhf.errors import BadInputError, MissingInputError
from superhf.io import unique_keys

log = logging.getLogger(__name__)

# Where each subset lives in the hub repos (and in a local directory laid out like them).
HH_SUBSETS = {
    "red_team": "red-team-attempts",
    "harmless_base": "harmless-base",
    "helpful_base": "helpful-base",
    "helpful_online": "helpful-online",
    "helpful_rejection_sampled": "helpful-rejection-sampled",
}
OWN_TEST_SPLIT = {"harmless_base", "helpful_base", "helpful_online", "helpful_rejection_sampled"}


def read_raw_bytes(path: Path) -> bytes:
    """The whole file (gunzipped); a truncated or corrupt gzip is an error naming the file.

    We stop rather than keep the rows before the damage: a cut download would silently
    change the dataset (and Table 1) by an amount nobody sees.
    """
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            return f.read()
    except (EOFError, OSError, zlib.error) as exc:
        raise BadInputError(f"{path} is truncated or corrupt ({exc}); download it again") from None


def read_raw_file(path: Path) -> list[Any]:
    """Rows of a .jsonl(.gz) or JSON-array file. A line that is not UTF-8, not JSON, or
    repeats a key becomes a Malformed naming the file and line (counted and skipped)."""
    data = read_raw_bytes(path)
    if data.lstrip().startswith(b"["):
        try:
            return json.loads(data.decode("utf-8"), object_pairs_hook=unique_keys)
        except ValueError as exc:  # a JSON array cannot be split into rows: the file fails
            raise BadInputError(f"{path}: a JSON array that does not parse: {exc}") from None
    rows: list[Any] = []
    for lineno, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line.decode("utf-8"), object_pairs_hook=unique_keys))
        except UnicodeDecodeError as exc:
            rows.append(Malformed(f"{path.name} line {lineno}: not UTF-8 ({exc.reason})"))
        except json.JSONDecodeError as exc:
            rows.append(Malformed(f"{path.name} line {lineno}: invalid JSON ({exc.msg})"))
        except ValueError as exc:  # a duplicated key
            rows.append(Malformed(f"{path.name} line {lineno}: {exc}"))
    if not rows:
        log.warning("prepare: %s holds no rows", path)
    return rows


def _split_files(folder: Path, split: str) -> list[Path]:
    return sorted(p for p in folder.glob(f"*{split}*") if p.suffix in {".gz", ".jsonl", ".json"})


def read_local(root: Path, dataset: str) -> dict[str, list[Any]]:
    """Raw rows of one subset from a directory laid out like the hub repos."""
    if dataset == "webgpt":
        folder = root / "webgpt_comparisons"
        splits = {"train": sorted(p for p in folder.glob("*.json*") if p.is_file())}
    else:
        folder = root / "hh-rlhf" / HH_SUBSETS[dataset]
        if dataset in OWN_TEST_SPLIT:
            splits = {s: _split_files(folder, s) for s in ("train", "test")}
        else:
            splits = {"train": sorted(p for p in folder.glob("*.json*") if p.is_file())}
    if not folder.is_dir():
        raise MissingInputError(f"subset '{dataset}' not found: no directory {folder}")
    if not any(splits.values()):
        raise MissingInputError(f"subset '{dataset}': no .jsonl/.json files in {folder}")
    out = {}
    for split, files in splits.items():
        if not files:
            log.warning("%s: no %s split in %s; it contributes no rows", dataset, split, folder)
        out[split] = [row for path in files for row in read_raw_file(path)]
    return out


def read_hub(cfg: PrepareConfig, dataset: str) -> dict[str, list[Any]]:
    """Raw rows of one subset via ``datasets.load_dataset`` (hub id, or a local hub-like dir).

    The calls datasets 5 accepts (no loading scripts; ../shared/REFERENCE.md): webgpt from
    its parquet conversion branch (``cfg.webgpt_revision``), hh-rlhf by ``data_dir=<subset>``
    (red-team-attempts has a ``train`` split only; its file is one JSON array).
    """
    import datasets

    if dataset == "webgpt":
        rows = datasets.load_dataset(cfg.webgpt_hub_id, revision=cfg.webgpt_revision, split="train")
        return {"train": list(rows)}
    splits = ("train", "test") if dataset in OWN_TEST_SPLIT else ("train",)
    sub = HH_SUBSETS[dataset]
    loaded = datasets.load_dataset(cfg.hh_rlhf_hub_id, revision=cfg.hh_rlhf_revision, data_dir=sub)
    missing = [s for s in splits if s not in loaded]
    if len(missing) == len(splits):
        raise FileNotFoundError(f"prepare: {cfg.hh_rlhf_hub_id}/{sub} has no split {splits}")
    return {s: list(loaded[s]) if s in loaded else [] for s in splits}
