"""Analytic AUC intervals (DeLong) and the minimum detectable AUC gap between two groups.

DeLong, DeLong & Clarke-Pearson (Biometrics 1988) estimate the variance of the empirical
AUC from its structural components: with ``m`` positives ``X`` and ``n`` negatives ``Y``
and ``psi(x, y) = 1[x > y] + 1/2 1[x = y]``, ``V10_i = mean_j psi(X_i, Y_j)``,
``V01_j = mean_i psi(X_i, Y_j)`` and ``Var(AUC) = s2(V10) / m + s2(V01) / n`` (``s2`` the
sample variance). Sun & Xu (IEEE Signal Processing Letters 2014) compute the components
from midranks in ``O((m + n) log(m + n))``: ``V10_i = (T_Z(X_i) - T_X(X_i)) / n`` and
``V01_j = 1 - (T_Z(Y_j) - T_Y(Y_j)) / m`` (``T`` the midrank within the pooled sample,
the positives and the negatives). AUCs of independent groups are independent, so the
variance of a between-group difference is the sum of the two variances.

The minimum detectable gap uses the variance approximation of Hanley & McNeil (Radiology
1982), ``Var(A) = (A(1-A) + (m-1)(Q1 - A^2) + (n-1)(Q2 - A^2)) / (m n)`` with
``Q1 = A / (2 - A)`` and ``Q2 = 2A^2 / (1 + A)``: the smallest difference of two
independent AUCs that a two-sided test at level ``alpha`` detects with the given power is
``(z_{1-alpha/2} + z_{power}) sqrt(Var_a + Var_b)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
from scipy.stats import rankdata

DEFAULT_ALPHA = 0.05
DEFAULT_POWER = 0.8


@dataclass(frozen=True)
class DelongAuc:
    """Empirical AUC with its DeLong variance (NaN when a class is missing)."""

    auc: float
    var: float
    n_pos: int
    n_neg: int

    def ci(self, level: float = 0.95) -> tuple[float, float]:
        """Normal-theory interval ``auc -/+ z sqrt(var)``, clipped to ``[0, 1]``."""
        return _interval(self.auc, self.var, level, clip=(0.0, 1.0))


def _interval(value: float, var: float, level: float, clip: tuple[float, float]) -> tuple[float, float]:
    if not (math.isfinite(value) and math.isfinite(var)):
        return math.nan, math.nan
    half = NormalDist().inv_cdf(0.5 + level / 2) * math.sqrt(max(var, 0.0))
    return max(clip[0], value - half), min(clip[1], value + half)


def delong(y_true: Any, y_score: Any) -> DelongAuc:
    """AUC of binary labels (``1`` positive) and scores, with its DeLong variance (Sun & Xu 2014).

    Args:
        y_true: 0/1 labels.
        y_score: scores, higher meaning positive.
    """
    y = np.asarray(y_true).astype(bool).ravel()
    s = np.asarray(y_score, dtype=np.float64).ravel()
    x, z = s[y], s[~y]
    m, n = x.size, z.size
    if m == 0 or n == 0:
        return DelongAuc(math.nan, math.nan, m, n)
    pooled = rankdata(np.concatenate([x, z]))
    v10 = (pooled[:m] - rankdata(x)) / n
    v01 = 1.0 - (pooled[m:] - rankdata(z)) / m
    auc = float(v10.mean())
    s10 = float(v10.var(ddof=1)) if m > 1 else 0.0
    s01 = float(v01.var(ddof=1)) if n > 1 else 0.0
    return DelongAuc(auc, s10 / m + s01 / n, m, n)


def gap_ci(a: DelongAuc, b: DelongAuc, level: float = 0.95) -> tuple[float, float]:
    """Interval of ``a.auc - b.auc`` for two independent groups (variances add)."""
    return _interval(a.auc - b.auc, a.var + b.var, level, clip=(-1.0, 1.0))


def hanley_mcneil_var(auc: float, n_pos: int, n_neg: int) -> float:
    """Hanley & McNeil (1982) approximate variance of an AUC from its value and class sizes."""
    if n_pos <= 0 or n_neg <= 0 or not math.isfinite(auc):
        return math.nan
    q1, q2 = auc / (2.0 - auc), 2.0 * auc * auc / (1.0 + auc)
    a2 = auc * auc
    return (auc * (1.0 - auc) + (n_pos - 1) * (q1 - a2) + (n_neg - 1) * (q2 - a2)) / (n_pos * n_neg)


def min_detectable_gap(auc_a: float, n_pos_a: int, n_neg_a: int, auc_b: float, n_pos_b: int, n_neg_b: int, *,
                       alpha: float = DEFAULT_ALPHA, power: float = DEFAULT_POWER) -> float:
    """Smallest AUC difference between two independent groups detectable at ``alpha`` with ``power``.

    Each group's variance is the Hanley-McNeil approximation at its observed AUC and class
    sizes; NaN when a group lacks a class.
    """
    var = hanley_mcneil_var(auc_a, n_pos_a, n_neg_a) + hanley_mcneil_var(auc_b, n_pos_b, n_neg_b)
    if not math.isfinite(var):
        return math.nan
    z = NormalDist().inv_cdf(1.0 - alpha / 2) + NormalDist().inv_cdf(power)
    return z * math.sqrt(max(var, 0.0))


def delong_intervals(y_true: np.ndarray, y_score: np.ndarray, codes: np.ndarray, names: tuple[str, ...],
                     level: float = 0.95) -> dict[tuple[str, str], tuple[float, float]]:
    """DeLong intervals of the binary AUC overall, per group and of the between-group gap.

    Args:
        y_true: 0/1 labels.
        y_score: P(positive).
        codes: group code per sample (``0..G-1``).
        names: group label of each code.
        level: coverage.

    Returns:
        ``(metric, group) -> (low, high)`` for ``("auc", "")``, ``("auc", name)`` and, with two
        or more groups with a defined AUC, ``("auc_gap", "")``: the interval of the difference
        between the groups with the highest and the lowest AUC (independent samples).
    """
    out = {("auc", ""): delong(y_true, y_score).ci(level)}
    per = {name: delong(y_true[codes == g], y_score[codes == g]) for g, name in enumerate(names)}
    for name, d in per.items():
        out[("auc", name)] = d.ci(level)
    defined = [d for d in per.values() if math.isfinite(d.auc)]
    if len(defined) >= 2:
        hi, lo = max(defined, key=lambda d: d.auc), min(defined, key=lambda d: d.auc)
        out[("auc_gap", "")] = gap_ci(hi, lo, level)
    return out


__all__ = ["DEFAULT_ALPHA", "DEFAULT_POWER", "DelongAuc", "delong", "delong_intervals", "gap_ci", "hanley_mcneil_var",
           "min_detectable_gap"]
