"""Reward-model scoring: the one scoring API every stage uses, and its cache.

:class:`RewardScorer` scores (prompt, completion) batches with any reward model in
``models/``: it formats the input the way that model expects, truncates from the left
(the end of a reply is what a preference is about), sorts by length for batching, and
gives a text the same score whatever batch it lands in. :class:`ScoreCache` keeps scores
keyed by (model content hash, prompt, completion) so nothing is scored twice. Training
and judging reward models on preference pairs is in ``reward_training``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from superhf.models import (
    ModelLoadError,
    check_model_dir,
    load_reward_model,
    load_tokenizer,
    read_meta,
)

log = logging.getLogger(__name__)

HASHED_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "superhf_meta.json")


def last_human_turn(prompt: str) -> str:
    """The text of the last ``Human:`` turn (the question, for pair-input reward models)."""
    body = prompt.rsplit("Human:", 1)[-1]
    return body.rsplit("\n\nAssistant:", 1)[0].strip()


def model_hash(model_dir: str | Path) -> str:
    """Content hash of a model folder: its weights, config and tokenizer files."""
    folder = check_model_dir(model_dir)
    h = hashlib.sha256()
    weights = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
    files = weights + [folder / f for f in HASHED_FILES]
    for path in files:
        if path.is_file():
            h.update(path.name.encode() + b"\0")
            with path.open("rb") as f:
                while block := f.read(1 << 20):
                    h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------------- cache
class ScoreCache:
    """sqlite file of scores for one reward model, keyed by sha256(prompt, completion).

    The file records the full model hash and a schema version; a file that is not a
    database, fails sqlite's check, or belongs to another model is moved aside and rebuilt.
    """

    VERSION = "1"

    def __init__(self, path: str | Path, model_hash: str) -> None:
        self.path = Path(path)
        self.model_hash = model_hash
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.hits = self.misses = 0
        try:
            self.db = self._open()
        except sqlite3.DatabaseError as exc:
            self._discard(f"unreadable ({exc})")
            self.db = self._open()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path)
        if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            db.close()
            raise sqlite3.DatabaseError("quick_check failed")
        db.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
        db.execute("CREATE TABLE IF NOT EXISTS scores (key TEXT PRIMARY KEY, score REAL NOT NULL)")
        meta = dict(db.execute("SELECT k, v FROM meta").fetchall())
        expected = {"version": self.VERSION, "model_hash": self.model_hash}
        if not meta:
            db.executemany("INSERT INTO meta VALUES (?, ?)", expected.items())
            db.commit()
        elif meta != expected:
            db.close()
            raise sqlite3.DatabaseError(f"foreign cache (meta {meta})")
        return db

    def _discard(self, why: str) -> None:
        aside = self.path.with_suffix(self.path.suffix + ".bad")
        log.warning("score cache %s is %s; moved to %s and rebuilt", self.path, why, aside)
        self.path.replace(aside)

    @staticmethod
    def key(prompt: str, completion: str) -> str:
        return hashlib.sha256(f"{prompt}\0{completion}".encode()).hexdigest()

    def get_many(self, keys: Sequence[str]) -> dict[str, float]:
        found: dict[str, float] = {}
        for i in range(0, len(keys), 500):
            chunk = list(keys[i : i + 500])
            q = f"SELECT key, score FROM scores WHERE key IN ({','.join('?' * len(chunk))})"
            found.update(self.db.execute(q, chunk).fetchall())
        self.hits += len(found)
        self.misses += len(set(keys)) - len(found)
        return found

    def put_many(self, items: dict[str, float]) -> None:
        self.db.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?)", items.items())
        self.db.commit()

    def close(self) -> None:
        self.db.close()


# ----------------------------------------------------------------------------- scoring
def encode(
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    completions: Sequence[str],
    input_format: str,
    max_length: int,
) -> dict[str, torch.Tensor]:
    """Tokenise reward-model inputs, padding on the right. ``text`` and ``pair`` truncate
    from the left (the end of a reply is what a preference is about); ``upstream`` is the
    paper's code: ``prompt + " " + completion`` (the caller prepends the preamble to the
    prompt) truncated from the right, as its tokenizer call did by default."""
    tokenizer.truncation_side = "right" if input_format == "upstream" else "left"
    tokenizer.padding_side = "right"
    if input_format == "pair":
        questions = [last_human_turn(p) for p in prompts]
        return tokenizer(
            questions,
            list(completions),
            truncation="only_first",
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        )
    texts = [f"{p} {c}" for p, c in zip(prompts, completions)]
    return tokenizer(
        texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt"
    )


class RewardScorer:
    """Scores (prompt, completion) pairs with a reward model folder from ``models/``."""

    def __init__(
        self,
        model_dir: str | Path,
        *,
        batch_size: int = 32,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        cache_dir: str | Path | None = None,
        trust_remote_code: bool = False,
        preamble: str = "",
        input_format: str | None = None,
        max_length: int | None = None,
    ) -> None:
        """``preamble``: for a model whose ``input_format`` is ``upstream``, the text the
        policy saw before each prompt (the caller's ``generation.preamble``); the paper's
        code scored ``preamble + prompt + " " + completion``. Other formats ignore it.
        ``input_format``/``max_length`` override the folder's ``superhf_meta.json``; a
        folder with neither is refused (a guessed format scores the wrong text silently)."""
        self.model_dir = check_model_dir(model_dir)
        meta = read_meta(self.model_dir)
        input_format = input_format or meta.get("input_format")
        if input_format not in ("text", "pair", "upstream"):
            raise ModelLoadError(
                f"reward model {self.model_dir}: no superhf_meta.json naming its input format "
                f"(got {input_format!r}): materialise it with stage reward_model "
                "(source: local, input_format: text|pair|upstream) or pass input_format"
            )
        self.model = load_reward_model(
            self.model_dir, trust_remote_code=trust_remote_code, dtype=dtype
        )
        self.model.to(device).eval()
        self.tokenizer = load_tokenizer(self.model_dir, trust_remote_code=trust_remote_code)
        self.input_format = input_format
        self.max_length = int(max_length or meta.get("max_length", 512))
        self.preamble = preamble if self.input_format == "upstream" else ""
        self.batch_size = batch_size
        self.sort_by_length = True  # the benchmarks switch it off to measure what it buys
        self.device = torch.device(device)
        self.hash = model_hash(self.model_dir)
        # scores in another dtype are other numbers: they get their own cache file
        key = self.hash if dtype == torch.float32 else f"{self.hash}-{str(dtype)[6:]}"
        self.cache = (
            ScoreCache(Path(cache_dir) / f"scores-{key[:16]}{key[64:]}.sqlite", key)
            if cache_dir is not None
            else None
        )

    @torch.inference_mode()
    def _score_uncached(self, prompts: Sequence[str], completions: Sequence[str]) -> list[float]:
        lengths = [len(p) + len(c) for p, c in zip(prompts, completions)]
        order = list(range(len(prompts)))
        if self.sort_by_length:
            order.sort(key=lambda i: -lengths[i])
        out = [0.0] * len(prompts)
        batches = range(0, len(order), self.batch_size)
        for start in tqdm(batches, desc="score", unit="batch", disable=None, delay=2, leave=False):
            idx = order[start : start + self.batch_size]
            enc = encode(
                self.tokenizer,
                [prompts[i] for i in idx],
                [completions[i] for i in idx],
                self.input_format,
                self.max_length,
            ).to(self.device)
            scores = self.model(**enc).logits[:, 0].float().cpu().tolist()
            for i, s in zip(idx, scores):
                out[i] = s
        return out

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> list[float]:
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        if self.preamble:  # upstream: the reward model sees the prompt as the policy did
            prompts = [self.preamble + p for p in prompts]
        if self.cache is None:
            scores = self._score_uncached(prompts, completions)
        else:
            keys = [ScoreCache.key(p, c) for p, c in zip(prompts, completions)]
            found = self.cache.get_many(keys)
            todo = sorted({i for i, k in enumerate(keys) if k not in found}, key=keys.__getitem__)
            todo_unique = list({keys[i]: i for i in todo}.values())
            new = self._score_uncached(
                [prompts[i] for i in todo_unique], [completions[i] for i in todo_unique]
            )
            fresh = {keys[i]: s for i, s in zip(todo_unique, new)}
            self.cache.put_many(fresh)
            found.update(fresh)
            scores = [found[k] for k in keys]
        bad = [i for i, s in enumerate(scores) if not math.isfinite(s)]
        if bad:
            raise FloatingPointError(f"reward model gave non-finite scores at rows {bad[:5]}")
        return scores
