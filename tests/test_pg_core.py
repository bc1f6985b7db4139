"""RLOO and GRPO maths: each function against a per-row loop and against numbers worked out
by hand from the papers' formulas (Ahmadian et al. 2024 eq. 6; DeepSeekMath eq. 3-4)."""

from __future__ import annotations

import math

import pytest
import torch

from superhf.pg_core import (
    aggregate,
    clipped_pg_loss,
    group_normalised_advantages,
    k1_sequence_kl,
    k3_token_kl,
    leave_one_out_advantages,
)


def rand_mask(g: torch.Generator, b: int, t: int) -> torch.Tensor:
    mask = torch.zeros(b, t)
    for i in range(b):  # left-padded rows: the response occupies the last n positions
        n = int(torch.randint(1, t, (1,), generator=g))
        mask[i, t - n :] = 1
    return mask


# ----------------------------------------------------------------------------- advantages
def test_leave_one_out_by_hand() -> None:
    # R = 1, 2, 3, 6: A_0 = 1 - (2 + 3 + 6) / 3 = -8/3; A_3 = 6 - (1 + 2 + 3) / 3 = 4
    adv = leave_one_out_advantages(torch.tensor([[1.0, 2.0, 3.0, 6.0]]))
    assert adv[0].tolist() == pytest.approx([-8 / 3, 2 - 10 / 3, 3 - 3.0, 4.0])


@pytest.mark.parametrize("seed", range(4))
def test_leave_one_out_matches_loop(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(3, 2 + seed, generator=g)
    adv = leave_one_out_advantages(r)
    for p in range(r.shape[0]):
        for i in range(r.shape[1]):
            others = [float(r[p, j]) for j in range(r.shape[1]) if j != i]
            assert float(adv[p, i]) == pytest.approx(
                float(r[p, i]) - sum(others) / len(others), abs=1e-6
            )
    # the identity A_i = S/(S-1) (R_i - mean R)
    s = r.shape[1]
    assert torch.allclose(adv, s / (s - 1) * (r - r.mean(-1, keepdim=True)), atol=1e-6)


def test_leave_one_out_refuses_a_group_of_one() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        leave_one_out_advantages(torch.tensor([[1.0]]))


def test_group_normalised_by_hand() -> None:
    # DeepSeekMath outcome rewards 1, 0, 0, 1: mean 0.5, sample std sqrt(1/3)
    adv = group_normalised_advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0]]), eps=0.0)
    a = 0.5 / math.sqrt(1 / 3)
    assert adv[0].tolist() == pytest.approx([a, -a, -a, a])
    # a group whose rewards are all equal carries no signal: zero advantage, not NaN
    same = group_normalised_advantages(torch.tensor([[2.0, 2.0, 2.0]]))
    assert same.tolist() == [[0.0, 0.0, 0.0]]


@pytest.mark.parametrize("seed", range(4))
def test_group_normalised_matches_loop(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(3, 2 + seed, generator=g)
    eps = 1e-4
    adv = group_normalised_advantages(r, eps=eps)
    centred = group_normalised_advantages(r, scale=False)
    for p in range(r.shape[0]):
        xs = [float(x) for x in r[p]]
        mean = sum(xs) / len(xs)
        std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))
        for i, x in enumerate(xs):
            assert float(adv[p, i]) == pytest.approx((x - mean) / (std + eps), rel=1e-5)
            assert float(centred[p, i]) == pytest.approx(x - mean, abs=1e-6)


