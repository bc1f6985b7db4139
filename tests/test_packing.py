"""Packed rows that share a prompt (``packing``, ``rloo.pack_prompts``): the block mask
against a loop, and the log-probs and gradients of the padded forward, on tiny GPT-NeoX and
Llama models with both attention kernels, and through a whole RLOO step."""

from __future__ import annotations

import pytest
import torch
from helpers import PROMPTS, TINY_GEN, make_tiny_models
from transformers import LlamaConfig, LlamaForCausalLM

from superhf import pg_trainer
from superhf.config.group_pg import GRPOConfig, RLOOConfig
from superhf.core import shifted_logprobs, tail_forward_inputs
from superhf.models import load_causal_lm
from superhf.packing import (
    block_causal,
    logit_positions,
    pack_shared_prompts,
    packed_logprobs,
    scatter_logprobs,
)
from superhf.profile import resolve

PAD = 0
# (prompt, response): prompt A three times (one empty response), prompt B once
ROWS = [
    ([5, 6, 7, 8, 9], [11, 12, 13, 14]),
    ([21, 22, 23], [24, 25]),
    ([5, 6, 7, 8, 9], [31, 32, 33]),
    ([5, 6, 7, 8, 9], []),
    ([5, 6, 7, 8, 9], [41]),
]


def padded(rows: list[tuple[list[int], list[int]]]):
    """Left-padded prompt+response rows and the response targets [rows, W-1]."""
    width = max(len(p) + len(r) for p, r in rows)
    ids = torch.full((len(rows), width), PAD)
    attn = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width - 1)
    for i, (p, r) in enumerate(rows):
        n = len(p) + len(r)
        ids[i, width - n :] = torch.tensor(p + r)
        attn[i, width - n :] = 1
        mask[i, width - len(r) - 1 :] = 1 if r else 0
    return ids, attn, mask


def test_block_causal_is_the_loop() -> None:
    block = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 4])
    parent = torch.tensor([0, 0, 0, 0, 0, 0, 3, 3, 3])
    got = block_causal(block, parent)
    for q in range(9):
        for k in range(9):
            want = k <= q and (block[k] == block[q] or block[k] == parent[q])
            assert bool(got[q, k]) == bool(want), (q, k)


def test_each_distinct_prompt_is_packed_once() -> None:
    ids, attn, mask = padded(ROWS)
    pk = pack_shared_prompts(ids, attn, mask)
    responses = sum(len(r) for _, r in ROWS)
    assert pk.input_ids.shape[1] == 5 + 3 + responses
    assert len(pk.targets) == int(mask.sum()) == responses
    assert pk.targets.tolist() == [t for _, r in ROWS for t in r]
    # a response's first token is predicted from its prompt's last token, at its row's place
    # prompt A, row 0's response, prompt B, row 1's response, rows 2 and 4's (3 is empty)
    assert pk.position_ids[0].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 2, 3, 4, 5, 6, 7, 5]
    assert pk.block.tolist() == [0] * 5 + [1] * 4 + [2] * 3 + [3] * 2 + [4] * 3 + [5]
    assert pk.parent.tolist() == [0] * 9 + [2] * 5 + [0] * 4
    first_of_row0 = int(pk.predict_at[0])
    assert pk.input_ids[0, first_of_row0] == 9


def test_each_logit_position_is_kept_once() -> None:
    """Rows 0, 2 and 4 share prompt A: their first tokens are all predicted at its last
    token. The forward keeps that position once (a repeated one sums its gradients in an
    order the CPU threads choose) and each scored token finds its own."""
    pk = pack_shared_prompts(*padded(ROWS))
    positions, at = logit_positions(pk)
    assert len(pk.predict_at.unique()) < len(pk.predict_at)  # the repeats this is about
    assert positions.tolist() == sorted(set(pk.predict_at.tolist()))
    assert positions[at].tolist() == pk.predict_at.tolist()


def test_packed_logprobs_are_the_loop() -> None:
    """Values and gradients against a plain loop, with repeated rows and repeated
    (row, token) pairs."""
    torch.manual_seed(0)
    logits = torch.randn(4, 11, dtype=torch.float64).requires_grad_()
    at = torch.tensor([0, 2, 2, 1, 2, 3, 0])
    targets = torch.tensor([5, 1, 1, 0, 9, 10, 5])
    weights = torch.linspace(-1, 2, len(at))
    got = packed_logprobs(logits, at, targets)
    (g_got,) = torch.autograd.grad((got * weights).sum(), logits)
    want = torch.stack(
        [torch.log_softmax(logits[a].float(), -1)[t] for a, t in zip(at.tolist(), targets.tolist())]
    )
    (g_want,) = torch.autograd.grad((want * weights).sum(), logits)
    assert got.dtype == torch.float32
    # picked by index_select: its CPU backward sums repeats in order, where advanced indexing
    # (log_softmax(logits)[at, targets]) would add them from threads in any order
    assert got.grad_fn.name() == "IndexSelectBackward0"
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(g_got, g_want)


