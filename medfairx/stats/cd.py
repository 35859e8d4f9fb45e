"""One method comparison (Friedman → Nemenyi → CD) and its critical-difference diagram."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from medfairx.stats.posthoc import (
    FriedmanResult,
    critical_difference,
    friedman_test,
    nemenyi,
    wilcoxon_holm,
)
from medfairx.stats.ranking import (
    BlockMatrix,
    average_ranks,
    block_matrix,
    rank_within_blocks,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

MIN_BLOCKS = 5
MIN_METHODS = 2
TOO_FEW_METHODS = "No CD diagram: only {k} method(s) have values for this metric; at least 2 are needed."
TOO_FEW_BLOCKS = (
    "No CD diagram: only {n} complete block(s) (dataset × grouping); at least {min_blocks} are "
    "needed before a Friedman/Nemenyi comparison means anything (autorank's floor)."
)
TWO_METHODS = (
    "No CD diagram: with two methods the Friedman test reduces to a paired comparison; the "
    "Wilcoxon signed-rank test over {n} blocks gives p = {p}."
)
NOT_SIGNIFICANT = (
    "No CD diagram: the Friedman test is not significant (p = {p} ≥ α = {alpha}), so the "
    "average ranks cannot be told apart and no post-hoc test is run."
)
UNDEFINED = "No CD diagram: the Friedman test is undefined (the methods tie in every block)."
NON_INDEPENDENCE = (
    "Blocks are (dataset, grouping) pairs; blocks that share a dataset share the same test "
    "images and models, so they are not independent and p-values are optimistic."
)


def _fmt_p(p: float) -> str:
    return "undefined" if not np.isfinite(p) else f"{p:.3g}"


@dataclass
class Comparison:
    """Everything the report shows about one (metric, strategy) comparison.

    Attributes:
        blocks: the complete blocks × methods matrix and what was dropped.
        alpha: significance level.
        ranks: average ranks (1 = best), best first; empty if no method.
        rank_matrix: within-block ranks.
        friedman: the omnibus result, or None when it could not run.
        nemenyi: Nemenyi p-values, only when a diagram is drawn.
        cd: the critical difference, only when a diagram is drawn.
        wilcoxon: the Wilcoxon–Holm pairwise table (k ≥ 2 and N ≥ 1).
        reason: why there is no diagram (None when there is one).
    """

    blocks: BlockMatrix
    alpha: float
    ranks: pd.Series
    rank_matrix: pd.DataFrame
    friedman: FriedmanResult | None
    nemenyi: pd.DataFrame | None
    cd: float | None
    wilcoxon: pd.DataFrame | None
    reason: str | None

    @property
    def metric(self) -> str:
        """Metric name."""
        return self.blocks.metric

    @property
    def strategy(self) -> str:
        """Selection strategy."""
        return self.blocks.strategy

    @property
    def has_diagram(self) -> bool:
        """True when the Friedman test was significant and a CD diagram can be drawn."""
        return self.reason is None

    def mean_values(self) -> pd.Series:
        """Mean over complete blocks of every method's seed-averaged value."""
        return self.blocks.matrix.mean(axis=0)


def compare_methods(
    results: pd.DataFrame,
    metric: str,
    *,
    strategy: str,
    alpha: float = 0.05,
    aggregated: pd.DataFrame | None = None,
    min_blocks: int = MIN_BLOCKS,
) -> Comparison:
    """Rank methods on ``metric`` over (dataset, grouping) blocks and test the differences.

    Seeds are averaged first; incomplete blocks are dropped; ranks are 1 = best using the
    metric's ``higher_is_better``. Friedman runs first; Nemenyi and the CD only when it is
    significant, with at least ``min_blocks`` blocks and 3 methods. Otherwise ``reason``
    says why there is no diagram.

    Args:
        results: the long results table.
        metric: the metric (overall or summary scope).
        strategy: model-selection strategy.
        alpha: significance level.
        aggregated: ``seed_means(results)`` if already computed.
        min_blocks: the smallest number of blocks for which a diagram is drawn.

    Returns:
        A :class:`Comparison`.
    """
    bm = block_matrix(results, metric, strategy=strategy, aggregated=aggregated)
    m = bm.matrix
    k, n = bm.n_methods, bm.n_blocks
    rank_matrix = rank_within_blocks(m, bm.higher_is_better)
    ranks = average_ranks(m, bm.higher_is_better) if n else pd.Series(dtype=float, name="average_rank")
    friedman = friedman_test(m) if k >= MIN_METHODS and n >= 1 else None
    wil = wilcoxon_holm(m, bm.higher_is_better, alpha) if k >= 2 and n >= 1 else None
    reason: str | None = None
    if k < MIN_METHODS:
        reason = TOO_FEW_METHODS.format(k=k)
    elif n < min_blocks:
        reason = TOO_FEW_BLOCKS.format(n=n, min_blocks=min_blocks)
    elif k == 2:
        assert friedman is not None
        reason = TWO_METHODS.format(n=n, p=_fmt_p(friedman.pvalue))
    elif friedman is None or not np.isfinite(friedman.pvalue):
        reason = UNDEFINED
    elif not friedman.significant(alpha):
        reason = NOT_SIGNIFICANT.format(p=_fmt_p(friedman.pvalue), alpha=alpha)
    nem = nemenyi(m) if reason is None else None
    cd = critical_difference(k, n, alpha) if reason is None else None
    return Comparison(bm, alpha, ranks, rank_matrix, friedman, nem, cd, wil, reason)


def _mpl_safe(label: str) -> str:
    """Escape characters matplotlib would treat as mathtext."""
    return str(label).replace("$", r"\$")


def draw_cd_diagram(comparison: Comparison, ax: Axes) -> None:
    """Draw the CD diagram of a significant comparison on ``ax``.

    Uses ``scikit_posthocs.critical_difference_diagram`` with our average ranks (1 = best)
    and the Nemenyi p-value matrix; the CD is drawn as a bar above the axis.

    Raises:
        ValueError: if the comparison has no diagram (see ``comparison.reason``).
    """
    import scikit_posthocs as sp

    if not comparison.has_diagram or comparison.nemenyi is None:
        raise ValueError(f"No diagram for {comparison.metric!r}: {comparison.reason}")
    labels = {m: _mpl_safe(m) for m in comparison.ranks.index}
    ranks = comparison.ranks.rename(index=labels)
    sig = comparison.nemenyi.rename(index=labels, columns=labels)
    sp.critical_difference_diagram(
        ranks,
        sig,
        alpha=comparison.alpha,
        ax=ax,
        label_fmt_left="{label} ({rank:.2f})",
        label_fmt_right="({rank:.2f}) {label}",
        label_props={"fontsize": 9},
    )
    if comparison.cd is not None:
        # drawn here rather than by scikit-posthocs, whose CD label overlaps the tick labels
        x0, y = float(ranks.min()), 1.4
        ax.plot([x0, x0 + comparison.cd], [y, y], color="k", linewidth=2)
        ax.plot([x0, x0], [y - 0.15, y + 0.15], color="k", linewidth=1)
        ax.plot([x0 + comparison.cd] * 2, [y - 0.15, y + 0.15], color="k", linewidth=1)
        ax.text(x0 + comparison.cd / 2, y + 0.2, f"CD = {comparison.cd:.2f}", ha="center", va="bottom", fontsize=9)
    direction = "higher" if comparison.blocks.higher_is_better else "lower"
    ax.set_title(
        f"{comparison.metric} [{comparison.strategy}]: average rank (1 = best, {direction} is better), "
        f"N = {comparison.blocks.n_blocks} blocks",
        fontsize=9,
        pad=22,
    )
