from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import SHARED_DATA, needs_shared

from superhf.capabilities import loaders, scoring, tasks
from superhf.paths import fixture_eval_dir
from superhf.tiny import tiny_causal_lm, tiny_tokenizer


@pytest.fixture(scope="module")
def tiny():
    tok = tiny_tokenizer()
    return tiny_causal_lm(tok, seed=0), tok


def hand_loglikelihood(model, tok, ctx: str, cont: str) -> tuple[float, bool]:
    c = tok(ctx, add_special_tokens=False)["input_ids"]
    x = tok(cont, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([c + x])
    with torch.no_grad():
        logp = F.log_softmax(model(ids).logits[0].double(), -1)
    total, greedy = 0.0, True
    for k, tokid in enumerate(x):
        row = logp[len(c) + k - 1]
        total += row[tokid].item()
        greedy &= int(row.argmax()) == tokid
    return total, greedy


def test_loglikelihood_matches_hand_computation(tiny) -> None:
    model, tok = tiny
    reqs = [
        ("The cat sat on the", " mat"),
        ("Hello", " world, how are you?"),
        ("A much longer context about bread and eggs", " ok"),
    ]
    got = scoring.loglikelihood(model, tok, reqs, batch_size=2)
    for (ctx, cont), (ll, greedy) in zip(reqs, got):
        ref_ll, ref_greedy = hand_loglikelihood(model, tok, ctx, cont)
        assert ll == pytest.approx(ref_ll, abs=1e-3)
        assert greedy == ref_greedy


def test_ties_are_broken_at_random_never_first() -> None:
    rng = random.Random(0)
    picks = {tasks.argmax_random_ties([1.0, 1.0, 0.0], rng) for _ in range(50)}
    assert picks == {0, 1}
    assert tasks.argmax_random_ties([0.0, 2.0, 1.0], rng) == 1


def test_hhh_with_identical_choices_is_not_always_right(tiny) -> None:
    """The right answer is listed first; a 'first maximum' rule would score 100% on ties."""
    model, tok = tiny
    ex = [{"input": f"q{i}", "choices": ["same", "same"], "labels": [1, 0]} for i in range(40)]
    acc = tasks.hhh_accuracy(model, tok, ex, random.Random(0))
    assert 0.2 < acc < 0.8


def test_squad_normalisation() -> None:
    assert tasks.normalize_answer("The  Denver Broncos!") == "denver broncos"
    assert tasks.squad_em("the Denver Broncos", "Denver Broncos") == 1.0
    assert tasks.squad_f1("Denver", "Denver Broncos") == pytest.approx(2 / 3)
    assert tasks.squad_f1("nothing", "Denver") == 0.0


def test_fixture_sets_run_end_to_end(tiny) -> None:
    model, tok = tiny
    data = loaders.load_all(fixture_eval_dir())
    out = tasks.run_all(model, tok, data, tasks.StandardRun(shots=2, batch_size=8))
    assert set(out["hhh"]) == set(loaders.HHH_SUBTASKS)
    for v in [
        *out["hhh"].values(),
        out["wsc"],
        out["tweets"],
        out["lambada"]["acc"],
        out["squad"]["f1"],
    ]:
        assert 0.0 <= v <= 1.0
    assert out["lambada"]["ppl"] > 1


@needs_shared
def test_real_benchmark_files_load_and_score(tiny) -> None:
    root = Path(SHARED_DATA / "eval")
    data = loaders.load_all(root)
    assert [len(data["hhh"][s]) for s in ("harmless", "helpful", "honest", "other")] == [
        58,
        59,
        61,
        43,
    ]
    assert all(e["labels"][0] == 1 for sub in data["hhh"].values() for e in sub)
    assert len(data["lambada"]) == 5153
    assert len(data["wsc"]) == 273
    assert len(data["tweets"]["test"]) == 12284 and len(data["tweets"]["val"]) == 2000
    assert len(data["squad"]) == 10565
    model, tok = tiny
    caps = {"hhh": 3, "lambada": 3, "wsc": 3, "tweets": 3, "squad": 2}
    out = tasks.run_all(model, tok, data, tasks.StandardRun(caps, shots=1, batch_size=4))
    assert (
        0 <= out["hhh"]["honest"] <= 1
        and out["lambada"]["ppl"] > 1
        and 0 <= out["squad"]["em"] <= 1
    )
