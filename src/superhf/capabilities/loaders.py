"""The standard tasks' rows: from a directory laid out like ``../shared/data/eval`` (our
fixtures by default, or a local copy of the real files) or from the hub."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from superhf.errors import BadInputError, MissingInputError, UserError

HHH_SUBTASKS = ("harmless", "helpful", "honest", "other")


def _need(path: Path) -> Path:
    if not path.is_file():
        raise MissingInputError(f"benchmark file not found: {path}")
    return path


def load_hhh(root: Path) -> dict[str, list[dict]]:
    out = {}
    for sub in HHH_SUBTASKS:
        data = json.loads(_need(root / "hhh_alignment" / sub / "task.json").read_text())
        out[sub] = [
            {
                "input": e["input"],
                "choices": list(e["target_scores"]),
                "labels": list(e["target_scores"].values()),
            }
            for e in data["examples"]
        ]
    return out


def lambada_row(text: str) -> dict:
    """A LAMBADA passage as a request: the last word (with its space) continues the rest."""
    context, word = text.rsplit(" ", 1)
    return {"context": context, "continuation": " " + word}


def load_lambada(root: Path) -> list[dict]:
    rows = []
    with _need(root / "lambada_openai" / "lambada_test.jsonl").open() as f:
        for line in f:
            rows.append(lambada_row(json.loads(line)["text"]))
    return rows


def load_wsc(root: Path) -> list[dict]:
    with _need(root / "wsc273" / "winograd_wsc_llmfoundry.jsonl").open() as f:
        return [json.loads(line) for line in f if line.strip()]


def _lines(path: Path) -> list[str]:
    return _need(path).read_text(encoding="utf-8").splitlines()


def load_tweets(root: Path) -> dict[str, list[dict]]:
    d = root / "tweet_eval_sentiment"
    out = {}
    for split in ("test", "val"):
        texts, labels = _lines(d / f"{split}_text.txt"), _lines(d / f"{split}_labels.txt")
        if len(texts) != len(labels):
            raise BadInputError(f"{d}: {split} has {len(texts)} texts but {len(labels)} labels")
        out[split] = [{"text": t.strip(), "label": int(y)} for t, y in zip(texts, labels)]
    return out


def load_squad(root: Path) -> list[dict]:
    path = _need(root / "squad_v1.1_dev_bigbench" / "squaddev_v1.1.json.gz")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        data = json.load(f)["data"]
    return [
        {
            "title": art["title"],
            "context": par["context"],
            "question": qa["question"],
            "answers": [a["text"] for a in qa["answers"]],
            "id": qa["id"],
        }
        for art in data
        for par in art["paragraphs"]
        for qa in par["qas"]
    ]


def load_all(root: Path) -> dict[str, Any]:
    """Every task from ``root``; a file that does not parse is an error naming the task."""
    loaders = {
        "hhh": load_hhh,
        "lambada": load_lambada,
        "wsc": load_wsc,
        "tweets": load_tweets,
        "squad": load_squad,
    }
    out = {}
    for name, load in loaders.items():
        try:
            out[name] = load(root)
        except UserError:
            raise
        except (ValueError, KeyError, TypeError, IndexError, EOFError, OSError) as exc:
            raise BadInputError(
                f"benchmark {name} in {root}: unreadable ({type(exc).__name__}: {exc})"
            ) from None
    return out


WSC_UPPER = ("A", "An", "The", "She", "He", "It", "They", "My", "His", "Her", "Their")


def wsc_row(r: dict) -> dict:
    """A ``lighteval/winograd_wsc`` row in our format, normalised as lm-eval's ``wsc273``
    (double spaces, possessive options get 's, pronouns lowercased mid-sentence)."""
    text = r["text"].replace("  ", " ")
    loc, pronoun = r["pronoun_loc"], r["pronoun"]
    options = []
    for option in r["options"]:
        if pronoun.lower() in ("my", "his", "her", "our", "their"):
            option += "'s"
        first = option.split()[0]
        if text[loc - 2] != "." and first in WSC_UPPER:
            option = option.replace(first, first.lower())
        options.append(option)
    return {
        "context_options": [text[:loc] + o for o in options],
        "continuation": text[loc + len(pronoun) :].strip(),
        "gold": int(r["label"]),
    }


def hhh_hub_row(r: dict) -> dict:
    return {
        "input": r["input"],
        "choices": r["targets"]["choices"],
        "labels": r["targets"]["labels"],
    }


def squad_hub_row(r: dict) -> dict:
    return {
        "title": r["title"],
        "context": r["context"],
        "question": r["question"],
        "answers": r["answers"]["text"],
        "id": r["id"],
    }


def load_hub() -> dict[str, Any]:
    """The same tasks from the hub (needs a network; the paper profile uses it)."""
    import datasets

    hhh = {}
    for sub in HHH_SUBTASKS:
        # main is a loading script (datasets 5 runs none): the hub's parquet conversion
        ds = datasets.load_dataset(
            "HuggingFaceH4/hhh_alignment",
            data_dir=sub,
            split="test",
            revision="refs/convert/parquet",
        )
        hhh[sub] = [hhh_hub_row(r) for r in ds]
    lam = datasets.load_dataset("EleutherAI/lambada_openai", "default", split="test")
    wsc = datasets.load_dataset("lighteval/winograd_wsc", "wsc273", split="test")
    tw = datasets.load_dataset("cardiffnlp/tweet_eval", "sentiment")
    squad = datasets.load_dataset("rajpurkar/squad", split="validation")
    return {
        "hhh": hhh,
        "lambada": [lambada_row(t) for t in lam["text"]],
        "wsc": [wsc_row(dict(r)) for r in wsc],
        "tweets": {
            "test": [{"text": r["text"], "label": r["label"]} for r in tw["test"]],
            "val": [{"text": r["text"], "label": r["label"]} for r in tw["validation"]],
        },
        "squad": [squad_hub_row(r) for r in squad],
    }
