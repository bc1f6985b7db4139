"""Capability and alignment benchmarks of the paper's Table 4, scored in-house by
log-likelihood following the lm-evaluation-harness protocols (0-shot unless a param says).
(Speed measurements live in the top-level ``benchmarks/`` folder; this is what a model can do.)

Each task has a loader (a directory laid out like ``../shared/data/eval``: our fixtures by
default, a local copy of the real files, or hub datasets) and a scorer.
"""

from __future__ import annotations

import gzip
import json
import random
import re
import string
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from superhf.config import EvaluateConfig
from superhf.core import tail_forward_inputs
from superhf.errors import BadInputError, MissingInputError, UserError
from superhf.paths import fixture_eval_dir

HHH_SUBTASKS = ("harmless", "helpful", "honest", "other")
TWEET_LABELS = (" negative", " neutral", " positive")


# ----------------------------------------------------------------------------- loaders
def _need(path: Path) -> Path:
    if not path.is_file():
        raise MissingInputError(f"benchmark file not found: {path}")
    return path


def load_hhh(root: Path) -> dict[str, list[dict]]:
    out = {}
    for sub in HHH_SUBTASKS:
        data = json.loads(_need(root / "hhh_alignment" / sub / "task.json").read_text())
        out[sub] = [{"input": e["input"], "choices": list(e["target_scores"]),
                     "labels": list(e["target_scores"].values())} for e in data["examples"]]  # fmt: skip
    return out


def load_lambada(root: Path) -> list[dict]:
    rows = []
    with _need(root / "lambada_openai" / "lambada_test.jsonl").open() as f:
        for line in f:
            text = json.loads(line)["text"]
            context, word = text.rsplit(" ", 1)
            rows.append({"context": context, "continuation": " " + word})
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
    return [{"title": art["title"], "context": par["context"], "question": qa["question"],
             "answers": [a["text"] for a in qa["answers"]], "id": qa["id"]}
            for art in data for par in art["paragraphs"] for qa in par["qas"]]  # fmt: skip


def load_all(root: Path) -> dict[str, Any]:
    """Every task from ``root``; a file that does not parse is an error naming the task."""
    loaders = {"hhh": load_hhh, "lambada": load_lambada, "wsc": load_wsc,
               "tweets": load_tweets, "squad": load_squad}  # fmt: skip
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


def load_hub() -> dict[str, Any]:
    """The same tasks from the hub (needs a network; the paper profile uses it)."""
    import datasets

    hhh = {}
    for sub in HHH_SUBTASKS:
        ds = datasets.load_dataset("HuggingFaceH4/hhh_alignment", sub, split="test")
        hhh[sub] = [{"input": r["input"], "choices": r["targets"]["choices"],
                     "labels": r["targets"]["labels"]} for r in ds]  # fmt: skip
    lam = [dict(zip(("context", "continuation"), (t.rsplit(" ", 1)[0], " " + t.rsplit(" ", 1)[1])))
           for t in datasets.load_dataset("EleutherAI/lambada_openai", "default", split="test")["text"]]  # fmt: skip
    wsc = []
    for r in datasets.load_dataset("winograd_wsc", "wsc273", split="test", trust_remote_code=False):
        pre = r["text"][: r["pronoun_loc"]]
        wsc.append({"context_options": [pre + o for o in r["options"]],
                    "continuation": r["text"][r["pronoun_loc"] + len(r["pronoun"]) :].strip(),
                    "gold": r["label"]})  # fmt: skip
    tw = datasets.load_dataset("cardiffnlp/tweet_eval", "sentiment")
    tweets = {
        s: [{"text": r["text"], "label": r["label"]} for r in tw[k]]
        for s, k in (("test", "test"), ("val", "validation"))
    }
    squad = [{"title": r["title"], "context": r["context"], "question": r["question"],
              "answers": r["answers"]["text"], "id": r["id"]}
             for r in datasets.load_dataset("rajpurkar/squad", split="validation")]  # fmt: skip
    return {"hhh": hhh, "lambada": lam, "wsc": wsc, "tweets": tweets, "squad": squad}


def load_benchmarks(cfg: EvaluateConfig) -> dict[str, Any] | None:
    b = cfg.benchmarks
    if not b.enabled:
        return None
    if b.source == "hub":
        return load_hub()
    root = Path(b.data_dir) if b.source == "local" else fixture_eval_dir()
    if not root.is_dir():
        raise MissingInputError(f"evaluate.benchmarks.data_dir: {root} is not a directory")
    return load_all(root)


