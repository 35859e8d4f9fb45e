"""Seed aggregation, blocks × methods matrices and within-block ranks."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from medfairx.errors import ConfigError

BLOCK_KEYS: tuple[str, str] = ("dataset", "grouping")
CELL_KEYS: tuple[str, ...] = ("dataset", "grouping", "method", "strategy", "metric", "scope", "group")
REQUIRED_COLUMNS: tuple[str, ...] = (*CELL_KEYS, "seed", "value", "higher_is_better")


def check_results(results: pd.DataFrame) -> None:
    """Raise :class:`ConfigError` if ``results`` lacks a column of the results-table contract."""
    missing = [c for c in REQUIRED_COLUMNS if c not in results.columns]
    if missing:
        raise ConfigError(
            f"The results table lacks column(s) {missing}; it has {sorted(map(str, results.columns))}. "
            "Build it with medfairx.metrics.evaluate.evaluate_runs (see docs/CONTRACTS.md, "
            "'Results table')."
        )


def seed_means(results: pd.DataFrame) -> pd.DataFrame:
    """Aggregate seeds: one row per (dataset, grouping, method, strategy, metric, scope, group).

    Args:
        results: the long results table (one row per seed and value).

    Returns:
        A DataFrame with the cell keys and ``mean``, ``std`` (ddof=1, NaN for one seed),
        ``n_seeds`` (seeds with a finite value), ``ci_low`` / ``ci_high`` (means of the
        per-seed bounds), ``n``, ``prevalence``, ``higher_is_better``, ``kind`` and ``task``
        (first value of each cell), and ``note`` (the distinct non-empty notes of its seeds,
        e.g. why the value is undefined; ``""`` when none).
    """
    check_results(results)
    df = results.copy()
    df["group"] = df["group"].fillna("").astype(str)
    for col in ("ci_low", "ci_high", "n", "prevalence"):
        if col not in df.columns:
            df[col] = np.nan
    for col in ("kind", "task", "note"):
        if col not in df.columns:
            df[col] = ""
    df["note"] = df["note"].astype(object).where(df["note"].notna(), "").astype(str)
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    grouped = df.groupby(list(CELL_KEYS), sort=True, dropna=False)
    out: pd.DataFrame = grouped.agg(
        mean=("value", "mean"),
        std=("value", "std"),
        n_seeds=("value", "count"),
        ci_low=("ci_low", "mean"),
        ci_high=("ci_high", "mean"),
        n=("n", "first"),
        prevalence=("prevalence", "first"),
        higher_is_better=("higher_is_better", "first"),
        kind=("kind", "first"),
        task=("task", "first"),
    ).reset_index()
    noted = df[df["note"] != ""]
    notes = noted.groupby(list(CELL_KEYS), sort=False, dropna=False)["note"].agg(_join_notes)
    out = out.merge(notes.reset_index(), on=list(CELL_KEYS), how="left")
    out["note"] = out["note"].astype(object).where(out["note"].notna(), "")
    out["higher_is_better"] = out["higher_is_better"].astype(bool)
    return out


def _join_notes(notes: pd.Series) -> str:
    return " | ".join(sorted({n for n in notes if n}))


@dataclass
class BlockMatrix:
    """A complete blocks × methods matrix of seed-averaged values for one metric.

    Attributes:
        metric: the metric name.
        strategy: the model-selection strategy.
        higher_is_better: rank direction.
        matrix: rows are (dataset, grouping) blocks, columns are methods.
        dropped_blocks: blocks dropped because a method had no value, with those methods.
        excluded_methods: methods with no value in any block (left out before dropping).
    """

    metric: str
    strategy: str
    higher_is_better: bool
    matrix: pd.DataFrame
    dropped_blocks: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    excluded_methods: list[str] = field(default_factory=list)

    @property
    def n_blocks(self) -> int:
        """Number of complete blocks (N)."""
        return int(self.matrix.shape[0])

    @property
    def n_methods(self) -> int:
        """Number of methods compared (k)."""
        return int(self.matrix.shape[1])

    def n_datasets(self) -> int:
        """Number of distinct datasets among the blocks."""
        if self.matrix.empty:
            return 0
        return int(self.matrix.index.get_level_values(0).nunique())


def block_matrix(
    results: pd.DataFrame,
    metric: str,
    *,
    strategy: str,
    scopes: tuple[str, ...] = ("overall", "summary"),
    aggregated: pd.DataFrame | None = None,
) -> BlockMatrix:
    """Build the blocks × methods matrix of one metric under one strategy.

    Seeds are averaged first. Methods with no value anywhere are excluded; then every
    block where some remaining method has no (finite) value is dropped and reported.

    Args:
        results: the long results table.
        metric: metric name (``scope`` overall or summary).
        strategy: model-selection strategy to use.
        scopes: which scopes hold the metric's block-level value.
        aggregated: ``seed_means(results)`` if already computed.

    Returns:
        A :class:`BlockMatrix`.

    Raises:
        ConfigError: if the metric or strategy does not occur in ``results``.
    """
    agg = seed_means(results) if aggregated is None else aggregated
    rows = agg[(agg["metric"] == metric) & (agg["strategy"] == strategy) & agg["scope"].isin(scopes)]
    if rows.empty:
        raise ConfigError(
            f"No {'/'.join(scopes)} values of metric {metric!r} under strategy {strategy!r}. "
            f"Metrics present: {sorted(agg['metric'].unique())}; strategies: "
            f"{sorted(agg['strategy'].unique())}."
        )
    hib = rows["higher_is_better"].unique()
    if len(hib) != 1:
        raise ConfigError(f"Metric {metric!r} has inconsistent higher_is_better values {list(hib)}.")
    # groupby + unstack keeps only the (dataset, grouping) pairs that occur
    wide = rows.groupby([*BLOCK_KEYS, "method"], sort=True)["mean"].mean().unstack("method")
    wide = wide.replace([np.inf, -np.inf], np.nan)
    excluded = sorted(str(m) for m in wide.columns[wide.isna().all(axis=0)])
    wide = wide.drop(columns=excluded)
    incomplete = wide.isna().any(axis=1)
    dropped = {
        (str(idx[0]), str(idx[1])): sorted(str(m) for m in wide.columns[wide.loc[idx].isna()])
        for idx in wide.index[incomplete]
    }
    matrix = wide.loc[~incomplete].sort_index()
    matrix.columns = [str(c) for c in matrix.columns]
    matrix.columns.name = "method"
    return BlockMatrix(metric, strategy, bool(hib[0]), matrix, dropped, excluded)


def rank_within_blocks(matrix: pd.DataFrame, higher_is_better: bool) -> pd.DataFrame:
    """Rank methods within each block (row): 1 = best, ties get the average rank.

    Args:
        matrix: blocks × methods values.
        higher_is_better: if True the largest value gets rank 1, else the smallest.

    Returns:
        A DataFrame of ranks with the same labels.
    """
    values = matrix.to_numpy(dtype=np.float64)
    signed = -values if higher_is_better else values
    ranks = rankdata(signed, axis=1, method="average") if values.size else values
    result: pd.DataFrame = pd.DataFrame(ranks, index=matrix.index, columns=matrix.columns)
    return result


def average_ranks(matrix: pd.DataFrame, higher_is_better: bool) -> pd.Series:
    """Average within-block rank of every method, best (lowest) first."""
    ranks = rank_within_blocks(matrix, higher_is_better).mean(axis=0)
    ranks.name = "average_rank"
    return ranks.sort_values(kind="mergesort")