# ----------------------------------------------------------------------------- KL estimators
def test_kl_estimators_by_hand() -> None:
    logp = torch.tensor([[-1.0, -2.0, -9.0]])
    ref = torch.tensor([[-1.5, -1.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    # k1 over the response: (-1 + 1.5) + (-2 + 1) = -0.5; the masked token is left out
    assert k1_sequence_kl(logp, ref, mask).tolist() == pytest.approx([-0.5])
    # k3 = exp(d) - d - 1 with d = ref - logp: d = -0.5 and +1
    k3 = k3_token_kl(logp, ref)[0, :2].tolist()
    assert k3 == pytest.approx([math.exp(-0.5) + 0.5 - 1, math.e - 2])


@pytest.mark.parametrize("seed", range(3))
def test_kl_estimators_match_loop(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    mask = rand_mask(g, 4, 6)
    logp, ref = -torch.rand(4, 6, generator=g) * 3, -torch.rand(4, 6, generator=g) * 3
    k1, k3 = k1_sequence_kl(logp, ref, mask), k3_token_kl(logp, ref)
    for i in range(4):
        tot = sum(float(logp[i, t] - ref[i, t]) for t in range(6) if mask[i, t])
        assert float(k1[i]) == pytest.approx(tot, abs=1e-5)
        for t in range(6):
            d = float(ref[i, t] - logp[i, t])
            assert float(k3[i, t]) == pytest.approx(math.exp(d) - d - 1, abs=1e-5)
            assert float(k3[i, t]) >= 0


def test_k3_is_an_unbiased_kl_estimate() -> None:
    # E_{x~p}[k3] = KL(p || q) for two categorical distributions, exactly
    p, q = torch.tensor([0.5, 0.3, 0.2]), torch.tensor([0.2, 0.2, 0.6])
    k3 = k3_token_kl(p.log(), q.log())
    assert float((p * k3).sum()) == pytest.approx(float((p * (p / q).log()).sum()), abs=1e-6)


# ----------------------------------------------------------------------------- the loss
def test_aggregation_by_hand() -> None:
    per_token = torch.tensor([[1.0, 2.0], [3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    assert float(aggregate(per_token, mask, "sequence_mean")) == pytest.approx((1.5 + 3) / 2)
    assert float(aggregate(per_token, mask, "token_mean")) == pytest.approx((1 + 2 + 3) / 3)
    assert float(aggregate(per_token, mask, "sequence_sum")) == pytest.approx((3 + 3) / 2)


def test_clipped_loss_by_hand() -> None:
    # ratio 1.5 on one token; clip 0.2. A = +1: min(1.5, 1.2) = 1.2 (clipped), loss -1.2.
    # A = -1: min(-1.5, -1.2) = -1.5 (not clipped), loss 1.5.
    logp, old = torch.tensor([[math.log(1.5)]]), torch.tensor([[0.0]])
    mask = torch.ones(1, 1)
    for a, want, clipped in ((1.0, -1.2, 1.0), (-1.0, 1.5, 0.0)):
        loss, frac, kl = clipped_pg_loss(logp, old, torch.tensor([a]), mask, 0.2, "sequence_mean")
        assert float(loss) == pytest.approx(want)
        assert float(frac) == clipped
        assert math.isnan(float(kl))
    # no clipping: -ratio * A
    loss, _, _ = clipped_pg_loss(logp, old, torch.tensor([1.0]), mask, None, "sequence_mean")
    assert float(loss) == pytest.approx(-1.5)
    # KL in the loss: + beta * k3; with logp = ref the k3 term is 0
    loss, _, kl = clipped_pg_loss(logp, old, torch.tensor([1.0]), mask, 0.2, "sequence_mean",
                                  kl_coef=0.04, ref_logprobs=torch.tensor([[0.0]]))  # fmt: skip
    d = -math.log(1.5)
    assert float(kl) == pytest.approx(math.exp(d) - d - 1)
    assert float(loss) == pytest.approx(-1.2 + 0.04 * (math.exp(d) - d - 1))


@pytest.mark.parametrize("how", ["sequence_mean", "token_mean", "sequence_sum"])
@pytest.mark.parametrize("clip", [None, 0.2])
def test_clipped_loss_matches_loop(how: str, clip: float | None) -> None:
    g = torch.Generator().manual_seed(7)
    b, t, beta = 5, 6, 0.05
    mask = rand_mask(g, b, t)
    logp = -torch.rand(b, t, generator=g)
    old = logp + 0.4 * torch.randn(b, t, generator=g)
    ref = -torch.rand(b, t, generator=g)
    adv = torch.randn(b, generator=g)
    loss, frac, kl = clipped_pg_loss(logp, old, adv, mask, clip, how, beta, ref)
    per_row, tokens, n_clip, kls = [], [], 0, []
    for i in range(b):
        row = []
        for k in range(t):
            if not mask[i, k]:
                continue
            r = math.exp(float(logp[i, k] - old[i, k]))
            a = float(adv[i])
            term = -a * r
            if clip is not None:
                term2 = -a * min(max(r, 1 - clip), 1 + clip)
                n_clip += term2 > term
                term = max(term, term2)
            d = float(ref[i, k] - logp[i, k])
            kls.append(math.exp(d) - d - 1)
            row.append(term + beta * kls[-1])
        tokens += row
        per_row.append(sum(row) / len(row) if how == "sequence_mean" else sum(row))
    want = sum(tokens) / len(tokens) if how == "token_mean" else sum(per_row) / b
    assert float(loss) == pytest.approx(want, rel=1e-5)
    assert float(frac) == pytest.approx(n_clip / len(tokens))
    assert float(kl) == pytest.approx(sum(kls) / len(kls), rel=1e-5)


def test_reinforce_gradient_at_ratio_one() -> None:
    """One update, no clipping, sequence_sum: the gradient is -A * grad log pi(y|x), RLOO's
    REINFORCE estimator (Ahmadian et al. eq. 6), whatever the old log-probs' values."""
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -0.7]], requires_grad=True)
    adv = torch.tensor([2.0, -1.0])
    loss, _, _ = clipped_pg_loss(logp, logp.detach(), adv, torch.ones(2, 2), None, "sequence_sum")
    loss.backward()
    assert logp.grad.flatten().tolist() == pytest.approx([-1.0, -1.0, 0.5, 0.5])
