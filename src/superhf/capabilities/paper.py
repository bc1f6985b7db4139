"""The paper's protocol: what its script measured for Table 4 (its data, prompts, batch
quirks and denominators), reproduced so that our numbers compare with the paper's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from superhf.capabilities.columns import PAPER_HHH
from superhf.capabilities.loaders import lambada_row, load_lambada
from superhf.capabilities.scoring import dialogue_logprob_sums, model_max_length
from superhf.capabilities.tasks import lambada
from superhf.core import tail_forward_inputs

# What ``tests/evaluate_lm.py`` at the paper-era commit 6035753 ran for Table 4 (see
# ../shared/REFERENCE.md, "Evaluation"): three columns are not the tasks their names say.
PAPER_BATCH = 8  # the script's batch size: its accuracy denominators are multiples of it
PAPER_EVAL_SIZE = 1000  # the script scored the first 1000 rows after the shots
PAPER_SHOTS = 3
# task -> (hub repo, config name, data_dir, revision, split). GLUE loads by config from
# nyu-mll/glue; the other two repos' main branches are loading scripts (datasets 5 runs
# none), so they load from the hub's parquet conversion, one folder per config.
PAPER_HUB: dict[str, tuple[str, str | None, str | None, str | None, str]] = {
    "sentiment": (
        "carblacac/twitter-sentiment-analysis",
        None,
        "None",
        "refs/convert/parquet",
        "validation",
    ),
    "qnli": ("nyu-mll/glue", "qnli", None, None, "validation"),
    "wnli": ("nyu-mll/glue", "wnli", None, None, "validation"),
    **{
        f"hhh_{s}": ("HuggingFaceH4/hhh_alignment", None, s, "refs/convert/parquet", "test")
        for s in PAPER_HHH
    },
}


def load_hub_rows(task: str, root: Path | None = None) -> list[dict]:
    """Rows of one paper task from the hub, or from ``root/<owner>/<name>`` laid out like
    the hub repo (the revision's tree, e.g. the parquet conversion) when ``root`` is set."""
    import datasets

    repo, name, data_dir, revision, split = PAPER_HUB[task]
    where = str(root / repo) if root is not None else repo
    if root is not None and not Path(where).is_dir():
        raise FileNotFoundError(f"paper benchmark {task}: {where} is not a directory")
    ds = datasets.load_dataset(
        where, name, data_dir=data_dir, split=split, revision=None if root is not None else revision
    )
    return [dict(r) for r in ds]


# task -> (instruction, fields shown per row, label field). A shot is every field line then
# "Output: <label>"; the query ends "Output: " (with the space) for the next-token logits.
PAPER_PROMPTS: dict[str, tuple[str, tuple[tuple[str, str], ...], str]] = {
    "sentiment": (
        "Output 1 if Text displays positive sentiment, else Output 0 for negative sentiment.\n",
        (("Text", "text"),),
        "feeling",
    ),
    "qnli": (
        "Output 0 if Sentence answers Question, otherwise Output 1.\n",
        (("Question", "question"), ("Sentence", "sentence")),
        "label",
    ),
    "wnli": (
        "Output 1 if Sentence1 implies Sentence2, otherwise Output 0.\n",
        (("Sentence1", "sentence1"), ("Sentence2", "sentence2")),
        "label",
    ),
}


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
    return {
        "acc": correct / denominator if data else float("nan"),
        "n": len(data),
        "correct": correct,
        "denominator": denominator,
    }


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
    # truncation=True cuts the end
    seqs = [tok(text)["input_ids"][:max_length] for pair in pairs for text in pair]
    sums = dialogue_logprob_sums(model, seqs, tok.pad_token_id, bs)
    mean = [ll / (len(ids) - 1) for ll, ids in zip(sums, seqs)]
    correct = sum(mean[2 * k] > mean[2 * k + 1] for k in range(len(pairs)))
    return {"acc": correct / len(pairs), "n": len(pairs), "correct": correct}


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
        data["lambada"] = [lambada_row(t) for t in texts]
    return data


def run_paper(model, tok, data: dict[str, Any], quirks: bool = True, bs: int = 16) -> dict:
    """Table 4 as the paper measured it. Keys say what each column is."""
    out: dict[str, Any] = {}
    for task, column in (("sentiment", "twitter_binary"), ("qnli", "qnli"), ("wnli", "wnli")):
        prompts = paper_prompts(task, data[task])[:PAPER_EVAL_SIZE]
        out[column] = paper_logit_accuracy(model, tok, prompts, PAPER_BATCH, quirks)
    lam = lambada(model, tok, data["lambada"], bs)
    out["lambada"] = {"acc": lam["acc"], "n": len(data["lambada"])}
    out["hhh"] = {
        s: paper_hhh_accuracy(model, tok, paper_hhh_pairs(rows), PAPER_BATCH)
        for s, rows in data["hhh"].items()
    }
    return out
