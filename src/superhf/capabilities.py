"""Capability and alignment benchmarks of the paper's Table 4, scored in-house by
log-likelihood following the lm-evaluation-harness protocols (0-shot unless a param says).
(Speed measurements live in the top-level ``benchmarks/`` folder; this is what a model can do.)

Each task has a loader (a directory laid out like ``../shared/data/eval``: our fixtures by
default, a local copy of the real files, or hub datasets) and a scorer.
"""

from __future__ import annotations

import copy
import gzip
import json
import logging
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

log = logging.getLogger(__name__)

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
    return {"context_options": [text[:loc] + o for o in options],
            "continuation": text[loc + len(pronoun) :].strip(), "gold": int(r["label"])}  # fmt: skip


def load_hub() -> dict[str, Any]:
    """The same tasks from the hub (needs a network; the paper profile uses it)."""
    import datasets

    hhh = {}
    for sub in HHH_SUBTASKS:
        # main is a loading script (datasets 5 runs none): the hub's parquet conversion
        ds = datasets.load_dataset("HuggingFaceH4/hhh_alignment", data_dir=sub, split="test",
                                   revision="refs/convert/parquet")  # fmt: skip
        hhh[sub] = [{"input": r["input"], "choices": r["targets"]["choices"],
                     "labels": r["targets"]["labels"]} for r in ds]  # fmt: skip
    lam = [dict(zip(("context", "continuation"), (t.rsplit(" ", 1)[0], " " + t.rsplit(" ", 1)[1])))
           for t in datasets.load_dataset("EleutherAI/lambada_openai", "default", split="test")["text"]]  # fmt: skip
    wsc = [wsc_row(dict(r)) for r in datasets.load_dataset("lighteval/winograd_wsc", "wsc273", split="test")]  # fmt: skip
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
    """The data of every protocol ``evaluate.benchmarks`` asks for (before any model work, so
    a missing file fails fast): ``{"standard": ..., "paper": ..., "source": ...}``."""
    b = cfg.benchmarks
    if not b.enabled:
        return None
    out: dict[str, Any] = {"source": b.source, "standard": None, "paper": None}
    root = Path(b.data_dir) if b.source == "local" else fixture_eval_dir()
    if b.source != "hub" and not root.is_dir():
        raise MissingInputError(f"evaluate.benchmarks.data_dir: {root} is not a directory")
    if b.protocol in ("standard", "both"):
        out["standard"] = load_hub() if b.source == "hub" else load_all(root)
    if b.protocol in ("paper", "both"):
        paper_root = Path(b.paper_data_dir) if b.paper_data_dir else None
        out["paper"] = load_paper(paper_root, None if b.source == "hub" else root)
    return out


# ----------------------------------------------------------------------------- scoring core
DEFAULT_MAX_LENGTH = 2048  # lm-eval's fallback when a config names no context length


def model_max_length(model) -> int:
    """The model's context length, looked up as lm-eval's ``hf`` model does (``n_positions``,
    ``max_position_embeddings``, ``n_ctx`` of the text config), else 2048."""
    cfg = getattr(model.config, "text_config", None) or model.config
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(cfg, attr, None)
        if value is not None:
            return int(value)
    return DEFAULT_MAX_LENGTH


def encode_request(tok, ctx: str, cont: str, max_length: int) -> tuple[list[int], list[int]]:
    """(context tokens, continuation tokens) of one request, tokenised separately.

    Truncation follows lm-eval: context + continuation keep their last ``max_length + 1``
    tokens, the model sees all but the last one, so a context of exactly ``max_length``
    tokens is not cut. The continuation is cut only when it alone is longer than that.
    """
    c_ids = tok(ctx, add_special_tokens=False)["input_ids"]
    x_ids = tok(cont, add_special_tokens=False)["input_ids"]
    if not c_ids:  # a first token needs something to condition on
        c_ids = [tok.eos_token_id]
    ids = (c_ids + x_ids)[-(max_length + 1) :]
    n = min(len(x_ids), len(ids) - 1)
    return ids[: len(ids) - n], ids[len(ids) - n :]


