"""Classification metrics vs scikit-learn, fairlearn and hand-worked / paper values."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equalized_odds_difference,
    false_positive_rate,
    true_positive_rate,
)
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    brier_score_loss,
    log_loss,
    roc_auc_score,
)

from medfairx.metrics.engine import apply_transform
from medfairx.metrics.functions import METRICS

TOL = 1e-9


def _data(n_groups: int, n: int = 3000, seed: int = 0, ties: bool = False):
    rng = np.random.default_rng(seed)
    g = rng.choice([f"g{i}" for i in range(n_groups)], n, p=np.linspace(1, 2, n_groups) / np.linspace(1, 2, n_groups).sum())
    y = rng.integers(0, 2, n)
    shift = np.array([int(x[1:]) for x in g]) * 0.05
    s = 1 / (1 + np.exp(-(rng.normal(0, 1, n) + 1.2 * y - shift)))
    if ties:
        s = np.round(s, 1)
    return y, s, g


@pytest.mark.parametrize("n_groups", [2, 4])
@pytest.mark.parametrize("ties", [False, True])
def test_group_auc_matches_sklearn_metricframe(n_groups, ties):
    y, s, g = _data(n_groups, ties=ties)
    mf = MetricFrame(metrics=roc_auc_score, y_true=y, y_pred=s, sensitive_features=g)
    ours = METRICS["auc"].frame(y, s, sensitive_features=g)
    assert abs(ours.overall - mf.overall) < TOL
    np.testing.assert_allclose(ours.by_group.to_numpy(), mf.by_group.to_numpy(), atol=TOL, rtol=0)
    assert abs(METRICS["worst_group_auc"](y, s, sensitive_features=g) - mf.group_min()) < TOL
    assert abs(METRICS["auc_gap"](y, s, sensitive_features=g) - mf.difference()) < TOL
    assert abs(ours.difference() - mf.difference()) < TOL
    assert abs(ours.difference("to_overall") - mf.difference(method="to_overall")) < TOL
    assert abs(ours.ratio() - mf.ratio()) < TOL
    assert abs(ours.group_max() - mf.group_max()) < TOL


@pytest.mark.parametrize("n_groups", [2, 4])
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.62])
def test_threshold_metrics_match_fairlearn(n_groups, threshold):
    y, s, g = _data(n_groups, seed=n_groups)
    pred = (s >= threshold).astype(int)
    kw = dict(sensitive_features=g, threshold=threshold)
    mf = MetricFrame(
        metrics={"tpr": true_positive_rate, "fpr": false_positive_rate, "acc": accuracy_score,
                 "bacc": balanced_accuracy_score},
        y_true=y, y_pred=pred, sensitive_features=g,
    )
    for ours, theirs in (("tpr", "tpr"), ("fpr", "fpr"), ("accuracy", "acc"), ("balanced_accuracy", "bacc")):
        f = METRICS[ours].frame(y, s, **kw)
        assert abs(f.overall - mf.overall[theirs]) < TOL
        np.testing.assert_allclose(f.by_group.to_numpy(), mf.by_group[theirs].to_numpy(), atol=TOL, rtol=0)
    fnr = METRICS["fnr"].frame(y, s, **kw)
    np.testing.assert_allclose(fnr.by_group.to_numpy(), 1 - mf.by_group["tpr"].to_numpy(), atol=TOL)
    eod = equalized_odds_difference(y, pred, sensitive_features=g)
    assert abs(METRICS["equalized_odds_difference"](y, s, **kw) - eod) < TOL
    assert abs(METRICS["equal_opportunity_difference"](y, s, **kw) - mf.difference()["tpr"]) < TOL
    dpd = demographic_parity_difference(y, pred, sensitive_features=g)
    assert abs(METRICS["demographic_parity_difference"](y, s, **kw) - dpd) < TOL
    # MEDFAIR-style scores: 1 - mean(|dFPR|, |dTPR|), 1 - |dTPR|, 1 - |dPPR| (higher fairer)
    d = mf.difference()
    assert abs(METRICS["eqodd_score_medfair"](y, s, **kw) - (1 - 0.5 * (d["fpr"] + d["tpr"]))) < TOL
    assert abs(METRICS["eqopp_score_medfair"](y, s, **kw) - (1 - d["tpr"])) < TOL
    assert abs(METRICS["dp_score_medfair"](y, s, **kw) - (1 - dpd)) < TOL


def test_calibration_and_loss_per_group():
    y, s, g = _data(3, seed=7)
    mf = MetricFrame(metrics=brier_score_loss, y_true=y, y_pred=s, sensitive_features=g)
    f = METRICS["brier"].frame(y, s, sensitive_features=g)
    np.testing.assert_allclose(f.by_group.to_numpy(), mf.by_group.to_numpy(), atol=TOL)
    assert abs(METRICS["brier_gap"](y, s, sensitive_features=g) - mf.difference()) < TOL
    # ECE, 15 equal-width bins, written out directly
    def ece(yy, ss):
        b = np.minimum((ss * 15).astype(int), 14)
        return sum(abs(yy[b == m].mean() - ss[b == m].mean()) * (b == m).mean() for m in range(15) if (b == m).any())
    ece_ref = {k: ece(y[g == k], s[g == k]) for k in np.unique(g)}
    fe = METRICS["ece"].frame(y, s, sensitive_features=g)
    np.testing.assert_allclose(fe.by_group.to_numpy(), [ece_ref[k] for k in sorted(ece_ref)], atol=TOL)
    assert abs(fe.overall - ece(y, s)) < TOL
    # CVaR(0.1) of per-sample log loss: mean of the worst ceil(0.1 n_g) losses
    fc = METRICS["cvar_loss"].frame(y, s, sensitive_features=g)
    for k in np.unique(g):
        m = g == k
        losses = -(y[m] * np.log(s[m]) + (1 - y[m]) * np.log(1 - s[m]))  # per-sample BCE
        assert losses.mean() == pytest.approx(log_loss(y[m], s[m]), abs=1e-12)
        worst = np.sort(losses)[::-1][: math.ceil(round(0.1 * m.sum(), 9))]
        assert abs(fc.by_group[k] - worst.mean()) < 1e-9


def test_multiclass_auc_macro_ovr_and_accuracy():
    rng = np.random.default_rng(3)
    n, k = 1500, 4
    y = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k)) + 1.5 * np.eye(k)[y]
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    g = rng.choice(["a", "b"], n)
    f = METRICS["auc"].frame(y, p, sensitive_features=g)
    assert abs(f.overall - roc_auc_score(y, p, multi_class="ovr", average="macro")) < TOL
    for grp in ("a", "b"):
        m = g == grp
        assert abs(f.by_group[grp] - roc_auc_score(y[m], p[m], multi_class="ovr", average="macro")) < TOL
    assert abs(METRICS["accuracy"](y, p, sensitive_features=g) - accuracy_score(y, p.argmax(1))) < TOL


def test_fairdi_table11_equity_scaled_auc():
    # HAM10000-age ERM (FairDi Table 11): AUC 0.9000, sum |AUC - AUC_g| = 0.1472 over A = 2 groups
    arr = np.array([[0.9, 0.97, 0.8228]])
    assert round(float(apply_transform("es_mean", [arr])[0]), 4) == 0.8383
    assert abs(apply_transform("es_mean", [arr])[0] - 0.9 / (1 + 0.1472 / 2)) < TOL
    assert round(float(apply_transform("mean_psd", [arr])[0]), 4) == 0.0818  # 0.0736 / 0.9 = 8.18e-2
    assert abs(apply_transform("max_psd", [arr])[0] - 0.1472 / 0.9) < TOL
    assert abs(apply_transform("es_sum", [arr])[0] - 0.9 / 1.1472) < TOL


def test_hand_worked_auc_example():
    # group A: pos {0.35, 0.8} vs neg {0.1, 0.4} -> 3/4; group B: pos {0.9, 0.7} vs neg {0.2, 0.6} -> 1
    # overall: 14 of 16 pairs -> 0.875
    y = np.array([0, 0, 1, 1, 0, 1, 0, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9, 0.6, 0.7])
    g = np.array(["A"] * 4 + ["B"] * 4)
    f = METRICS["auc"].frame(y, s, sensitive_features=g)
    assert f.overall == pytest.approx(0.875, abs=TOL)
    assert f.by_group.to_dict() == pytest.approx({"A": 0.75, "B": 1.0}, abs=TOL)
    kw = dict(sensitive_features=g)
    assert METRICS["es_auc"](y, s, **kw) == pytest.approx(0.875 / 1.125, abs=TOL)
    assert METRICS["es_auc_sum"](y, s, **kw) == pytest.approx(0.875 / 1.25, abs=TOL)
    assert METRICS["mean_psd"](y, s, **kw) == pytest.approx(0.125 / 0.875, abs=TOL)
    assert METRICS["max_psd"](y, s, **kw) == pytest.approx(0.25 / 0.875, abs=TOL)


def test_single_class_group_is_nan_with_warning_and_excluded():
    y = np.array([0, 0, 1, 1, 0, 1, 0, 1, 1, 1, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9, 0.6, 0.7, 0.3, 0.5, 0.6])
    g = np.array(["A"] * 4 + ["B"] * 4 + ["C"] * 3)  # C has positives only
    with pytest.warns(RuntimeWarning, match="single class"):
        f = METRICS["auc"].frame(y, s, sensitive_features=g)
    assert math.isnan(f.by_group["C"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert METRICS["worst_group_auc"](y, s, sensitive_features=g) == pytest.approx(0.75)
        assert METRICS["auc_gap"](y, s, sensitive_features=g) == pytest.approx(0.25)


def test_missing_sensitive_features_are_excluded():
    y, s, g = _data(2, seed=11)
    g = g.astype(object)
    g[::7] = None
    keep = np.array([v is not None for v in g])
    f = METRICS["auc"].frame(y, s, sensitive_features=g)
    assert abs(f.overall - roc_auc_score(y[keep], s[keep])) < TOL
    assert list(f.by_group.index) == ["g0", "g1"]
    assert f.counts.sum() == keep.sum()
