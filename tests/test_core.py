from __future__ import annotations

import math

import pytest
import torch

from superhf.core import (
    IGNORE,
    build_sft_batch,
    completion_nll,
    ema,
    kl_per_example,
    position_ids,
    select_top_k,
    superhf_loss,
    tail_columns,
)
from superhf.generation import distinct_n
from superhf.prompting import dialogue_messages
from superhf.trimming import trim_completion


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (" Sure, here you go.\n\nHuman: thanks", "Sure, here you go."),
        ("Answer. Human: more", "Answer."),
        ("Answer.\nAssistant: again", "Answer."),
        ("First line\n\nBob: hi there", "First line"),
        (
            "No turn here, humans are fine.\n\nA new paragraph.",
            "No turn here, humans are fine.\n\nA new paragraph.",
        ),
        ("   ", ""),
        ("\n\nHuman: straight away", ""),
    ],
)
def test_trim_completion(text: str, expected: str) -> None:
    assert trim_completion(text) == expected


def test_dialogue_messages() -> None:
    msgs = dialogue_messages("\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant:")
    assert msgs == [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]


def test_distinct_n() -> None:
    assert distinct_n(["a b a b"], 1) == pytest.approx(0.5)
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
    assert distinct_n([""], 2) == 0.0


def naive_top_k(rewards, valid, k):
    out = []
    pool = [(r, i) for i, (r, v) in enumerate(zip(rewards, valid)) if v]
    for _ in range(min(k, len(pool))):
        best = None
        for r, i in pool:
            if i in out:
                continue
            if best is None or r > best[0]:
                best = (r, i)
        out.append(best[1])
    return out