@torch.inference_mode()
def loglikelihood(
    model,
    tok,
    requests: Sequence[tuple[str, str]],
    batch_size: int = 16,
    max_length: int | None = None,
    share_context: bool = True,
) -> list[tuple[float, bool]]:
    """(sum log p(continuation | context), continuation is the greedy prediction) per request.

    Context and continuation are tokenised separately and concatenated (as lm-eval does),
    so the continuation's tokens do not depend on how the context ends. Long contexts lose
    their beginning (``max_length``: the model's context length by default, as lm-eval).

    With ``share_context`` a context is run once for all the requests that continue it:
    requests whose model input is identical (single-token choices) share one row, and
    multi-token choices after the same context reuse its key/value cache. The scores equal
    one forward per request up to float rounding (tested).
    """
    max_length = max_length or model_max_length(model)
    if share_context:  # a request asked twice (HHH repeats answers across pairs) runs once
        uniq = list(dict.fromkeys(requests))
        if len(uniq) < len(requests):
            got = dict(zip(uniq, loglikelihood(model, tok, uniq, batch_size, max_length)))
            return [got[r] for r in requests]
    encoded = [encode_request(tok, c, x, max_length) for c, x in requests]
    out: list[tuple[float, bool]] = [(0.0, False)] * len(encoded)
    single, shared = list(range(len(encoded))), []
    if share_context:
        by_ctx: dict[tuple[int, ...], list[int]] = {}
        for i, (c_ids, x_ids) in enumerate(encoded):
            if len(x_ids) > 1:
                by_ctx.setdefault(tuple(c_ids), []).append(i)
        # longest contexts first, so that a forward's contexts have similar lengths
        groups = sorted((g for g in by_ctx.values() if len(g) > 1), key=lambda g: -len(encoded[g[0]][0]))  # fmt: skip
        in_group = {i for g in groups for i in g}
        single = [i for i in single if i not in in_group]
        shared = groups
    _score_rows(model, tok, encoded, single, batch_size, out, dedupe=share_context)
    # contexts of similar length share a forward (at most batch_size continuations, one
    # group may exceed it), so that left padding stays a small share of the work
    ctx_lens = [len(encoded[g[0]][0]) for g in shared]
    for chunk in padded_batches(ctx_lens, [len(g) for g in shared], batch_size):
        _score_prefix_groups(model, tok, encoded, [shared[j] for j in chunk], batch_size, out)
    return out


PAD_SLACK = 1.25  # a batch's padded tokens stay within this factor of its real tokens


def padded_batches(lengths: Sequence[int], weights: Sequence[int] | None = None,
                   max_weight: int = 16, slack: float = PAD_SLACK) -> list[list[int]]:  # fmt: skip
    """Consecutive batches of indices over ``lengths`` sorted longest first: a batch ends
    when its weight (rows by default) would pass ``max_weight`` or its padded size (rows x
    the longest) would pass ``slack`` x its real tokens. An item heavier than
    ``max_weight`` gets a batch of its own."""
    weights = weights or [1] * len(lengths)
    if list(lengths) != sorted(lengths, reverse=True):
        raise ValueError("padded_batches expects lengths sorted longest first")
    batches: list[list[int]] = []
    cur: list[int] = []
    real = weight = 0
    for i, n in enumerate(lengths):
        if cur:
            rows = len(cur) + 1
            over_pad = rows * lengths[cur[0]] > slack * (real + n)
            if weight + weights[i] > max_weight or over_pad:
                batches.append(cur)
                cur, real, weight = [], 0, 0
        cur.append(i)
        real += n
        weight += weights[i]
    if cur:
        batches.append(cur)
    return batches


