"""Threshold policies: chosen on validation only, matched to scikit-learn curves."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_recall_curve, roc_curve

from medfairx.errors import ConfigError
from medfairx.metrics.thresholds import choose_threshold


def _val(seed: int = 0, n: int = 500):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = np.round(1 / (1 + np.exp(-(rng.normal(0, 1, n) + 1.3 * y))), 3)
    return y, s


def test_f1_policy_is_f1_optimal():
    y, s = _val()
    t = choose_threshold(y, s, "f1")
    precision, recall, _ = precision_recall_curve(y, s)
    with np.errstate(invalid="ignore"):
        best = np.nanmax(2 * precision * recall / (precision + recall))
    assert f1_score(y, s >= t) == pytest.approx(best, abs=1e-12)


def test_youden_matches_roc_curve():
    y, s = _val(1)
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    t = choose_threshold(y, s, "youden")
    assert t == pytest.approx(thr[np.argmax(tpr - fpr)])


def test_sensitivity_and_specificity_targets():
    y, s = _val(2)
    t = choose_threshold(y, s, "sensitivity:0.8")
    assert ((s >= t) & (y == 1)).sum() / (y == 1).sum() >= 0.8
    higher = np.unique(s)[np.unique(s) > t]
    assert ((s >= higher.min()) & (y == 1)).sum() / (y == 1).sum() < 0.8  # largest such threshold
    t = choose_threshold(y, s, "specificity:0.8")
    assert ((s < t) & (y == 0)).sum() / (y == 0).sum() >= 0.8
    lower = np.unique(s)[np.unique(s) < t]
    assert ((s < lower.max()) & (y == 0)).sum() / (y == 0).sum() < 0.8  # smallest such threshold
    assert choose_threshold(y, s, "fixed:0.37") == 0.37


def test_bad_policy_and_degenerate_validation():
    with pytest.raises(ConfigError, match="Unknown threshold policy"):
        choose_threshold([0, 1], [0.2, 0.7], "sensitivity:2")
    with pytest.raises(ConfigError):
        choose_threshold([0, 1], [0.2, 0.7], "median")
    with pytest.warns(RuntimeWarning, match="single class"):
        assert choose_threshold([1, 1], [0.2, 0.7], "f1") == 0.5
