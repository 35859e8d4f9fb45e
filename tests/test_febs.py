"""FEBS weights and loss vs hand computations (docs/methods.md §2.2), incl. an absent group."""

from __future__ import annotations

import math

import pytest
import torch

from medfairx_baselines.febs_loss import (
    febs_group_errors,
    febs_loss,
    febs_sample_weights,
    febs_weights_from_errors,
)

S = 1e-5


def _dice_sum_over_classes(p: torch.Tensor, t: torch.Tensor) -> float:
    """Σ_c [1 - (2ΣPT + s)/(ΣP² + ΣT² + s)] over all pixels of all given images (plain loops)."""
    total = 0.0
    for c in range(p.shape[1]):
        pc, tc = p[:, c].flatten().tolist(), (t == c).flatten().float().tolist()
        inter = sum(a * b for a, b in zip(pc, tc, strict=False))
        denom = sum(a * a for a in pc) + sum(b * b for b in tc)
        total += 1 - (2 * inter + S) / (denom + S)
    return total


def _batch(n_groups_codes: list[int], seed: int = 0, spatial: tuple[int, ...] = (3, 3)):
    g = torch.Generator().manual_seed(seed)
    n = len(n_groups_codes)
    logits = torch.randn(n, 2, *spatial, generator=g)
    target = (torch.rand(n, *spatial, generator=g) > 0.6).long()
    return logits, target, torch.tensor(n_groups_codes)


def test_group_errors_and_weights_by_hand() -> None:
    logits, target, groups = _batch([0, 1, 0, 1, 1])
    probs = torch.softmax(logits, 1)
    codes, errors = febs_group_errors(probs, target, groups)
    assert codes.tolist() == [0, 1]
    e0 = _dice_sum_over_classes(probs[groups == 0], target[groups == 0])
    e1 = _dice_sum_over_classes(probs[groups == 1], target[groups == 1])
    assert errors.tolist() == pytest.approx([e0, e1], rel=1e-5)
    w, by_group = febs_sample_weights(probs, target, groups)
    m = min(e0, e1)
    expected = {0: math.tanh(m / e0), 1: math.tanh(m / e1)}
    assert by_group == pytest.approx(expected, rel=1e-5)
    assert w.tolist() == pytest.approx([expected[int(k)] for k in groups], rel=1e-5)
    assert max(expected.values()) == pytest.approx(math.tanh(1.0))  # the easiest group gets tanh(1)
    # gamma: tanh((min E / E_g)^gamma)
    w2 = febs_weights_from_errors(torch.tensor([e0, e1]), gamma=2.0)
    assert w2.tolist() == pytest.approx([math.tanh((m / e0) ** 2), math.tanh((m / e1) ** 2)], rel=1e-5)


def test_absent_group_does_not_zero_the_weights() -> None:
    # K = 3 groups in the grouping, group 1 absent from this batch
    logits, target, groups = _batch([0, 2, 0, 2], seed=1)
    probs = torch.softmax(logits, 1)
    w, by_group = febs_sample_weights(probs, target, groups)
    assert sorted(by_group) == [0, 2]
    assert bool((w > 0).all()), "min over present groups only: no tanh(0) collapse"
    assert max(by_group.values()) == pytest.approx(math.tanh(1.0))
    # the official code's min over a zero-filled length-K array would give all-zero weights:
    padded = torch.zeros(3)
    padded[torch.tensor([0, 2])] = febs_group_errors(probs, target, groups)[1]
    assert torch.tanh(padded.min() / padded[torch.tensor([0, 2])]).abs().max() == 0


def test_outside_samples_form_their_own_group() -> None:
    logits, target, groups = _batch([0, -1, 0, -1], seed=2)
    w, by_group = febs_sample_weights(torch.softmax(logits, 1), target, groups)
    assert sorted(by_group) == [-1, 0]
    assert w[1] == w[3] == pytest.approx(by_group[-1])


@pytest.mark.parametrize("spatial", [(3, 3), (2, 3, 2)])
def test_febs_loss_by_hand(spatial: tuple[int, ...]) -> None:
    logits, target, groups = _batch([0, 1, 1, 0], seed=3, spatial=spatial)
    probs = torch.softmax(logits, 1)
    w, _ = febs_sample_weights(probs, target, groups)
    scaled = probs * w.view(-1, *([1] * (probs.dim() - 1)))
    l_febs = _dice_sum_over_classes(scaled, target) / 2  # (1/C) Σ_c
    ce = torch.nn.functional.cross_entropy(logits, target).item()
    assert float(febs_loss(logits, target, groups)) == pytest.approx(0.5 * ce + 0.5 * l_febs, rel=1e-5)


def test_weights_constant_for_autograd_by_default() -> None:
    logits, target, groups = _batch([0, 1, 1, 0], seed=4)
    grads = []
    for detach in (True, False):
        x = logits.clone().requires_grad_(True)
        febs_loss(x, target, groups, detach_weights=detach).backward()
        grads.append(x.grad)
    assert not torch.allclose(grads[0], grads[1])
