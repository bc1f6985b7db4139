"""Benchmarks on hand-computed cases: what each protocol scores, and how it decides.

Requests are recorded by standing in for ``loglikelihood`` where ``capabilities.tasks`` looks
it up (the one place every log-likelihood task goes through), so the expected contexts and
continuations are written out by hand here; a real tiny model checks the decisions against
per-row hand computation.
"""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from superhf.capabilities import tasks
from superhf.tiny import tiny_causal_lm, tiny_tokenizer


@pytest.fixture(scope="module")
def tiny():
    tok = tiny_tokenizer()
    return tiny_causal_lm(tok, seed=0).eval(), tok


def hand_ll(model, tok, ctx: str, cont: str) -> float:
    c = tok(ctx, add_special_tokens=False)["input_ids"]
    x = tok(cont, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = F.log_softmax(model(torch.tensor([c + x])).logits[0].double(), -1)
    return sum(logp[len(c) + k - 1, t].item() for k, t in enumerate(x))


class Recorder:
    """Stands in for loglikelihood: records requests, scores them from a table."""

    def __init__(self, table: dict[tuple[str, str], float]) -> None:
        self.table, self.requests = table, []

    def __call__(self, model, tok, requests, *a, **k):
        self.requests += list(requests)
        return [(self.table[r], False) for r in requests]


WSC = [
    {"context_options": ["The trophy didn't fit in the suitcase because the trophy",
                         "The trophy didn't fit in the suitcase because the suitcase"],
     "continuation": "was too big.", "gold": 0},
    {"context_options": ["Joan thanked Susan for the help Joan", "Joan thanked Susan for the help Susan"],
     "continuation": "had given.", "gold": 1},
]  # fmt: skip


def test_wsc_partial_scoring_scores_the_shared_continuation_after_each_option(monkeypatch) -> None:
    table = {
        (WSC[0]["context_options"][0], " was too big."): -3.0,  # right
        (WSC[0]["context_options"][1], " was too big."): -5.0,
        (WSC[1]["context_options"][0], " had given."): -1.0,  # wrong: option 0 wins
        (WSC[1]["context_options"][1], " had given."): -2.0,
    }
    rec = Recorder(table)
    monkeypatch.setattr(tasks, "loglikelihood", rec)
    acc = tasks.wsc(None, None, WSC, random.Random(0))
    assert acc == 0.5
    # partial scoring: the continuation alone is scored, never the option's own words
    assert sorted(rec.requests) == sorted(table)


def test_wsc_on_a_real_model_matches_per_row_hand_computation(tiny) -> None:
    model, tok = tiny
    want = 0
    for r in WSC:
        lls = [hand_ll(model, tok, ctx, " " + r["continuation"]) for ctx in r["context_options"]]
        want += max(range(len(lls)), key=lls.__getitem__) == r["gold"]
    assert tasks.wsc(model, tok, WSC, random.Random(0)) == want / len(WSC)


TWEETS = {
    "val": [{"text": "what a lovely day", "label": 2}, {"text": "the bus was late again", "label": 0}],
    "test": [{"text": "ok I guess", "label": 1}],
}  # fmt: skip


def test_tweet_zero_shot_prompt_and_choices(monkeypatch) -> None:
    ctx = "Tweet: ok I guess\nSentiment:"
    table = {(ctx, " negative"): -3.0, (ctx, " neutral"): -1.0, (ctx, " positive"): -2.0}
    rec = Recorder(table)
    monkeypatch.setattr(tasks, "loglikelihood", rec)
    assert tasks.tweets(None, None, TWEETS, 0, random.Random(0)) == 1.0  # neutral wins, label 1
    assert sorted(rec.requests) == sorted(table)


def test_tweet_k_shot_prefix_is_the_shots_with_their_labels(monkeypatch) -> None:
    a = "Tweet: what a lovely day\nSentiment: positive\n\n"
    b = "Tweet: the bus was late again\nSentiment: negative\n\n"
    query = "Tweet: ok I guess\nSentiment:"
    table = {(p + query, lab): s for p in (a + b, b + a)
             for lab, s in ((" negative", -1.0), (" neutral", -2.0), (" positive", -3.0))}  # fmt: skip
    rec = Recorder(table)
    monkeypatch.setattr(tasks, "loglikelihood", rec)
    assert tasks.tweets(None, None, TWEETS, 2, random.Random(0)) == 0.0  # negative wins, label 1
    contexts = {c for c, _ in rec.requests}
    assert len(contexts) == 1 and contexts <= {a + b + query, b + a + query}
    assert sorted(x for _, x in rec.requests) == [" negative", " neutral", " positive"]
    rec.requests.clear()
    one = {"val": TWEETS["val"][:1], "test": TWEETS["test"]}
    table.update({(a + query, lab): -1.0 for lab in (" negative", " neutral", " positive")})
    tasks.tweets(None, None, one, 1, random.Random(0))
    assert {c for c, _ in rec.requests} == {a + query}


def test_tweets_on_a_real_model_match_hand_computation(tiny) -> None:
    model, tok = tiny
    data = {"val": TWEETS["val"], "test": TWEETS["val"] + TWEETS["test"]}
    want = 0
    for r in data["test"]:
        lls = [
            hand_ll(model, tok, f"Tweet: {r['text']}\nSentiment:", lab)
            for lab in tasks.TWEET_LABELS
        ]
        want += max(range(3), key=lls.__getitem__) == r["label"]
    assert tasks.tweets(model, tok, data, 0, random.Random(0)) == pytest.approx(want / 3)


class ScriptedLM(torch.nn.Module):
    """generate() returns the prompt followed by a scripted text per row (greedy stand-in)."""

    def __init__(self, tok, answers: list[str]) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.tok, self.answers, self.calls = tok, list(answers), []

    def generate(self, input_ids, attention_mask=None, **kw):
        self.calls.append(kw)
        rows = [self.tok(self.answers.pop(0), add_special_tokens=False)["input_ids"]
                for _ in range(input_ids.shape[0])]  # fmt: skip
        width = max(map(len, rows))
        pad = self.tok.pad_token_id
        new = torch.tensor([r + [pad] * (width - len(r)) for r in rows], dtype=torch.long)
        return torch.cat([input_ids, new], 1)


SQUAD = [
    {"title": "France", "context": "Paris is the capital of France.",
     "question": "What is the capital of France?", "answers": ["Paris"]},
    {"title": "France", "context": "Paris is the capital of France.",
     "question": "Which city is the capital?", "answers": ["Paris", "the city of Paris"]},
    {"title": "Moon", "context": "The Moon orbits the Earth.",
     "question": "What orbits the Earth?", "answers": ["The Moon"]},
]  # fmt: skip


def test_squad_answer_is_greedy_text_up_to_the_first_newline() -> None:
    tok = tiny_tokenizer()
    # row 1 exact; row 2 runs on past the newline (cut there: then exact for answer 2);
    # row 3 "moon orbits" against "moon": precision 1/2, recall 1, F1 2/3, EM 0
    lm = ScriptedLM(tok, [" Paris", " The city of Paris.\nQuestion: next", " Moon orbits\n"])
    got = tasks.squad(lm, tok, SQUAD, max_new_tokens=16, bs=2)
    assert got["em"] == pytest.approx(2 / 3)
    assert got["f1"] == pytest.approx((1 + 1 + 2 / 3) / 3)
    assert all(c.get("do_sample") is False for c in lm.calls)  # greedy
    assert all("\n" in (c.get("stop_strings") or []) for c in lm.calls)  # stops at the newline


def test_squad_f1_and_em_by_hand() -> None:
    assert tasks.squad_em("The  Moon!", "moon") == 1.0
    assert tasks.squad_f1("moon orbits", "The Moon") == pytest.approx(2 / 3)
    assert tasks.squad_f1("w x y z", "y z u v") == pytest.approx(0.5)  # 2 common of 4 and 4
    assert tasks.squad_f1("a b c d", "c d e f") == pytest.approx(4 / 7)  # "a" is an article: 2 of 3
    assert tasks.squad_f1("nothing", "Paris") == 0.0