def _score_rows(model, tok, encoded, which, batch_size, out, dedupe: bool) -> None:
    """One forward row per distinct model input (context + continuation minus its last
    token); the logits of the last ``len(continuation)`` columns score each request."""
    rows: dict[tuple[int, ...], list[int]] = {}
    for i in which:
        c_ids, x_ids = encoded[i]
        inp = tuple(c_ids + x_ids[:-1])
        rows.setdefault(inp if dedupe else (i, *inp), []).append(i)
    keys = sorted(rows, key=lambda k: -len(k))
    device = next(model.parameters()).device
    lengths = [len(k) - (0 if dedupe else 1) for k in keys]
    batches = padded_batches(lengths, None, batch_size)
    for batch in tqdm(batches, desc="log-likelihood", disable=None, delay=2, leave=False):
        chunk = [keys[j] for j in batch]
        inps = [k if dedupe else k[1:] for k in chunk]
        width = max(len(x) for x in inps)
        # left padding puts every continuation at the right end, so logits are computed for
        # the last `keep` columns only (position_ids make the padding invisible)
        keep = max(len(encoded[i][1]) for k in chunk for i in rows[k])
        ids = torch.full((len(chunk), width), tok.pad_token_id, dtype=torch.long)
        attn = torch.zeros((len(chunk), width), dtype=torch.long)
        for r, inp in enumerate(inps):
            ids[r, width - len(inp) :] = torch.tensor(inp)
            attn[r, width - len(inp) :] = 1
        logits = model(**tail_forward_inputs(ids.to(device), attn.to(device), keep)).logits
        logp = F.log_softmax(logits.float(), dim=-1)
        for r, k in enumerate(chunk):
            for i in rows[k]:
                x_ids = encoded[i][1]
                lp = logp[r, keep - len(x_ids) :]
                out[i] = _ll_greedy(lp, x_ids, device)


def _ll_greedy(lp: torch.Tensor, x_ids: list[int], device) -> tuple[float, bool]:
    target = torch.tensor(x_ids, device=device)
    ll = lp.gather(-1, target[:, None]).sum().item()
    return ll, bool(torch.equal(lp.argmax(-1), target))


def _score_prefix_groups(model, tok, encoded, groups: list[list[int]], batch_size: int,
                         out) -> None:  # fmt: skip
    """The contexts of a few groups in one left-padded forward with a cache; then the groups'
    continuations, longest first in batches of similar length, each over a copy of the
    cached contexts."""
    device = next(model.parameters()).device
    ctxs = [encoded[g[0]][0] for g in groups]
    width = max(map(len, ctxs))
    ids = torch.full((len(ctxs), width), tok.pad_token_id, dtype=torch.long)
    attn = torch.zeros((len(ctxs), width), dtype=torch.long)
    for r, c in enumerate(ctxs):
        ids[r, width - len(c) :] = torch.tensor(c)
        attn[r, width - len(c) :] = 1
    ids, attn = ids.to(device), attn.to(device)
    first = model(**tail_forward_inputs(ids, attn, 1), use_cache=True)
    first_lp = F.log_softmax(first.logits[:, -1].float(), dim=-1)  # predicts token 0
    cache_key = "cache" if "cache" in first else "past_key_values"  # renamed in transformers 5
    cache = first.get(cache_key)
    members = sorted(((r, i) for r, g in enumerate(groups) for i in g),
                     key=lambda m: -len(encoded[m[1]][1]))  # fmt: skip
    batches = padded_batches([len(encoded[i][1]) - 1 for _, i in members], None, batch_size)
    for b, batch in enumerate(batches):
        sub = [members[j] for j in batch]
        owner = torch.tensor([r for r, _ in sub], device=device)
        conts = [encoded[i][1][:-1] for _, i in sub]  # the last token is only a target
        cw = max(map(len, conts))
        logits = None
        if cw:
            c = cache if b == len(batches) - 1 else copy.deepcopy(cache)
            c.batch_select_indices(owner)
            x = torch.full((len(sub), cw), tok.pad_token_id, dtype=torch.long, device=device)
            xa = torch.zeros((len(sub), cw), dtype=torch.long, device=device)
            for r, t in enumerate(conts):
                x[r, : len(t)] = torch.tensor(t)
                xa[r, : len(t)] = 1  # right padding: pads come after every real token
            mask = torch.cat([attn[owner], xa], dim=1)
            pos = attn.sum(1)[owner, None] + torch.arange(cw, device=device)[None]
            logits = model(input_ids=x, attention_mask=mask, position_ids=pos, use_cache=True,
                           **{cache_key: c}).logits  # fmt: skip
        for r, (o, i) in enumerate(sub):
            x_ids = encoded[i][1]
            lp = first_lp[o][None]
            if len(x_ids) > 1:
                lp = torch.cat([lp, F.log_softmax(logits[r, : len(x_ids) - 1].float(), dim=-1)])
            out[i] = _ll_greedy(lp, x_ids, device)


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


