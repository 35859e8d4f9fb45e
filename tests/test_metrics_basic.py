"""The shared primitives against scipy / scikit-learn."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

from medfairx.metrics.basic import auc, average_ranks, dice_iou_per_sample


def test_average_ranks_match_scipy_with_ties() -> None:
    rng = np.random.default_rng(0)
    for _ in range(100):
        x = rng.integers(0, 5, size=int(rng.integers(1, 60))).astype(float)
        np.testing.assert_allclose(average_ranks(x), rankdata(x))


def test_auc_matches_sklearn() -> None:
    rng = np.random.default_rng(1)
    for _ in range(50):
        n = int(rng.integers(4, 80))
        y = rng.integers(0, 2, size=n)
        s = np.round(rng.random(n), 1)  # ties on purpose
        if 0 < y.sum() < n:
            assert abs(auc(y, s) - roc_auc_score(y, s)) < 1e-12
    assert np.isnan(auc(np.ones(3), np.arange(3)))


def test_dice_iou_hand_example_and_empty_policy() -> None:
    pred = np.array([[[1, 1], [0, 0]], [[0, 0], [0, 0]], [[1, 0], [0, 0]]])
    true = np.array([[[1, 0], [0, 0]], [[0, 0], [0, 0]], [[0, 0], [0, 0]]])
    dice, iou = dice_iou_per_sample(pred, true, 2)
    np.testing.assert_allclose(dice, [2 * 1 / 3, 1.0, 0.0])  # both empty → 1; one empty → 0
    np.testing.assert_allclose(iou, [1 / 2, 1.0, 0.0])
