"""FairDRO's aggregation against hand computations (docs/methods.md §6, "FairDRO loss")."""

from __future__ import annotations

import math

import pytest
import torch

from medfairx.errors import ConfigError
from medfairx.methods.losses import group_mean_losses
from medfairx_fairdro.losses import (
    discrete_cvar,
    fairdro_aggregate,
    tilted_risk,
    within_group_risks,
)


def test_cvar_fractional_weight_by_hand() -> None:
    """n = 5, α = 0.5: α·n = 2.5 → top 2 full weight, the third 0.5, divided by 2.5."""
    losses = torch.tensor([1.0, 5.0, 3.0, 2.0, 4.0])
    expected = (5.0 + 4.0 + 0.5 * 3.0) / 2.5  # = 4.2
    assert discrete_cvar(losses, 0.5).item() == pytest.approx(expected)
    assert expected == pytest.approx(4.2)


def test_cvar_integer_mass_and_limits() -> None:
    losses = torch.tensor([0.1, 0.9, 0.4, 0.7, 0.3, 0.2, 0.8, 0.6])
    # α·n = 0.25·8 = 2: mean of the two largest.
    assert discrete_cvar(losses, 0.25).item() == pytest.approx((0.9 + 0.8) / 2)
    # α = 1: the mean.
    assert discrete_cvar(losses, 1.0).item() == pytest.approx(losses.mean().item())
    # α·n < 1: the maximum.
    assert discrete_cvar(losses, 0.1).item() == pytest.approx(0.9)
    assert discrete_cvar(torch.tensor([2.0]), 0.25).item() == pytest.approx(2.0)


def test_cvar_gradient_goes_to_the_tail_only() -> None:
    losses = torch.tensor([1.0, 5.0, 3.0, 2.0, 4.0], requires_grad=True)
    discrete_cvar(losses, 0.5).backward()
    assert losses.grad is not None
    assert torch.allclose(losses.grad, torch.tensor([0.0, 1.0, 0.5, 0.0, 1.0]) / 2.5)


def test_tilted_risk_matches_formula() -> None:
    losses = torch.tensor([0.2, 1.5, 0.7, 3.0])
    for t in (1.0, 0.5, 2.0):
        expected = math.log(sum(math.exp(t * v) for v in losses.tolist()) / 4) / t
        assert tilted_risk(losses, t).item() == pytest.approx(expected, rel=1e-6)
    big = torch.tensor([1000.0, 999.0])  # log-sum-exp: no overflow
    assert math.isfinite(tilted_risk(big, 1.0).item())


def test_within_group_risks_by_hand() -> None:
    losses = torch.tensor([1.0, 2.0, 3.0, 4.0, 10.0, 0.0, 7.0])
    groups = torch.tensor([0, 0, 0, 0, 1, 1, -1])
    risks, present = within_group_risks(losses, groups, 3, alpha=0.5, omega=0.5)
    # group 0: mean 2.5, CVaR_0.5 (α·n = 2) = 3.5 → 3.0; group 1: mean 5, α·n = 1 → max 10 → 7.5.
    assert torch.allclose(risks, torch.tensor([3.0, 7.5, 0.0]))
    assert present.tolist() == [True, True, False]


def test_alpha_one_omega_one_is_the_group_mean_loss() -> None:
    gen = torch.Generator().manual_seed(0)
    losses = torch.rand(20, generator=gen)
    groups = torch.tensor([0] * 12 + [1] * 5 + [2] * 3)
    res = fairdro_aggregate(losses, groups, 4, alpha=1.0, omega=1.0)
    means, counts = group_mean_losses(losses, groups, 4)
    expected = means[counts > 0].mean()
    assert res.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    # and ω = 0 gives the same, whatever α
    assert fairdro_aggregate(losses, groups, 4, alpha=0.25, omega=0.0).loss.item() == pytest.approx(expected.item())


def test_default_equal_weights_over_present_groups() -> None:
    losses = torch.tensor([1.0, 2.0, 3.0, 4.0, 10.0, 0.0])
    groups = torch.tensor([0, 0, 0, 0, 2, 2])
    res = fairdro_aggregate(losses, groups, 3)  # α = 0.25, ω = 1
    # group 0: α·n = 1 → max 4; group 2: α·n = 0.5 → max 10; group 1 absent.
    assert res.loss.item() == pytest.approx((4.0 + 10.0) / 2)
    assert res.q is None


def test_across_groupdro_uses_q_by_hand() -> None:
    losses = torch.tensor([1.0, 3.0, 2.0, 6.0], requires_grad=True)
    groups = torch.tensor([0, 0, 1, 1])
    q = torch.tensor([0.25, 0.25, 0.5])
    eta = 0.5
    res = fairdro_aggregate(losses, groups, 3, alpha=1.0, omega=1.0, across="groupdro", q=q, eta=eta)
    r = torch.tensor([2.0, 4.0, 0.0])  # group means (α = 1); group 2 absent
    unnorm = q * torch.exp(eta * r)
    q_new = unnorm / unnorm.sum()
    assert res.q is not None
    assert torch.allclose(res.q, q_new)
    assert res.loss.item() == pytest.approx(float((q_new * r).sum()))
    assert torch.equal(q, torch.tensor([0.25, 0.25, 0.5]))  # not modified in place
    res.loss.backward()  # q is a constant for autograd
    assert losses.grad is not None
    assert torch.allclose(losses.grad, torch.tensor([q_new[0] / 2, q_new[0] / 2, q_new[1] / 2, q_new[1] / 2]))


def test_tail_kl_matches_tilted_loss() -> None:
    losses = torch.tensor([0.3, 0.9, 2.0, 0.1, 1.2])
    groups = torch.tensor([0, 0, 0, 1, 1])
    res = fairdro_aggregate(losses, groups, 2, tail="kl", t=1.0)
    r0 = math.log((math.exp(0.3) + math.exp(0.9) + math.exp(2.0)) / 3)
    r1 = math.log((math.exp(0.1) + math.exp(1.2)) / 2)
    assert torch.allclose(res.risks, torch.tensor([r0, r1]))
    assert res.loss.item() == pytest.approx((r0 + r1) / 2)


def test_ungrouped_samples_are_ignored_and_empty_batch_is_zero() -> None:
    losses = torch.tensor([1.0, 2.0, 100.0], requires_grad=True)
    res = fairdro_aggregate(losses, torch.tensor([0, 0, -1]), 2, alpha=1.0)
    assert res.loss.item() == pytest.approx(1.5)
    none = fairdro_aggregate(losses, torch.tensor([-1, -1, -1]), 2)
    assert none.loss.item() == 0.0
    none.loss.backward()  # still part of the graph


@pytest.mark.parametrize(
    "kw",
    [{"alpha": 0.0}, {"alpha": 1.5}, {"omega": -0.1}, {"tail": "cv"}, {"t": 0.0}, {"across": "max"}, {"eta": -1.0}],
)
def test_invalid_options_raise(kw: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        fairdro_aggregate(torch.ones(2), torch.zeros(2, dtype=torch.long), 1, **kw)  # type: ignore[arg-type]


def test_groupdro_needs_q() -> None:
    with pytest.raises(ConfigError, match="needs the current weights"):
        fairdro_aggregate(torch.ones(2), torch.zeros(2, dtype=torch.long), 1, across="groupdro")