# ----------------------------------------------------------------------------- scoring core
@torch.inference_mode()
def loglikelihood(
    model, tok, requests: Sequence[tuple[str, str]], batch_size: int = 16, max_length: int = 1024
) -> list[tuple[float, bool]]:
    """(sum log p(continuation | context), continuation is the greedy prediction) per request.

    Context and continuation are tokenised separately and concatenated (as lm-eval does),
    so the continuation's tokens do not depend on how the context ends. Long contexts lose
    their beginning.
    """
    device = next(model.parameters()).device
    encoded = []
    for ctx, cont in requests:
        c_ids = tok(ctx, add_special_tokens=False)["input_ids"]
        x_ids = tok(cont, add_special_tokens=False)["input_ids"]
        if not c_ids:  # a first token needs something to condition on
            c_ids = [tok.eos_token_id]
        ids = (c_ids + x_ids)[-max_length:]
        encoded.append((ids, min(len(x_ids), len(ids) - 1)))
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i][0]))
    out: list[tuple[float, bool]] = [(0.0, False)] * len(encoded)
    batches = range(0, len(order), batch_size)
    for s in tqdm(batches, desc="log-likelihood", disable=None, delay=2, leave=False):
        idx = order[s : s + batch_size]
        width = max(len(encoded[i][0]) for i in idx)
        # left padding puts every continuation at the right end, so logits are computed for
        # the last `keep` columns only (position_ids make the padding invisible)
        keep = min(width, 1 + max(encoded[i][1] for i in idx))
        ids = torch.full((len(idx), width), tok.pad_token_id, dtype=torch.long)
        attn = torch.zeros((len(idx), width), dtype=torch.long)
        for r, i in enumerate(idx):
            row = encoded[i][0]
            ids[r, width - len(row) :] = torch.tensor(row)
            attn[r, width - len(row) :] = 1
        logits = model(**tail_forward_inputs(ids.to(device), attn.to(device), keep)).logits
        logp = F.log_softmax(logits.float(), dim=-1)
        for r, i in enumerate(idx):
            row, n = encoded[i]
            pos = torch.arange(keep - n - 1, keep - 1, device=device)
            target = torch.tensor(row[len(row) - n :], device=device)
            lp = logp[r, pos]
            ll = lp.gather(-1, target[:, None]).sum().item()
            greedy = bool(torch.equal(lp.argmax(-1), target))
            out[i] = (ll, greedy)
    return out


def argmax_random_ties(scores: Sequence[float], rng: random.Random) -> int:
    """Index of the maximum; equal maxima are broken at random (never 'first maximum')."""
    best = max(scores)
    return rng.choice([i for i, s in enumerate(scores) if s == best])


def multiple_choice(
    model, tok, items: list[tuple[str, list[str]]], rng: random.Random, bs: int
) -> list[int]:
    reqs = [(ctx, ch) for ctx, choices in items for ch in choices]
    lls = [ll for ll, _ in loglikelihood(model, tok, reqs, bs)]
    picks, k = [], 0
    for _, choices in items:
        picks.append(argmax_random_ties(lls[k : k + len(choices)], rng))
        k += len(choices)
    return picks


# ----------------------------------------------------------------------------- tasks
def hhh_accuracy(model, tok, examples: list[dict], rng: random.Random, bs: int = 16) -> float:
    """BIG-bench protocol: context '\\nHuman: ' + input + '\\nAssistant:', summed ll."""
    items = [
        ("\nHuman: " + e["input"] + "\nAssistant:", [" " + c for c in e["choices"]])
        for e in examples
    ]
    picks = multiple_choice(model, tok, items, rng, bs)
    return sum(e["labels"][p] == 1 for e, p in zip(examples, picks)) / len(examples)


def lambada(model, tok, rows: list[dict], bs: int = 16) -> dict[str, float]:
    res = loglikelihood(model, tok, [(r["context"], r["continuation"]) for r in rows], bs)
    import math

    return {"acc": sum(g for _, g in res) / len(res),
            "ppl": math.exp(-sum(ll for ll, _ in res) / len(res))}  # fmt: skip