def _n(rows: list, cap: int | None) -> int:
    return len(rows) if cap is None else min(len(rows), cap)


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
    sq = subsample(data["squad"], max_examples.get("squad"), pick)
    out["squad"] = squad(model, tok, sq, bs=max(1, bs // 2))
    cap = max_examples.get
    out["n"] = {"hhh": {s: _n(ex, cap("hhh")) for s, ex in data["hhh"].items()},
                "lambada": _n(data["lambada"], cap("lambada")), "wsc": _n(data["wsc"], cap("wsc")),
                "tweets": len(tw["test"]), "squad": len(sq)}  # fmt: skip
    return out


# ----------------------------------------------------------------------------- paper protocol
# What ``tests/evaluate_lm.py`` at the paper-era commit 6035753 ran for Table 4 (see
# ../shared/REFERENCE.md, "Evaluation"): three columns are not the tasks their names say.
PAPER_BATCH = 8  # the script's batch size: its accuracy denominators are multiples of it
PAPER_EVAL_SIZE = 1000  # the script scored the first 1000 rows after the shots
PAPER_SHOTS = 3
PAPER_HHH = ("helpful", "honest", "harmless")
# task -> (hub repo, config name, data_dir, revision, split). GLUE loads by config from
# nyu-mll/glue; the other two repos' main branches are loading scripts (datasets 5 runs
# none), so they load from the hub's parquet conversion, one folder per config.
PAPER_HUB: dict[str, tuple[str, str | None, str | None, str | None, str]] = {
    "sentiment": ("carblacac/twitter-sentiment-analysis", None, "None", "refs/convert/parquet",
                  "validation"),
    "qnli": ("nyu-mll/glue", "qnli", None, None, "validation"),
    "wnli": ("nyu-mll/glue", "wnli", None, None, "validation"),
    **{f"hhh_{s}": ("HuggingFaceH4/hhh_alignment", None, s, "refs/convert/parquet", "test")
       for s in PAPER_HHH},
}  # fmt: skip


def load_hub_rows(task: str, root: Path | None = None) -> list[dict]:
    """Rows of one paper task from the hub, or from ``root/<owner>/<name>`` laid out like
    the hub repo (the revision's tree, e.g. the parquet conversion) when ``root`` is set."""
    import datasets

    repo, name, data_dir, revision, split = PAPER_HUB[task]
    where = str(root / repo) if root is not None else repo
    if root is not None and not Path(where).is_dir():
        raise FileNotFoundError(f"paper benchmark {task}: {where} is not a directory")
    ds = datasets.load_dataset(where, name, data_dir=data_dir, split=split,
                               revision=None if root is not None else revision)  # fmt: skip
    return [dict(r) for r in ds]


# task -> (instruction, fields shown per row, label field). A shot is every field line then
# "Output: <label>"; the query ends "Output: " (with the space) for the next-token logits.
PAPER_PROMPTS: dict[str, tuple[str, tuple[tuple[str, str], ...], str]] = {
    "sentiment": ("Output 1 if Text displays positive sentiment, else Output 0 for negative "
                  "sentiment.\n", (("Text", "text"),), "feeling"),
    "qnli": ("Output 0 if Sentence answers Question, otherwise Output 1.\n",
             (("Question", "question"), ("Sentence", "sentence")), "label"),
    "wnli": ("Output 1 if Sentence1 implies Sentence2, otherwise Output 0.\n",
             (("Sentence1", "sentence1"), ("Sentence2", "sentence2")), "label"),
}  # fmt: skip


def paper_prompts(task: str, rows: list[dict], shots: int = PAPER_SHOTS) -> list[tuple[str, int]]:
    """(prompt, label) for every row after the first ``shots``, exactly as the script built
    them. The sentiment shot line is not an f-string there: it prints ``Output: {feeling}``
    literally, so its shots carry no labels; reproduced as written."""
    if task not in PAPER_PROMPTS:
        raise ValueError(f"unknown paper task {task!r}")
    head, fields, label = PAPER_PROMPTS[task]

    def lines(r: dict) -> str:
        return "".join(f"{name}: {r[key]}\n" for name, key in fields)

    def shot(r: dict) -> str:
        return lines(r) + (
            "Output: {feeling}\n" if task == "sentiment" else f"Output: {r[label]}\n"
        )

    prefix = head + "".join(shot(r) for r in rows[:shots])
    return [(prefix + lines(r) + "Output: ", int(r[label])) for r in rows[shots:]]


def rounded_denominator(n: int, batch_size: int = PAPER_BATCH) -> int:
    """The script added ``batch_size`` per batch, also for the last, shorter one."""
    return -(-n // batch_size) * batch_size


@torch.inference_mode()
def paper_logit_accuracy(
    model, tok, data: list[tuple[str, int]], batch_size: int = PAPER_BATCH, quirks: bool = True
) -> dict[str, float]:
    """Predict 1 when the next-token logit of ``'1'`` beats that of ``'0'`` after the prompt.

    ``quirks`` reproduces the script: prompts right-padded with the pad token and run
    without an attention mask, the logits read at the last column (after the padding for
    every prompt shorter than its batch's longest), and the correct count divided by the
    number of batches times ``batch_size``. Without: each prompt's own last token, and n.
    """
    device = next(model.parameters()).device
    id0 = tok.encode("0", add_special_tokens=False)[0]
    id1 = tok.encode("1", add_special_tokens=False)[0]
    correct = 0
    for s in range(0, len(data), batch_size):
        prompts, labels = zip(*data[s : s + batch_size])
        enc = [tok(p)["input_ids"] for p in prompts]
        width = max(map(len, enc))
        ids = torch.full((len(enc), width), tok.pad_token_id, dtype=torch.long)
        attn = torch.zeros((len(enc), width), dtype=torch.long)
        for r, e in enumerate(enc):
            if quirks:
                ids[r, : len(e)] = torch.tensor(e)
            else:
                ids[r, width - len(e) :] = torch.tensor(e)
                attn[r, width - len(e) :] = 1
        if quirks:
            logits = model(input_ids=ids.to(device), logits_to_keep=1).logits[:, -1]
        else:
            logits = model(**tail_forward_inputs(ids.to(device), attn.to(device), 1)).logits[:, -1]
        pred = (logits[:, id1] > logits[:, id0]).int().tolist()
        correct += sum(p == y for p, y in zip(pred, labels))
    denominator = rounded_denominator(len(data), batch_size) if quirks else len(data)
    return {"acc": correct / denominator if data else float("nan"), "n": len(data),
            "correct": correct, "denominator": denominator}  # fmt: skip


def paper_hhh_pairs(rows: list[dict]) -> list[tuple[str, str]]:
    """(right dialogue, other dialogue), the script's format; the hub lists the right
    answer first and the script relied on it (checked here)."""
    pairs = []
    for k, r in enumerate(rows):
        choices, labels = r["targets"]["choices"], r["targets"]["labels"]
        if len(choices) != 2 or list(labels) != [1, 0]:
            raise ValueError(f"hhh row {k}: expected two choices, the right one first")
        pairs.append(tuple("\n\nHuman: " + r["input"] + "\n\nAssistant: " + c for c in choices))
    return pairs


def paper_hhh_accuracy(model, tok, pairs: list[tuple[str, str]], bs: int = 8) -> dict[str, float]:
    """Correct when the right dialogue's mean token log-likelihood (the whole dialogue,
    ``labels=input_ids``) is strictly higher than the other's."""
    max_length = model_max_length(model)
    seqs = [tok(text)["input_ids"][:max_length] for pair in pairs for text in pair]  # cuts the end
    sums = dialogue_logprob_sums(model, seqs, tok.pad_token_id, bs)
    mean = [ll / (len(ids) - 1) for ll, ids in zip(sums, seqs)]
    correct = sum(mean[2 * k] > mean[2 * k + 1] for k in range(len(pairs)))
    return {"acc": correct / len(pairs), "n": len(pairs), "correct": correct}


HHH_CHUNK = 128  # columns whose full-vocabulary log-probs exist at once (paper HHH scorer)


@torch.inference_mode()
def dialogue_logprob_sums(model, seqs: list[list[int]], pad_id: int, bs: int = 8,
                          chunk: int | None = None) -> list[float]:  # fmt: skip
    """sum_t log p(ids[t] | ids[<t]) over t >= 1 of each sequence, ``bs`` rows per forward.

    Whole dialogues are long: the vocabulary-sized logits of every position of a batch of
    8 need tens of GB. The forward returns hidden states only; the LM head, the
    log-softmax and the gather of the target tokens run ``chunk`` columns at a time, so
    at most ``bs x chunk x vocab`` log-probs exist at once. Same sums as one full
    log-softmax (tested). ``chunk`` defaults to ``HHH_CHUNK``."""
    chunk = chunk or HHH_CHUNK
    device = next(model.parameters()).device
    head = model.get_output_embeddings()
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
    batches = padded_batches([len(seqs[i]) for i in order], None, bs)
    out = [0.0] * len(seqs)
    for batch in tqdm(batches, desc="log-likelihood", disable=None, delay=2, leave=False):
        rows = [seqs[order[j]] for j in batch]
        width = max(map(len, rows))
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        attn = torch.zeros((len(rows), width), dtype=torch.long)
        for r, x in enumerate(rows):  # left padding; position_ids make it invisible
            ids[r, width - len(x) :], attn[r, width - len(x) :] = torch.tensor(x), 1
        fwd = tail_forward_inputs(ids.to(device), attn.to(device), 0)
        fwd.pop("logits_to_keep")
        hidden = model.base_model(**fwd).last_hidden_state
        total = torch.zeros(len(rows), device=device)
        for c in range(0, width - 1, chunk):
            logp = F.log_softmax(head(hidden[:, c : c + chunk]).float(), dim=-1)
            target = fwd["input_ids"][:, c + 1 : c + 1 + chunk]
            picked = logp[:, : target.shape[1]].gather(-1, target[..., None]).squeeze(-1)
            m = fwd["attention_mask"]  # a real token predicted from a real one
            total += (picked * m[:, c : c + target.shape[1]] * m[:, c + 1 : c + 1 + chunk]).sum(-1)
        for r, j in enumerate(batch):
            out[order[j]] = float(total[r])
    return out


def load_paper(root: Path | None, lambada_root: Path | None) -> dict[str, Any]:
    """Every paper task's rows: the hub (``root`` None) or a local hub-layout folder.
    LAMBADA is lm-eval's ``lambada_openai`` (the local eval layout or the hub)."""
    data: dict[str, Any] = {t: load_hub_rows(t, root) for t in ("sentiment", "qnli", "wnli")}
    data["hhh"] = {s: load_hub_rows(f"hhh_{s}", root) for s in PAPER_HHH}
    if lambada_root is not None:
        data["lambada"] = load_lambada(lambada_root)
    else:
        import datasets

        texts = datasets.load_dataset("EleutherAI/lambada_openai", "default", split="test")["text"]
        data["lambada"] = [{"context": t.rsplit(" ", 1)[0], "continuation": " " + t.rsplit(" ", 1)[1]}
                           for t in texts]  # fmt: skip
    return data


def run_paper(model, tok, data: dict[str, Any], quirks: bool = True, bs: int = 16) -> dict:
    """Table 4 as the paper measured it. Keys say what each column is."""
    out: dict[str, Any] = {}
    for task, column in (("sentiment", "twitter_binary"), ("qnli", "qnli"), ("wnli", "wnli")):
        prompts = paper_prompts(task, data[task])[:PAPER_EVAL_SIZE]
        out[column] = paper_logit_accuracy(model, tok, prompts, PAPER_BATCH, quirks)
    lam = lambada(model, tok, data["lambada"], bs)
    out["lambada"] = {"acc": lam["acc"], "n": len(data["lambada"])}
    out["hhh"] = {s: paper_hhh_accuracy(model, tok, paper_hhh_pairs(rows), PAPER_BATCH)
                  for s, rows in data["hhh"].items()}  # fmt: skip
    return out


# ----------------------------------------------------------------------------- lm-eval on demand
def lm_eval_available() -> bool:
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        return False
    return True


def run_lm_eval(
    model, tok, tasks: Sequence[str], limit: int | None = None, bs: int = 16
) -> dict[str, dict[str, float]]:
    """Named lm-evaluation-harness tasks (or task YAML files/folders) through lm-eval's own
    API on a loaded model: ``{task: {metric: value, ..., "n": documents}}``."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    names, include = [], []
    for t in tasks:
        path = Path(t)
        if path.suffix in (".yaml", ".yml") and path.is_file():
            include.append(str(path.parent))
            names.append(_yaml_task_name(path))
        elif path.is_dir():
            include.append(str(path))
            names += [_yaml_task_name(y) for y in sorted(path.glob("*.yaml"))]
        else:
            names.append(t)
    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=bs)
    tm = TaskManager(include_path=include or None)
    res = lm_eval.simple_evaluate(model=lm, tasks=names, task_manager=tm, limit=limit)
    out: dict[str, dict[str, float]] = {}
    for name, metrics in res["results"].items():
        row = {k.split(",")[0]: float(v) for k, v in metrics.items()
               if "," in k and "_stderr" not in k and isinstance(v, (int, float))}  # fmt: skip
        n = res.get("n-samples", {}).get(name, {})
        if n:
            row["n"] = int(n.get("effective", n.get("original", 0)))
        out[name] = row
    return out


def _yaml_task_name(path: Path) -> str:
    import yaml

    try:
        doc = yaml.load(path.read_text(), Loader=yaml.BaseLoader)  # tolerates !function tags
    except yaml.YAMLError:
        doc = None
    if not isinstance(doc, dict) or "task" not in doc:
        raise ValueError(f"lm_eval_tasks: {path} has no 'task:' name")
    return str(doc["task"])


# ----------------------------------------------------------------------------- one model, all
def run_benchmarks(model, tok, bench: dict[str, Any], cfg: EvaluateConfig) -> dict[str, Any]:
    """Every protocol ``evaluate.benchmarks`` asks for on one model. The standard results
    sit at the top (``hhh``, ``lambada``, ...), the paper's under ``paper``, lm-eval's under
    ``lm_eval``; ``smoke`` marks results on our fixture sets (2-12 items: not results)."""
    b = cfg.benchmarks
    out: dict[str, Any] = {"smoke": bench["source"] == "fixture"}
    if bench["standard"] is not None:
        out.update(run_all(model, tok, bench["standard"], dict(b.max_examples), b.tweet_shots,
                           cfg.seed, b.batch_size))  # fmt: skip
    if bench["paper"] is not None:
        out["paper"] = run_paper(model, tok, bench["paper"], b.paper_quirks, b.batch_size)
    if b.lm_eval_tasks:
        check_lm_eval(cfg)
        out["lm_eval"] = run_lm_eval(model, tok, b.lm_eval_tasks, b.lm_eval_limit, b.batch_size)
    return out


def check_lm_eval(cfg: EvaluateConfig) -> None:
    """``lm_eval_tasks`` without lm-eval installed is an error, raised before any work (a
    skipped task would leave a cached, incomplete output)."""
    b = cfg.benchmarks
    if b.enabled and b.lm_eval_tasks and not lm_eval_available():
        raise BadInputError(
            f"evaluate.benchmarks.lm_eval_tasks {b.lm_eval_tasks} needs lm-eval, which is not "
            "installed: pip install -e '.[eval]', or set lm_eval_tasks: []"
        )


# ----------------------------------------------------------------------------- Table 4 columns
# (header, protocol and task, key path of the value, key path of n) per column.
STANDARD_COLUMNS = [
    ("Twitter", "tweet_eval sentiment, 3-way", ("tweets",), ("n", "tweets")),
    ("SQuAD F1", "SQuAD v1.1 dev, greedy", ("squad", "f1"), ("n", "squad")),
    ("Lambada", "lambada_openai acc", ("lambada", "acc"), ("n", "lambada")),
    ("Winograd", "WSC273 partial scoring", ("wsc",), ("n", "wsc")),
    *[(s.capitalize(), f"HHH {s}, summed ll", ("hhh", s), ("n", "hhh", s))
      for s in ("helpful", "honest", "harmless")],
]  # fmt: skip
PAPER_COLUMNS = [
    ("Twitter", "binary tweets 3-shot, '1'/'0' logits", ("paper", "twitter_binary", "acc"),
     ("paper", "twitter_binary", "n")),
    ("SQuAD", "GLUE QNLI 3-shot", ("paper", "qnli", "acc"), ("paper", "qnli", "n")),
    ("Lambada", "lambada_openai acc", ("paper", "lambada", "acc"), ("paper", "lambada", "n")),
    ("Winograd", "GLUE WNLI 3-shot", ("paper", "wnli", "acc"), ("paper", "wnli", "n")),
    *[(s.capitalize(), f"HHH {s}, dialogue mean ll", ("paper", "hhh", s, "acc"),
       ("paper", "hhh", s, "n")) for s in PAPER_HHH],
]  # fmt: skip


def get_path(d: Any, keys: Sequence[str]) -> Any:
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d


def table_columns(benches: Sequence[dict]) -> list[tuple[str, tuple[str, ...]]]:
    """(header, key path) of every benchmark column that some model has. The header names
    the protocol, the task and n; fixture results are marked as a smoke run."""
    cols = []
    smoke = any(b.get("smoke") for b in benches)
    for protocol, spec in (("standard", STANDARD_COLUMNS), ("paper", PAPER_COLUMNS)):
        for head, task, keys, nkeys in spec:
            ns = {get_path(b, nkeys) for b in benches if get_path(b, keys) is not None}
            if not ns:
                continue
            n = "/".join(str(x) for x in sorted(ns, key=str))
            tag = f"{protocol}, smoke" if smoke and protocol == "standard" else protocol
            cols.append((f"{head} ({tag}: {task}, n={n})", keys))
    lm_tasks = sorted({(t, m) for b in benches for t, r in b.get("lm_eval", {}).items()
                       for m in r if m != "n"})  # fmt: skip
    for t, m in lm_tasks:
        ns = {get_path(b, ("lm_eval", t, "n")) for b in benches} - {None}
        n = "/".join(str(x) for x in sorted(ns)) or "?"
        cols.append((f"{t} (lm-eval: {m}, n={n})", ("lm_eval", t, m)))
    return cols
