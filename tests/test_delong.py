"""DeLong AUC intervals and the minimum detectable gap, against direct definitions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from medfairx.metrics.delong import (
    delong,
    delong_intervals,
    gap_ci,
    hanley_mcneil_var,
    min_detectable_gap,
)
from medfairx.metrics.evaluate import RESULT_COLUMNS, score_predictions

Z95 = 1.959963984540054


def _structural(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    """AUC and variance from the O(m n) structural components of DeLong et al. (1988)."""
    x, z = s[y == 1], s[y == 0]
    psi = (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return float(psi.mean()), float(v10.var(ddof=1) / x.size + v01.var(ddof=1) / z.size)


@pytest.mark.parametrize("ties", [False, True])
def test_delong_equals_structural_components_and_sklearn(ties):
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    s = rng.normal(0, 1, 300) + y
    s = np.round(s, 1) if ties else s
    d = delong(y, s)
    auc, var = _structural(y, s)
    assert abs(d.auc - roc_auc_score(y, s)) < 1e-12
    assert abs(d.auc - auc) < 1e-12 and abs(d.var - var) < 1e-15
    lo, hi = d.ci()
    assert abs(lo - (auc - Z95 * math.sqrt(var))) < 1e-12 and abs(hi - (auc + Z95 * math.sqrt(var))) < 1e-12


def test_hand_computed_small_example():
    # X = (3, 2, 1) positives, Y = (2, 0) negatives: psi rows (1, 1), (0.5, 1), (0, 1)
    d = delong([1, 1, 1, 0, 0], [3, 2, 1, 2, 0])
    assert d.auc == pytest.approx(4.5 / 6)
    # V10 = (1, .75, .5): s2 = 1/16; V01 = (0.5, 1): s2 = 1/8  ->  var = 1/48 + 1/16
    assert d.var == pytest.approx(1 / 48 + 1 / 16)


def test_gap_variance_is_sum_and_single_class_is_nan():
    rng = np.random.default_rng(0)
    ya, yb = rng.integers(0, 2, 200), rng.integers(0, 2, 150)
    a, b = delong(ya, rng.normal(size=200) + ya), delong(yb, rng.normal(size=150) + 0.3 * yb)
    lo, hi = gap_ci(a, b)
    half = Z95 * math.sqrt(a.var + b.var)
    assert lo == pytest.approx(a.auc - b.auc - half) and hi == pytest.approx(a.auc - b.auc + half)
    assert math.isnan(delong([1, 1], [0.2, 0.3]).auc) and all(math.isnan(v) for v in delong([0, 0], [1, 2]).ci())


def test_hanley_mcneil_and_minimum_detectable_gap_by_hand():
    # A = 0.8, 50 + 50: Q1 = 2/3, Q2 = 1.28/1.8; Var = (0.16 + 49 (Q1 - .64) + 49 (Q2 - .64)) / 2500
    var = (0.16 + 49 * (2 / 3 - 0.64) + 49 * (1.28 / 1.8 - 0.64)) / 2500
    assert hanley_mcneil_var(0.8, 50, 50) == pytest.approx(var, rel=1e-12)
    z = Z95 + 0.8416212335729143
    assert min_detectable_gap(0.8, 50, 50, 0.8, 50, 50) == pytest.approx(z * math.sqrt(2 * var), rel=1e-9)
    assert math.isnan(min_detectable_gap(0.8, 0, 50, 0.8, 50, 50))
    # larger groups detect smaller gaps
    assert min_detectable_gap(0.8, 500, 500, 0.8, 500, 500) < min_detectable_gap(0.8, 50, 50, 0.8, 50, 50)


def test_results_table_has_delong_columns_on_auc_rows():
    rng = np.random.default_rng(1)
    n = 400
    y = rng.integers(0, 2, n)
    p = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.5 * y)))
    g = rng.choice(["F", "M"], n)
    frame = pd.DataFrame({"sample_id": [f"s{i:04d}" for i in range(n)], "split": np.where(np.arange(n) < 100, "val", "test"),
                          "y_true": y, "score": p, "group:sex": g})
    out = score_predictions(frame, task="classification", grouping="sex", metrics=["auc", "auc_gap", "tpr"], n_boot=20)
    assert {"delong_low", "delong_high"} <= set(RESULT_COLUMNS) and {"delong_low", "delong_high"} <= set(out.columns)
    test = frame[frame["split"] == "test"]
    ref = delong_intervals(test["y_true"].to_numpy(), test["score"].to_numpy(),
                           (test["group:sex"] == "M").to_numpy().astype(int), ("F", "M"))
    for _, r in out.iterrows():
        if r["metric"] == "tpr":
            assert math.isnan(r["delong_low"])
            continue
        lo, hi = ref[(r["metric"], r["group"])]
        assert r["delong_low"] == pytest.approx(lo) and r["delong_high"] == pytest.approx(hi)
        assert r["delong_low"] <= r["value"] <= r["delong_high"]
    mf = {gr: roc_auc_score(test["y_true"][test["group:sex"] == gr], test["score"][test["group:sex"] == gr])
          for gr in ("F", "M")}
    gap = out[out["metric"] == "auc_gap"].iloc[0]
    assert gap["value"] == pytest.approx(abs(mf["F"] - mf["M"]))
