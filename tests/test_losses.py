"""Task losses and group weighting against hand-computed values (docs/methods.md §0, §1.3)."""

from __future__ import annotations

import math

import pytest
import torch

from medfairx.errors import ConfigError
from medfairx.methods.losses import (
    DICE_SMOOTH,
    group_mean_losses,
    groupdro_adjustment,
    groupdro_update,
    per_sample_loss,
    soft_dice_loss,
)

S = DICE_SMOOTH


def _hand_dice_2px() -> float:
    """One image, two pixels, two classes; P(class 1) = (0.2, 0.7), labels (0, 1)."""
    # class 0: P = (0.8, 0.3), T = (1, 0); class 1: P = (0.2, 0.7), T = (0, 1)
    d0 = 1 - (2 * 0.8 + S) / ((0.64 + 0.09) + 1 + S)
    d1 = 1 - (2 * 0.7 + S) / ((0.04 + 0.49) + 1 + S)
    return (d0 + d1) / 2


def test_cross_entropy_matches_hand_values() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    target = torch.tensor([0, 1, 0])
    got = per_sample_loss(logits, target, "classification")
    want = [math.log(1 + math.exp(-2)), math.log(1 + math.exp(-1)), math.log(2)]
    assert got.shape == (3,)
    assert got.tolist() == pytest.approx(want, rel=1e-6)


def test_binary_two_logit_ce_equals_bce_on_logit_difference() -> None:
    logits = torch.tensor([[0.3, -1.2], [2.0, 0.5]])
    target = torch.tensor([1, 0])
    diff = logits[:, 1] - logits[:, 0]
    bce = torch.nn.functional.binary_cross_entropy_with_logits(diff, target.float(), reduction="none")
    assert torch.allclose(per_sample_loss(logits, target, "classification"), bce, atol=1e-6)


def test_soft_dice_matches_hand_value() -> None:
    probs = torch.tensor([[[0.8, 0.3], [0.2, 0.7]]])  # (N=1, C=2, W=2)
    target = torch.tensor([[0, 1]])
    got = soft_dice_loss(probs, target)
    assert got.shape == (1,)
    assert got.item() == pytest.approx(_hand_dice_2px(), rel=1e-6)
    # one-hot targets give the same value
    onehot = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    assert soft_dice_loss(probs, onehot).item() == pytest.approx(_hand_dice_2px(), rel=1e-6)


def test_soft_dice_perfect_and_empty_background() -> None:
    target = torch.tensor([[[0, 0], [0, 0]]])  # all background, foreground absent
    probs = torch.zeros(1, 2, 2, 2)
    probs[:, 0] = 1.0
    # background: 1 - (8+s)/(8+s) = 0; absent foreground: 1 - s/s = 0
    assert soft_dice_loss(probs, target).item() == pytest.approx(0.0, abs=1e-7)


def test_soft_dice_per_image_vs_batch() -> None:
    probs = torch.tensor([[[0.8, 0.3], [0.2, 0.7]], [[0.5, 0.5], [0.5, 0.5]]])
    target = torch.tensor([[0, 1], [1, 1]])
    per = soft_dice_loss(probs, target)
    # image 2 by hand: class 0: P=(.5,.5), T=(0,0); class 1: P=(.5,.5), T=(1,1)
    d0 = 1 - S / (0.5 + S)
    d1 = 1 - (2 * 1.0 + S) / (0.5 + 2 + S)
    assert per.tolist() == pytest.approx([_hand_dice_2px(), (d0 + d1) / 2], rel=1e-6)
    # batch mode sums over both images before the ratio
    b0 = 1 - (2 * 0.8 + S) / (0.64 + 0.09 + 0.25 + 0.25 + 1 + S)
    b1 = 1 - (2 * (0.7 + 0.5 + 0.5) + S) / (0.04 + 0.49 + 0.25 + 0.25 + 3 + S)
    assert soft_dice_loss(probs, target, per_sample=False).item() == pytest.approx((b0 + b1) / 2, rel=1e-6)


def test_segmentation_loss_is_half_ce_half_dice() -> None:
    probs = torch.tensor([[[0.8, 0.3], [0.2, 0.7]]])
    logits = probs.log().requires_grad_(True)  # softmax(log p) = p
    target = torch.tensor([[0, 1]])
    got = per_sample_loss(logits, target, "segmentation")
    ce = (-math.log(0.8) - math.log(0.7)) / 2
    assert got.item() == pytest.approx(0.5 * ce + 0.5 * _hand_dice_2px(), rel=1e-5)
    got.sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_segmentation_loss_is_per_image() -> None:
    torch.manual_seed(0)
    logits = torch.randn(3, 3, 4, 4)
    target = torch.randint(0, 3, (3, 4, 4))
    full = per_sample_loss(logits, target, "segmentation")
    for i in range(3):
        alone = per_sample_loss(logits[i : i + 1], target[i : i + 1], "segmentation")
        assert alone.item() == pytest.approx(full[i].item(), rel=1e-6)


def test_unknown_task_raises() -> None:
    with pytest.raises(ConfigError, match="Unknown task"):
        per_sample_loss(torch.zeros(2, 2), torch.zeros(2), "detection")


def test_group_mean_losses_hand_example() -> None:
    losses = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    groups = torch.tensor([0, 0, 1, -1, 1])  # -1: outside every group, ignored
    means, counts = group_mean_losses(losses, groups, 3)
    assert means.tolist() == [1.5, 4.0, 0.0]
    assert counts.tolist() == [2.0, 2.0, 0.0]


def test_groupdro_update_hand_example() -> None:
    q = torch.full((3,), 1 / 3)
    L = torch.tensor([1.5, 4.0, 0.0])
    new = groupdro_update(q, L, eta=0.1)
    raw = [math.exp(0.15), math.exp(0.4), 1.0]  # absent group keeps factor exp(0) = 1
    assert new.tolist() == pytest.approx([r / sum(raw) for r in raw], rel=1e-6)
    assert q.tolist() == pytest.approx([1 / 3] * 3)  # input untouched
    # with the C/sqrt(N_g) adjustment, N = (4, 16, 1), C = 1
    adj = groupdro_adjustment(torch.tensor([4.0, 16.0, 1.0]), 1.0)
    assert adj is not None and adj.tolist() == pytest.approx([0.5, 0.25, 1.0])
    new = groupdro_update(q, L, eta=0.1, adjustment=adj)
    raw = [math.exp(0.1 * 2.0), math.exp(0.1 * 4.25), math.exp(0.1 * 1.0)]
    assert new.tolist() == pytest.approx([r / sum(raw) for r in raw], rel=1e-6)
    assert groupdro_adjustment(torch.tensor([4.0]), 0.0) is None


def test_groupdro_update_is_stable_for_huge_losses() -> None:
    q = torch.tensor([0.5, 0.5])
    new = groupdro_update(q, torch.tensor([1e4, 0.0]), eta=1.0)
    assert torch.isfinite(new).all() and new[0].item() == pytest.approx(1.0)