@pytest.mark.parametrize("seed", range(20))
def test_select_top_k_matches_naive(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    n = 1 + seed % 9
    rewards = torch.randint(-3, 4, (n,), generator=g).float().tolist()  # ties on purpose
    valid = (torch.rand(n, generator=g) > 0.3).tolist()
    for k in (1, 2, 5):
        assert select_top_k(rewards, valid, k) == naive_top_k(rewards, valid, k)


def test_sft_batch_left_padding_labels() -> None:
    b = build_sft_batch([[5, 6, 7], [8]], [[1, 2], [3, 4, 9]], pad_id=0)
    assert b["input_ids"].tolist() == [[5, 6, 7, 1, 2], [0, 8, 3, 4, 9]]
    assert b["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [0, 1, 1, 1, 1]]
    assert b["labels"].tolist() == [[IGNORE, IGNORE, IGNORE, 1, 2], [IGNORE, IGNORE, 3, 4, 9]]


@pytest.mark.parametrize("seed", range(5))
def test_sft_batch_matches_naive_on_random_rows(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    prompts = [
        torch.randint(1, 50, (int(torch.randint(1, 6, (1,), generator=g)),), generator=g).tolist()
        for _ in range(4)
    ]
    comps = [
        torch.randint(1, 50, (int(torch.randint(1, 6, (1,), generator=g)),), generator=g).tolist()
        for _ in range(4)
    ]
    b = build_sft_batch(prompts, comps, pad_id=0)
    width = b["input_ids"].shape[1]
    for i, (p, c) in enumerate(zip(prompts, comps)):
        pad = width - len(p) - len(c)
        assert b["input_ids"][i].tolist() == [0] * pad + p + c
        assert b["labels"][i].tolist() == [IGNORE] * (pad + len(p)) + c
        # every labelled position is attended, and no prompt token is labelled
        assert all(
            b["attention_mask"][i, j] == 1 for j in range(width) if b["labels"][i, j] != IGNORE
        )


def naive_nll_and_kl(logits, ref_logits, labels):
    nlls, kls = [], []
    for b in range(logits.shape[0]):
        tot_nll = tot_kl = 0.0
        n = 0
        for t in range(1, logits.shape[1]):
            if labels[b, t] == IGNORE:
                continue
            p = torch.softmax(logits[b, t - 1].double(), -1)
            q = torch.softmax(ref_logits[b, t - 1].double(), -1)
            tot_nll += -math.log(p[labels[b, t]].item())
            tot_kl += sum(pi * math.log(pi / qi) for pi, qi in zip(p.tolist(), q.tolist()))
            n += 1
        nlls.append(tot_nll / max(n, 1))
        kls.append(tot_kl / max(n, 1))
    return nlls, kls


def test_nll_and_kl_match_naive_with_left_padding() -> None:
    g = torch.Generator().manual_seed(0)
    batch = build_sft_batch([[3, 4, 5], [7]], [[1, 2], [6, 6, 2]], pad_id=0)
    logits = torch.randn(2, batch["input_ids"].shape[1], 11, generator=g)
    ref = torch.randn(2, batch["input_ids"].shape[1], 11, generator=g)
    nll, kl = naive_nll_and_kl(logits, ref, batch["labels"])
    assert completion_nll(logits, batch["labels"]).tolist() == pytest.approx(nll, rel=1e-4)
    assert kl_per_example(logits, ref, batch["labels"]).tolist() == pytest.approx(kl, rel=1e-4)
    assert kl_per_example(logits, logits, batch["labels"]).abs().max() < 1e-6
    loss, _, _ = superhf_loss(logits, batch["labels"], kl_coef=0.5, ref_logits=ref)
    assert loss.item() == pytest.approx(sum(a + 0.5 * b for a, b in zip(nll, kl)) / 2, rel=1e-4)


def test_ema() -> None:
    assert ema([1.0, 0.0, 0.0], alpha=0.9) == pytest.approx([1.0, 0.9, 0.81])
    nan = float("nan")  # a step with nothing to average keeps the average where it was
    assert ema([nan, 1.0, nan, 0.0], alpha=0.9) == pytest.approx([nan, 1.0, 1.0, 0.9], nan_ok=True)


@pytest.mark.parametrize("seed", range(20))
def test_tail_columns_is_the_smallest_window_that_predicts_every_target(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    targets = torch.rand(3, 9, generator=g) < 0.3
    k = tail_columns(targets)
    width = targets.shape[1]
    predicted_at = [j - 1 for j in range(1, width) if targets[:, j].any()]
    naive = width - min(predicted_at) if predicted_at else 1
    assert k == naive


def test_completion_nll_on_the_tail_equals_the_full_computation() -> None:
    g = torch.Generator().manual_seed(0)
    batch = build_sft_batch([[3, 4, 5, 9, 9], [7]], [[1, 2], [6, 6, 2]], pad_id=0)
    logits = torch.randn(2, batch["input_ids"].shape[1], 11, generator=g)
    k = tail_columns(batch["labels"] != IGNORE)
    assert k == 4  # three completion tokens and the column before them
    full = completion_nll(logits, batch["labels"])
    tail = completion_nll(logits[:, -k:], batch["labels"][:, -k:])
    assert torch.allclose(full, tail)


def test_position_ids_count_real_tokens_only() -> None:
    attn = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert position_ids(attn).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("top_p", [0.5, 0.9, 0.99])
@pytest.mark.parametrize("k", [4, 64])
def test_top_p_from_top_k_keeps_what_transformers_keeps(seed: int, top_p: float, k: int) -> None:
    from transformers import TopPLogitsWarper

    from superhf.decoding import TopPFromTopK

    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(5, 300, generator=g) * (0.5 + seed)  # flat to peaked rows
    scores[0] *= 0.01  # a nearly uniform row: its nucleus is wider than k (the fallback)
    ids = torch.zeros(5, 1, dtype=torch.long)
    want = TopPLogitsWarper(top_p)(ids, scores.clone())
    got = TopPFromTopK(top_p, k=k)(ids, scores.clone())
    assert torch.equal(torch.isinf(got), torch.isinf(want))
    assert torch.equal(got[~torch.isinf(got)], scores[~torch.isinf(got)])


def test_rows_times_weight_head_is_the_same_linear_map() -> None:
    from superhf.decoding import RowsTimesWeightHead, fast_cpu_head
    from superhf.tiny import tiny_causal_lm, tiny_tokenizer

    for bias in (False, True):
        lin = torch.nn.Linear(16, 40, bias=bias)
        x = torch.randn(3, 5, 16)
        assert torch.allclose(RowsTimesWeightHead(lin)(x), lin(x), atol=1e-6)
    model = tiny_causal_lm(tiny_tokenizer())
    head = model.get_output_embeddings()
    with fast_cpu_head(model):
        assert isinstance(model.get_output_embeddings(), RowsTimesWeightHead)
        assert model.get_output_embeddings().head.weight is head.weight
    assert model.get_output_embeddings() is head