def test_a_row_it_cannot_pack_is_refused() -> None:
    ids, attn, mask = padded(ROWS[:2])
    attn[1] = 0  # an all-padding row
    with pytest.raises(ValueError, match="row 1: no prompt tokens"):
        pack_shared_prompts(ids, attn, mask)
    ids, attn, mask = padded(ROWS[:2])
    mask[1, -4] = 1  # a target inside the prompt
    with pytest.raises(ValueError, match="row 1: a response token before the end of its prompt"):
        pack_shared_prompts(ids, attn, mask)


def _llama(impl: str) -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
        pad_token_id=PAD,
    )  # fmt: skip
    cfg._attn_implementation = impl
    return LlamaForCausalLM(cfg)


def _neox(tmp_path_factory, impl: str):
    policy, _ = make_tiny_models(tmp_path_factory.mktemp("tiny"))
    model = load_causal_lm(policy)
    model.config._attn_implementation = impl
    return model


@pytest.mark.parametrize("arch", ["llama", "neox"])
@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_packed_logprobs_and_gradients_equal_the_padded_forward(
    arch: str, impl: str, tmp_path_factory
) -> None:
    model = _llama(impl) if arch == "llama" else _neox(tmp_path_factory, impl)
    ids, attn, mask = padded(ROWS)
    weights = torch.linspace(-1, 2, mask.numel()).view_as(mask)

    def grads(loss: torch.Tensor) -> list[torch.Tensor]:
        model.zero_grad()
        loss.backward()
        return [p.grad.clone() for p in model.parameters() if p.grad is not None]

    logits = model(**tail_forward_inputs(ids, attn, ids.shape[1])).logits
    plain = shifted_logprobs(logits, ids) * mask
    plain_grads = grads((plain * weights).sum())

    pk = pack_shared_prompts(ids, attn, mask)
    positions, at = logit_positions(pk)
    dtype = None if impl == "sdpa" else torch.float32
    out = model(
        input_ids=pk.input_ids,
        position_ids=pk.position_ids,
        attention_mask=pk.attention_mask(dtype),
        logits_to_keep=positions,
    ).logits
    logp = packed_logprobs(out[0], at, pk.targets)
    packed = scatter_logprobs(pk, logp, tuple(mask.shape))
    packed_grads = grads((packed * weights).sum())

    torch.testing.assert_close(packed, plain.detach(), atol=1e-5, rtol=1e-5)
    assert len(packed_grads) == len(plain_grads)
    for a, b in zip(packed_grads, plain_grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("section", [RLOOConfig, GRPOConfig])
def test_a_packed_step_has_the_gradients_of_a_padded_one(section, tmp_path, monkeypatch) -> None:
    """Through the trainer: the first optimiser step's gradients and the step's logged loss
    and KL (the weights after AdamW are no test: it turns a rounding-sized gradient into an
    lr-sized step)."""
    policy, reward = make_tiny_models(tmp_path / "tiny")
    shared = {"num_prompts": 2, "superbatch_size": 4, "prompt_accumulation": 2, "seed": 3,
              "minibatch_size": 4, "generation": TINY_GEN,
              "optim": {"lr": 1e-2, "warmup_steps": 0}}  # fmt: skip
    grads: dict[bool, list[torch.Tensor]] = {}
    step = torch.optim.AdamW.step

    def spy(self, *args, **kwargs):
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        grads.setdefault(pack, [p.grad.clone() for p in params])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", spy)
    kept: list[torch.Tensor] = []  # the packed forwards' logits_to_keep
    net = type(load_causal_lm(policy))
    forward = net.forward

    def keeps(self, *args, **kwargs):
        if torch.is_tensor(kwargs.get("logits_to_keep")):
            kept.append(kwargs["logits_to_keep"])
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(net, "forward", keeps)
    rows = {}
    for pack in (False, True):
        cfg = section.model_validate({**shared, "pack_prompts": pack})
        _, _, history, *_ = pg_trainer.train(cfg, policy, reward, PROMPTS, tmp_path / f"ck{pack}")
        rows[pack] = history[0]
    assert len(grads[True]) == len(grads[False]) > 0
    assert any(g.abs().sum() > 0 for g in grads[False])
    for a, b in zip(grads[True], grads[False]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    for key in ("loss", "kl", "kl_k3", "reward_mean"):
        assert rows[True][key] == pytest.approx(rows[False][key], rel=1e-5, abs=1e-6), key
    # S = 4 rows share each prompt, yet every kept position is kept once
    assert kept and all(len(k.unique()) == len(k) for k in kept)


@pytest.mark.parametrize("profile", ["tiny", "default", "paper", "paper-run", "harmless", "hh"])
def test_hh_alone_packs(profile: str) -> None:
    """hh's RLOO and GRPO pack (S = 16: the prompt is most of a row's tokens); every other
    profile keeps the padded rows its committed numbers were computed with."""
    params = resolve(profile)
    for section in ("rloo", "grpo"):
        assert params[section].get("pack_prompts", False) is (profile == "hh"), section
