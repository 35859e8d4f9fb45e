"""Segmentation metrics on per-sample Dice / IoU vs paper values and direct numpy references."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medfairx.metrics.basic import dice_iou_per_sample
from medfairx.metrics.functions import METRICS

TOL = 1e-9


def _ceil(x: float) -> int:
    return math.ceil(round(x, 9))


def test_fairdi_table13_es_dice_sum():
    # FairDi Table 13 (cup, gender): Dice 0.8481 and sum_g |Dice - Dice_g| = 0.0055 -> 0.8481/1.0055 = 0.8435
    d = np.r_[np.full(50, 0.8481 + 0.00275), np.full(50, 0.8481 - 0.00275)]
    g = np.array(["F"] * 50 + ["M"] * 50)
    value = METRICS["es_dice_sumabs"](None, d, sensitive_features=g)
    assert value == pytest.approx(0.8481 / 1.0055, abs=TOL)
    assert round(value, 4) == 0.8435


def test_group_dice_tail_p10_failrate_and_es_std():
    rng = np.random.default_rng(0)
    g = rng.choice(["a", "b", "c"], 301)
    d = np.clip(rng.beta(5, 2, 301) - (g == "c") * 0.2, 0, 1)
    kw = dict(sensitive_features=g)
    means = {k: d[g == k].mean() for k in "abc"}
    f = METRICS["dice"].frame(None, d, **kw)
    assert f.overall == pytest.approx(d.mean(), abs=TOL)
    assert f.by_group.to_dict() == pytest.approx(means, abs=TOL)
    assert METRICS["worst_group_dice"](None, d, **kw) == pytest.approx(min(means.values()), abs=TOL)
    assert METRICS["dice_gap"](None, d, **kw) == pytest.approx(max(means.values()) - min(means.values()), abs=TOL)
    # FairMedFM: mean / (1 + std of group means), np.std (ddof 0)
    assert METRICS["es_dice_std"](None, d, **kw) == pytest.approx(d.mean() / (1 + np.std(list(means.values()))), abs=TOL)
    # Harvard: Dice / (1 + sum_g |Dice - Dice_g|)
    assert METRICS["es_dice_sumabs"](None, d, **kw) == pytest.approx(
        d.mean() / (1 + sum(abs(d.mean() - v) for v in means.values())), abs=TOL)
    tail = METRICS["tail_dice"].frame(None, d, **kw)
    p10 = METRICS["p10_dice"].frame(None, d, **kw)
    fail = METRICS["fail_rate"].frame(None, d, **kw)
    hidden = METRICS["hidden_failure_gap"].frame(None, d, **kw)
    for k in "abc":
        x = d[g == k]
        ref_tail = np.sort(x)[: _ceil(0.1 * x.size)].mean()
        assert tail.by_group[k] == pytest.approx(ref_tail, abs=TOL)
        assert p10.by_group[k] == pytest.approx(np.percentile(x, 10), abs=TOL)
        assert fail.by_group[k] == pytest.approx((x < 0.5).mean(), abs=TOL)
        assert hidden.by_group[k] == pytest.approx(x.mean() - ref_tail, abs=TOL)
    assert METRICS["worst_group_tail_dice"](None, d, **kw) == pytest.approx(tail.by_group.min(), abs=TOL)


def test_tail_uses_exact_ceil():
    # n = 30, alpha = 0.1 -> ceil(3.0) = 3 values (not 4 from 0.1 * 30 = 3.0000000000000004)
    d = np.arange(30) / 30.0
    g = np.zeros(30)
    assert METRICS["tail_dice"](None, d, sensitive_features=g) == pytest.approx((0 + 1 + 2) / 30 / 3, abs=TOL)


def test_iou_family_and_empty_mask_policy():
    pred = np.zeros((4, 4, 4), int)
    true = np.zeros((4, 4, 4), int)
    true[1, :2, :2] = 1                      # sample 1: GT only -> 0
    pred[2, :2, :2] = 1
    true[2, :2, :] = 1                       # sample 2: 4 of 8 -> Dice 2*4/12, IoU 4/8
    pred[3, :2, :2] = 1                      # sample 3: prediction only -> 0; sample 0: both empty -> 1
    dice, iou = dice_iou_per_sample(pred, true, 2)
    np.testing.assert_allclose(dice, [1, 0, 2 / 3, 0])
    np.testing.assert_allclose(iou, [1, 0, 0.5, 0])
    g = np.array(["x", "x", "y", "y"])
    f = METRICS["iou"].frame(None, iou, sensitive_features=g)
    assert f.by_group.to_dict() == pytest.approx({"x": 0.5, "y": 0.25})
    assert METRICS["es_iou_sumabs"](None, iou, sensitive_features=g) == pytest.approx(0.375 / 1.25)
