"""Small file helpers: every output is written to a temporary file and renamed into place,
so a crash never leaves a half-written file where a finished one is expected."""

from __future__ import annotations

import contextlib
import glob
import gzip
import json
import os
import shutil
import tempfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from superhf.errors import BadInputError, MissingInputError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    Works for files and directories. On an exception the temporary is removed and any
    existing ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent)) / "out"
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            old = _previous(path)
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


def _previous(path: Path) -> Path:
    """Where ``atomic_path`` keeps a folder's previous version while it swaps in the new one."""
    return path.with_name(f".{path.name}.old")


def restore_interrupted(path: str | Path) -> bool:
    """Undo what a kill inside ``atomic_path`` left beside ``path``: after a kill between its
    two renames ``path`` is gone and its previous version is at ``.<name>.old``, moved back
    (True when it was); then every leftover ``.<name>.*`` (temporaries, a stale ``.old``) is
    removed. Only while nothing is writing ``path``."""
    path = Path(path)
    restored = not path.exists() and _previous(path).is_dir()
    if restored:
        os.replace(_previous(path), path)
    clear_leftovers(path)
    return restored


def clear_leftovers(path: str | Path) -> None:
    """Remove the ``.<name>.*`` folders and files that killed ``atomic_path`` calls left."""
    path = Path(path)
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*"):
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    n = 0
    with atomic_path(path) as tmp, tmp.open("w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def read_json(path: str | Path) -> Any:
    """A JSON file; missing or unparsable is an error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"expected a JSON file at {path}")
    try:
        return json.loads(path.read_bytes().decode("utf-8"), object_pairs_hook=unique_keys)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, a duplicated key
        raise BadInputError(f"{path}: not valid JSON ({exc})") from None


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for json.loads: a key given twice is an error, not last-wins."""
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"key {k!r} appears twice")
        out[k] = v
    return out


def read_jsonl(path: str | Path, fields: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file (``.gz`` too), each a JSON object; blank lines are skipped.

    ``fields`` must be non-empty strings in every row. Anything else (not UTF-8, not JSON, a
    JSON array, a duplicated key, a missing or empty field) is a BadInputError naming the
    file and line: these files are written by our stages, so a bad row means a broken file.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"expected a JSONL file at {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    rows, lineno, line = [], 0, ""
    try:
        with opener(path, "rb") as f:
            for raw in f:
                lineno += 1
                line = raw.decode("utf-8")
                if not line.strip():
                    continue
                row = json.loads(line, object_pairs_hook=unique_keys)
                if not isinstance(row, dict):
                    raise ValueError(f"expected a JSON object, got {type(row).__name__}")
                for key in fields:
                    if not isinstance(row.get(key), str):
                        got = "missing" if key not in row else type(row[key]).__name__
                        raise ValueError(f"field {key!r} must be a string ({got})")
                    if not row[key].strip():
                        raise ValueError(f"field {key!r} is empty")
                rows.append(row)
    except (EOFError, OSError, zlib.error) as exc:  # truncated or corrupt gzip
        raise BadInputError(f"{path}: unreadable ({exc})") from None
    except UnicodeDecodeError as exc:
        raise BadInputError(f"{path}:{lineno}: not UTF-8 ({exc.reason})") from None
    except ValueError as exc:  # JSONDecodeError included
        hint = " (a JSON array? expected one JSON object per line)" * line.lstrip().startswith("[")
        raise BadInputError(f"{path}:{lineno}: {exc}{hint}") from None
    return rows
