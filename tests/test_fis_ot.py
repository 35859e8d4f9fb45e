"""Sinkhorn divergence (POT cross-check, closed forms) and FIS weights by hand (docs/methods.md §2.1)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medfairx.errors import ConfigError
from medfairx.methods.fis import (
    FairIdentityScaler,
    fis_loss,
    fis_weights,
    group_distances_batch,
    group_distances_fairvision,
    group_weights,
)
from medfairx.methods.ot import entropic_ot_sinkhorn, sinkhorn_divergence


def _pot_entropic_ot(x: np.ndarray, y: np.ndarray, eps: float) -> float:
    """Independent reference: POT's Sinkhorn plan on the explicit cost matrix, value
    <P, C> + eps * KL(P || a b^T) recomputed here from the plan. Inputs stay within a
    loss-like range of width < 1 so that POT converges quickly at eps = 0.01."""
    ot = pytest.importorskip("ot")
    cost = 0.5 * (x[:, None] - y[None, :]) ** 2
    a, b = np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y))
    plan = ot.sinkhorn(a, b, cost, eps, numItermax=100000, stopThr=1e-12)
    ab = a[:, None] * b[None, :]
    mask = plan > 0
    return float((plan * cost).sum() + eps * (plan[mask] * np.log(plan[mask] / ab[mask])).sum())


def test_entropic_ot_matches_pot() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.random(8) * 0.6, rng.random(11) * 0.6 + 0.1
    for eps in (0.05, 0.01):
        ours = entropic_ot_sinkhorn(torch.tensor(x), torch.tensor(y), eps)
        assert ours == pytest.approx(_pot_entropic_ot(x, y, eps), abs=1e-7)
    # symmetric (self) problem goes through the averaged fixed point
    assert entropic_ot_sinkhorn(torch.tensor(y), torch.tensor(y), 0.01) == pytest.approx(
        _pot_entropic_ot(y, y, 0.01), abs=1e-7
    )


def test_divergence_three_terms_against_pot() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(1.0, 0.1, 8), rng.normal(0.8, 0.15, 10)
    eps = 0.1**2
    expected = _pot_entropic_ot(x, y, eps) - 0.5 * _pot_entropic_ot(x, x, eps) - 0.5 * _pot_entropic_ot(y, y, eps)
    assert sinkhorn_divergence(x, y, blur=0.1) == pytest.approx(expected, abs=1e-7)
    assert sinkhorn_divergence(x, y, blur=0.1, backend="pot") == pytest.approx(expected, abs=1e-6)
    assert expected > 0


@pytest.mark.filterwarnings("ignore:Sinkhorn did not converge")
def test_divergence_closed_forms() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(0.8, 0.4, 12)
    # identical samples: exactly zero (debiasing)
    assert sinkhorn_divergence(x, x) == pytest.approx(0.0, abs=1e-12)
    # translation by delta: S_eps(a, a + delta) = delta^2 / 2 for the |x-y|^2/2 cost, any eps
    for delta in (0.1, 0.7):
        assert sinkhorn_divergence(x, x + delta) == pytest.approx(delta**2 / 2, abs=2e-6)
        assert sinkhorn_divergence(x, x + delta, backend="wasserstein_1d") == pytest.approx(delta**2 / 2, abs=1e-12)
    # symmetry and positivity
    y = rng.normal(0.2, 0.1, 9)
    assert sinkhorn_divergence(x, y) == pytest.approx(sinkhorn_divergence(y, x), abs=1e-7)
    assert sinkhorn_divergence(x, y) > 0


def test_divergence_rejects_bad_input() -> None:
    with pytest.raises(ConfigError):
        sinkhorn_divergence([], [1.0])
    with pytest.raises(ConfigError):
        sinkhorn_divergence([1.0, float("nan")], [1.0])
    with pytest.raises(ConfigError):
        sinkhorn_divergence([1.0], [2.0], backend="geomloss")


def _softmax(v: list[float]) -> list[float]:
    e = [math.exp(t) for t in v]
    return [t / sum(e) for t in e]


LOSSES = [0.2, 1.0, 0.5, 1.5]


def test_fairvision_weights_by_hand() -> None:
    losses = torch.tensor(LOSSES)
    groups = torch.tensor([0, 0, 1, 1])
    dist = {0: 0.1, 1: 0.3}
    s_i = _softmax(LOSSES)
    s_g = _softmax([0.1, 0.1, 0.3, 0.3])  # softmax over the batch's samples of o_{a_i}
    expected = [0.5 * a + 0.5 * b for a, b in zip(s_i, s_g, strict=False)]
    w = fis_weights(losses, groups, dist, c=0.5, variant="fairvision")
    torch.testing.assert_close(w, torch.tensor(expected))
    loss = fis_loss(losses, w)
    assert float(loss) == pytest.approx(sum(a * b for a, b in zip(expected, LOSSES, strict=False)) / 4)
    assert float(fis_loss(losses, w, rescale=True)) == pytest.approx(sum(a * b for a, b in zip(expected, LOSSES, strict=False)))
    # temperature and right asymptote: softmax(v / T) * R in both terms
    w2 = fis_weights(losses, groups, dist, c=0.25, variant="fairvision", temperature=2.0, right_asymptote=3.0)
    s_i2 = [3 * t for t in _softmax([v / 2 for v in LOSSES])]
    s_g2 = [3 * t for t in _softmax([0.05, 0.05, 0.15, 0.15])]
    torch.testing.assert_close(w2, torch.tensor([0.75 * a + 0.25 * b for a, b in zip(s_i2, s_g2, strict=False)]))


def test_fairdi_weights_by_hand() -> None:
    losses = torch.tensor(LOSSES)
    groups = torch.tensor([0, 0, 0, 1])
    dist = {0: 0.1, 1: 0.3, 2: 5.0}  # group 2 is absent from the batch: not in the softmax
    s_i = _softmax(LOSSES)
    per_group = _softmax([0.1, 0.3])  # softmax over the groups present
    s_g = [per_group[0]] * 3 + [per_group[1]]
    w = fis_weights(losses, groups, dist, c=0.5, variant="fairdi")
    torch.testing.assert_close(w, torch.tensor([0.5 * a + 0.5 * b for a, b in zip(s_i, s_g, strict=False)]))
    # one group present: its group weight is 1 for every sample
    torch.testing.assert_close(
        group_weights(torch.zeros(4, dtype=torch.long), dist, variant="fairdi"), torch.ones(4)
    )
    # c = 0 is the individual softmax alone (FairDi teachers)
    torch.testing.assert_close(fis_weights(losses, groups, {}, c=0.0, variant="fairdi"), torch.tensor(s_i))


def test_group_distances_definitions() -> None:
    losses = torch.tensor([0.2, 1.0, 0.5, 1.5, 0.9])
    groups = torch.tensor([0, 0, 1, 1, 1])
    d = group_distances_batch(losses, groups)
    assert d[0] == pytest.approx(sinkhorn_divergence(losses, losses[:2]), abs=1e-9)
    assert d[1] == pytest.approx(sinkhorn_divergence(losses, losses[2:]), abs=1e-9)
    extra = {0: torch.tensor([0.1, 0.3, 0.2]), 1: torch.tensor([1.1, 0.9, 1.4])}
    dv = group_distances_fairvision(extra)
    pool = torch.cat([extra[0], extra[1]])
    for g in (0, 1):
        assert dv[g] == pytest.approx(sinkhorn_divergence(extra[g], pool), abs=1e-9)


def test_outside_samples_and_missing_distance() -> None:
    g = torch.tensor([0, -1, 1, 1])
    w = group_weights(g, {0: 0.0, 1: 0.0}, variant="fairvision")
    torch.testing.assert_close(w, torch.tensor([1 / 3, 0.0, 1 / 3, 1 / 3]))
    with pytest.raises(ConfigError):
        group_weights(g, {0: 0.0}, variant="fairvision")


def test_gradient_flows_through_individual_weights_unless_detached() -> None:
    groups = torch.tensor([0, 0, 1, 1])
    dist = {0: 0.1, 1: 0.3}
    grads = {}
    for detach in (False, True):
        losses = torch.tensor(LOSSES, requires_grad=True)
        scaler = FairIdentityScaler(c=0.5, detach_weights=detach)
        scaler(losses, groups, {0: torch.zeros(2), 1: torch.ones(2)})
        w = scaler.weights(losses, groups, distances=dist)
        fis_loss(losses, w).backward()
        grads[detach] = losses.grad.clone()
    w = fis_weights(torch.tensor(LOSSES), groups, dist).detach()
    torch.testing.assert_close(grads[True], w / 4)  # constant weights: dL/dl_i = w_i / n
    assert not torch.allclose(grads[False], grads[True])


def test_scaler_validation() -> None:
    with pytest.raises(ConfigError):
        FairIdentityScaler(variant="paper")
    with pytest.raises(ConfigError):
        FairIdentityScaler(ot_backend="geomloss")
    with pytest.raises(ConfigError):
        FairIdentityScaler()(torch.tensor(LOSSES), torch.tensor([0, 0, 1, 1]))  # fairvision needs group losses
