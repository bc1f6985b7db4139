from __future__ import annotations

import pytest
import torch

from superhf.ppo_core import (
    AdaptiveKLController,
    FixedKLController,
    gae,
    masked_mean,
    masked_whiten,
    per_token_rewards,
    policy_loss,
    value_loss,
)


def rand_batch(seed: int, b: int = 4, t: int = 7):
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(b, t)
    for i in range(b):  # left-padded rows: the response occupies the last n positions
        n = int(torch.randint(1, t - 1, (1,), generator=g))
        mask[i, t - n :] = 1
    return g, mask


def rows(mask):
    return [[j for j in range(mask.shape[1]) if mask[i, j]] for i in range(mask.shape[0])]


@pytest.mark.parametrize("seed", range(6))
def test_gae_matches_per_row_loop(seed: int) -> None:
    g, mask = rand_batch(seed)
    values, rewards = torch.randn(*mask.shape, generator=g), torch.randn(*mask.shape, generator=g)
    gamma, lam = 0.9 + 0.1 * (seed % 2), 0.95
    adv, ret = gae(values, rewards, mask, gamma, lam)
    for i, pos in enumerate(rows(mask)):
        last = 0.0
        for k in reversed(range(len(pos))):
            t = pos[k]
            nv = values[i, pos[k + 1]].item() if k + 1 < len(pos) else 0.0
            delta = rewards[i, t].item() + gamma * nv - values[i, t].item()
            last = delta + gamma * lam * last
            assert adv[i, t].item() == pytest.approx(last, abs=1e-5)
            assert ret[i, t].item() == pytest.approx(last + values[i, t].item(), abs=1e-5)
    assert torch.all(adv[mask == 0] == 0)


@pytest.mark.parametrize("seed", range(4))
def test_whitening_matches_plain_statistics(seed: int) -> None:
    g, mask = rand_batch(seed)
    x = torch.randn(*mask.shape, generator=g) * 3 + 1
    vals = x[mask.bool()]
    expect = (vals - vals.mean()) / vals.std(unbiased=True)
    assert masked_whiten(x, mask)[mask.bool()].tolist() == pytest.approx(expect.tolist(), abs=1e-4)
    assert masked_whiten(x, mask, shift_mean=False)[mask.bool()].tolist() == pytest.approx(
        (expect + vals.mean()).tolist(), abs=1e-4
    )
    assert masked_mean(x, mask).item() == pytest.approx(vals.mean().item(), rel=1e-5)


@pytest.mark.parametrize("seed", range(4))
def test_per_token_reward(seed: int) -> None:
    g, mask = rand_batch(seed)
    logp, ref = torch.randn(*mask.shape, generator=g), torch.randn(*mask.shape, generator=g)
    scores = torch.randn(mask.shape[0], generator=g)
    rewards, kl = per_token_rewards(scores, logp, ref, mask, kl_coef=0.3)
    for i, pos in enumerate(rows(mask)):
        for t in range(mask.shape[1]):
            expect = 0.0
            if t in pos:
                expect = -0.3 * (logp[i, t] - ref[i, t]).item() + (
                    scores[i].item() if t == pos[-1] else 0.0
                )
            assert rewards[i, t].item() == pytest.approx(expect, abs=1e-5)


@pytest.mark.parametrize("seed", range(4))
def test_clipped_losses_match_loops(seed: int) -> None:
    g, mask = rand_batch(seed)
    new, old = (
        torch.randn(*mask.shape, generator=g) * 0.3,
        torch.randn(*mask.shape, generator=g) * 0.3,
    )
    adv = torch.randn(*mask.shape, generator=g)
    v_new, v_old, ret = (torch.randn(*mask.shape, generator=g) for _ in range(3))
    loss, clipfrac, approx = policy_loss(new, old, adv, mask, 0.2)
    vloss, vclip = value_loss(v_new, v_old, ret, mask, 0.2)
    terms, clips, kls, vterms, vclips = [], [], [], [], []
    for i, pos in enumerate(rows(mask)):
        for t in pos:
            r = torch.exp(new[i, t] - old[i, t]).item()
            a = adv[i, t].item()
            unclipped, clipped = -a * r, -a * min(max(r, 0.8), 1.2)
            terms.append(max(unclipped, clipped))
            clips.append(float(clipped > unclipped))
            kls.append(0.5 * (new[i, t] - old[i, t]).item() ** 2)
            vc = v_old[i, t].item() + min(max(v_new[i, t].item() - v_old[i, t].item(), -0.2), 0.2)
            e1, e2 = (v_new[i, t].item() - ret[i, t].item()) ** 2, (vc - ret[i, t].item()) ** 2
            vterms.append(0.5 * max(e1, e2))
            vclips.append(float(e2 > e1))
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    assert loss.item() == pytest.approx(mean(terms), abs=1e-5)
    assert clipfrac.item() == pytest.approx(mean(clips), abs=1e-6)
    assert approx.item() == pytest.approx(mean(kls), abs=1e-6)
    assert vloss.item() == pytest.approx(mean(vterms), abs=1e-5)
    assert vclip.item() == pytest.approx(mean(vclips), abs=1e-6)


def test_adaptive_kl_controller() -> None:
    c = AdaptiveKLController(0.2, target=6.0, horizon=10000)
    c.update(current_kl=12.0, n_steps=32)  # error clipped to +0.2
    assert c.value == pytest.approx(0.2 * (1 + 0.2 * 32 / 10000))
    c2 = AdaptiveKLController(0.2, target=6.0, horizon=10000)
    c2.update(current_kl=5.4, n_steps=100)  # error -0.1
    assert c2.value == pytest.approx(0.2 * (1 - 0.1 * 100 / 10000))
    f = FixedKLController(0.2)
    f.update(100.0, 32)
    assert f.value == 0.2