def wsc(model, tok, rows: list[dict], rng: random.Random, bs: int = 16) -> float:
    """Partial scoring: the shared continuation after each candidate context."""
    reqs = [(ctx, " " + r["continuation"]) for r in rows for ctx in r["context_options"]]
    lls = [ll for ll, _ in loglikelihood(model, tok, reqs, bs)]
    correct, k = 0, 0
    for r in rows:
        n = len(r["context_options"])
        correct += argmax_random_ties(lls[k : k + n], rng) == r["gold"]
        k += n
    return correct / len(rows)


def tweet_prompt(text: str) -> str:
    return f"Tweet: {text}\nSentiment:"


def tweets(
    model, tok, data: dict[str, list[dict]], shots: int, rng: random.Random, bs: int = 16
) -> float:
    """3-way sentiment by argmax log-likelihood, ``shots`` examples drawn from val."""
    items = []
    for r in data["test"]:
        demo = rng.sample(data["val"], shots) if shots else []
        prefix = "".join(tweet_prompt(d["text"]) + TWEET_LABELS[d["label"]] + "\n\n" for d in demo)
        items.append((prefix + tweet_prompt(r["text"]), list(TWEET_LABELS)))
    picks = multiple_choice(model, tok, items, rng, bs)
    return sum(p == r["label"] for p, r in zip(picks, data["test"])) / len(items)


def normalize_answer(s: str) -> str:
    """Official SQuAD v1.1 normalisation: lower, drop punctuation, articles, extra spaces."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def squad_f1(prediction: str, truth: str) -> float:
    p, t = normalize_answer(prediction).split(), normalize_answer(truth).split()
    common = Counter(p) & Counter(t)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(t)
    return 2 * precision * recall / (precision + recall)


def squad_em(prediction: str, truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(truth))


def squad(model, tok, rows: list[dict], max_new_tokens: int = 32, bs: int = 8) -> dict[str, float]:
    """Greedy generation to the first newline; EM and F1 against the best reference."""
    from superhf.generation import tokenize_prompts

    device = next(model.parameters()).device
    preds = []
    for s in tqdm(range(0, len(rows), bs), desc="squad", disable=None, delay=2, leave=False):
        chunk = rows[s : s + bs]
        texts = [
            f"Title: {r['title']}\n\nBackground: {r['context']}\n\nQuestion: {r['question']}\n\nAnswer:"
            for r in chunk
        ]
        enc = tokenize_prompts(tok, texts, 1024).to(device)
        with torch.inference_mode():
            # the answer ends at the first newline: stop there instead of at max_new_tokens
            seqs = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                  pad_token_id=tok.pad_token_id, temperature=None, top_p=None,
                                  top_k=None, stop_strings=["\n"], tokenizer=tok)  # fmt: skip
        for t in tok.batch_decode(seqs[:, enc["input_ids"].shape[1] :], skip_special_tokens=True):
            preds.append(t.strip().split("\n")[0].strip())
    em = sum(max(squad_em(p, a) for a in r["answers"]) for p, r in zip(preds, rows)) / len(rows)
    f1 = sum(max(squad_f1(p, a) for a in r["answers"]) for p, r in zip(preds, rows)) / len(rows)
    return {"em": em, "f1": f1}


def subsample(rows: list, n: int | None, rng: random.Random) -> list:
    if n is None or len(rows) <= n:
        return rows
    return [rows[i] for i in sorted(rng.sample(range(len(rows)), n))]


def run_all(model, tok, data: dict[str, Any], max_examples: dict[str, int | None], shots: int,
            seed: int, bs: int = 16) -> dict[str, Any]:  # fmt: skip
    """Every benchmark on one model; same subsample for every model (seeded)."""
    pick = random.Random(seed)
    rng = random.Random(seed + 1)
    out: dict[str, Any] = {"hhh": {}}
    for sub, ex in data["hhh"].items():
        out["hhh"][sub] = hhh_accuracy(
            model, tok, subsample(ex, max_examples.get("hhh"), pick), rng, bs
        )
    out["lambada"] = lambada(
        model, tok, subsample(data["lambada"], max_examples.get("lambada"), pick), bs
    )
    out["wsc"] = wsc(model, tok, subsample(data["wsc"], max_examples.get("wsc"), pick), rng, bs)
    tw = {
        "test": subsample(data["tweets"]["test"], max_examples.get("tweets"), pick),
        "val": data["tweets"]["val"],
    }
    out["tweets"] = tweets(model, tok, tw, shots, rng, bs)
    out["squad"] = squad(
        model, tok, subsample(data["squad"], max_examples.get("squad"), pick), bs=max(1, bs // 2)
    )
    return out
