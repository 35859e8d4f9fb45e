"""Omnibus and post-hoc tests: Friedman, Nemenyi, critical difference, Wilcoxon–Holm."""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from medfairx.errors import ConfigError


@dataclass(frozen=True)
class FriedmanResult:
    """The omnibus test over a blocks × methods matrix.

    Attributes:
        test: ``"friedman"`` (k ≥ 3) or ``"wilcoxon"`` (k = 2, Wilcoxon signed-rank).
        statistic: the test statistic (Friedman χ², or Wilcoxon W); NaN if undefined.
        pvalue: its p-value; NaN if undefined (e.g. every block is a complete tie).
        k: number of methods.
        n_blocks: number of blocks.
    """

    test: str
    statistic: float
    pvalue: float
    k: int
    n_blocks: int

    @property
    def label(self) -> str:
        """Human-readable name of the test."""
        return "Friedman χ²" if self.test == "friedman" else "Wilcoxon signed-rank W"

    def significant(self, alpha: float) -> bool:
        """True if the p-value is defined and below ``alpha``."""
        return bool(np.isfinite(self.pvalue) and self.pvalue < alpha)


def friedman_test(matrix: pd.DataFrame) -> FriedmanResult:
    """Friedman test (``scipy.stats.friedmanchisquare``) over the columns of ``matrix``.

    With two methods Friedman is not defined in scipy; the Wilcoxon signed-rank test on the
    paired block values is used instead (``test == "wilcoxon"``).

    Args:
        matrix: blocks × methods values (complete, seeds already averaged).

    Returns:
        A :class:`FriedmanResult`.

    Raises:
        ConfigError: with fewer than two methods or no block.
    """
    n, k = matrix.shape
    if k < 2 or n < 1:
        raise ConfigError(f"An omnibus test needs at least 2 methods and 1 block; got k={k}, N={n}.")
    cols = [matrix.iloc[:, j].to_numpy(dtype=np.float64) for j in range(k)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if k == 2:
            diff = cols[0] - cols[1]
            if np.all(diff == 0):
                return FriedmanResult("wilcoxon", float("nan"), float("nan"), k, n)
            res = stats.wilcoxon(cols[0], cols[1])
            return FriedmanResult("wilcoxon", float(res.statistic), float(res.pvalue), k, n)
        try:
            res = stats.friedmanchisquare(*cols)
            stat, p = float(res.statistic), float(res.pvalue)
        except (ValueError, ZeroDivisionError, FloatingPointError):
            stat, p = float("nan"), float("nan")
    if not (np.isfinite(stat) and np.isfinite(p)):
        stat, p = float("nan"), float("nan")
    return FriedmanResult("friedman", stat, p, k, n)


def nemenyi(matrix: pd.DataFrame) -> pd.DataFrame:
    """Nemenyi post-hoc p-values (``scikit_posthocs.posthoc_nemenyi_friedman``).

    The p-values depend only on |rank differences|, so the rank direction does not matter.

    Args:
        matrix: blocks × methods values.

    Returns:
        A symmetric methods × methods DataFrame of p-values.
    """
    import scikit_posthocs as sp

    data = pd.DataFrame(matrix.to_numpy(dtype=np.float64), columns=list(matrix.columns))
    out: pd.DataFrame = sp.posthoc_nemenyi_friedman(data)
    out.index = list(matrix.columns)
    out.columns = list(matrix.columns)
    return out


def q_alpha(k: int, alpha: float = 0.05) -> float:
    """Critical value of the two-tailed Nemenyi test: studentized range quantile / √2."""
    if k < 2:
        raise ConfigError(f"q_alpha needs at least 2 methods; got k={k}.")
    return float(stats.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2))


def critical_difference(k: int, n_blocks: int, alpha: float = 0.05) -> float:
    """Nemenyi critical difference ``q_α·√(k(k+1)/(6N))`` (Demšar 2006)."""
    if n_blocks < 1:
        raise ConfigError(f"The critical difference needs at least 1 block; got N={n_blocks}.")
    return q_alpha(k, alpha) * math.sqrt(k * (k + 1) / (6.0 * n_blocks))


def holm_adjust(pvalues: np.ndarray | list[float]) -> np.ndarray:
    """Holm–Bonferroni step-down adjusted p-values (NaN entries stay NaN)."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    order = ok[np.argsort(p[ok], kind="mergesort")]
    running = 0.0
    for i, idx in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[idx]))
        out[idx] = running
    return out


def wilcoxon_holm(matrix: pd.DataFrame, higher_is_better: bool, alpha: float = 0.05) -> pd.DataFrame:
    """Pairwise Wilcoxon signed-rank tests over blocks, Holm-adjusted.

    Args:
        matrix: blocks × methods values.
        higher_is_better: decides which method of a pair is reported as better.
        alpha: significance level for the ``significant`` column.

    Returns:
        One row per pair: ``method_a``, ``method_b``, ``mean_diff`` (a − b),
        ``better``, ``statistic``, ``p_value``, ``p_holm``, ``significant``.
    """
    rows = []
    for a, b in itertools.combinations(matrix.columns, 2):
        x = matrix[a].to_numpy(dtype=np.float64)
        y = matrix[b].to_numpy(dtype=np.float64)
        diff = x - y
        if diff.size == 0 or np.all(diff == 0):
            stat, p = float("nan"), 1.0
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", (RuntimeWarning, UserWarning))
                res = stats.wilcoxon(x, y)
            stat, p = float(res.statistic), float(res.pvalue)
        md = float(np.mean(diff)) if diff.size else float("nan")
        better = "" if not np.isfinite(md) or md == 0 else (a if (md > 0) == higher_is_better else b)
        rows.append({"method_a": a, "method_b": b, "mean_diff": md, "better": better, "statistic": stat, "p_value": p})
    out: pd.DataFrame = pd.DataFrame(rows, columns=["method_a", "method_b", "mean_diff", "better", "statistic", "p_value"])
    out["p_holm"] = holm_adjust(out["p_value"].to_numpy()) if len(out) else []
    out["significant"] = out["p_holm"] < alpha
    return out
