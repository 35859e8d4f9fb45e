"""Model-selection strategies: choose an epoch from VALIDATION history only.

A strategy is ``fn(history, *, task, group_column) -> int | None``: ``history`` holds the
rows of ``epochs.parquet`` (this module drops every row whose ``split`` is not ``val``
before looking at it), ``group_column`` is the ``group:<grouping>`` column the run is
scored under (``None``: no grouping). It returns the chosen epoch, or ``None`` for the
checkpoint the trainer kept (``final``). The criterion is the overall val AUC
(classification) or mean Dice (segmentation), and the same per group.

* ``overall``: max overall val metric;
* ``worst_group``: max worst-group val metric;
* ``pareto``: epochs not dominated on per-group val metrics, then the best worst group;
* ``dto``: min Euclidean distance to the utopia point of per-group val metrics, each
  min-max normalised over epochs (MEDFAIR's DTO);
* ``final``: the trainer's checkpoint.

Ties go to the larger overall metric, then to the earliest epoch. Groups whose val
metric is undefined (single class) at some epoch are left out; with no defined group the
group strategies fall back to the overall metric.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

from medfairx.metrics.catalogue import CLS
from medfairx.metrics.engine import Engine
from medfairx.metrics.predictions import problem_from_frame

Strategy = Callable[..., "int | None"]
VAL = "val"
NO_VAL_ROWS = "Selection strategy {name!r}: the history has no validation rows; keeping the final checkpoint."


def val_table(history: pd.DataFrame, *, task: str, group_column: str | None) -> pd.DataFrame:
    """Validation metric per epoch: index ``epoch``; column ``overall`` and one per group."""
    val = history[history["split"] == VAL]
    measure = "auc" if task == CLS else "mean:dice"
    rows = {}
    for epoch, frame in val.groupby("epoch", sort=True):
        frame = frame.sort_values("sample_id", kind="mergesort")
        problem = problem_from_frame(frame, task, group_column, where=f"epochs.parquet epoch {epoch}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            v = Engine(problem).measure(measure, np.ones((problem.n, 1)))[0]
        rows[int(epoch)] = pd.Series(v, index=["overall", *(f"g:{n}" for n in problem.names)])
    table: pd.DataFrame = pd.DataFrame(rows).T.sort_index()
    table.index.name = "epoch"
    return table


def _groups(table: pd.DataFrame) -> pd.DataFrame:
    g = table[[c for c in table.columns if c.startswith("g:")]].dropna(axis=1, how="any")
    result: pd.DataFrame = g if g.shape[1] else table[["overall"]]
    return result


def _pick(table: pd.DataFrame, key: pd.Series, *, maximise: bool = True) -> int:
    """Best epoch by ``key``; ties to larger overall, then earliest epoch."""
    k = key if maximise else -key
    order = pd.DataFrame({"k": k, "o": table["overall"].fillna(-np.inf), "e": -table.index.to_numpy()},
                         index=table.index)
    order["k"] = order["k"].fillna(-np.inf)
    return int(order.sort_values(["k", "o", "e"], ascending=False).index[0])


def _prepare(name: str, history: pd.DataFrame, task: str, group_column: str | None) -> pd.DataFrame | None:
    table = val_table(history, task=task, group_column=group_column)
    if table.empty:
        warnings.warn(NO_VAL_ROWS.format(name=name), RuntimeWarning, stacklevel=3)
        return None
    return table


def select_overall(history: pd.DataFrame, *, task: str = CLS, group_column: str | None = None) -> int | None:
    """Epoch with the best overall validation metric."""
    table = _prepare("overall", history, task, group_column)
    return None if table is None else _pick(table, table["overall"])


def select_worst_group(history: pd.DataFrame, *, task: str = CLS, group_column: str | None = None) -> int | None:
    """Epoch with the best worst-group validation metric."""
    table = _prepare("worst_group", history, task, group_column)
    return None if table is None else _pick(table, _groups(table).min(axis=1))


def pareto_front(values: pd.DataFrame) -> pd.Index:
    """Rows of ``values`` not dominated by another row (all columns maximised)."""
    v = values.to_numpy(np.float64)
    ge = (v[:, None, :] >= v[None, :, :]).all(axis=2)
    gt = (v[:, None, :] > v[None, :, :]).any(axis=2)
    dominated = np.asarray((ge & gt).any(axis=0))  # dominated[j]: some i has v_i >= v_j everywhere and > somewhere
    result: pd.Index = values.index[~dominated]
    return result


def select_pareto(history: pd.DataFrame, *, task: str = CLS, group_column: str | None = None) -> int | None:
    """Best worst-group epoch among the Pareto-optimal epochs of per-group validation metrics."""
    table = _prepare("pareto", history, task, group_column)
    if table is None:
        return None
    groups = _groups(table)
    front = pareto_front(groups)
    return _pick(table.loc[front], groups.loc[front].min(axis=1))


def select_dto(history: pd.DataFrame, *, task: str = CLS, group_column: str | None = None) -> int | None:
    """Epoch closest to the utopia point of min-max normalised per-group validation metrics."""
    table = _prepare("dto", history, task, group_column)
    if table is None:
        return None
    groups = _groups(table)
    span = (groups.max() - groups.min()).replace(0.0, np.inf)
    shortfall = (groups.max() - groups) / span
    return _pick(table, np.sqrt((shortfall**2).sum(axis=1)), maximise=False)


def select_final(history: pd.DataFrame | None = None, *, task: str = CLS, group_column: str | None = None) -> None:
    """The checkpoint the trainer kept (reads nothing)."""
    return None


STRATEGIES: dict[str, Strategy] = {
    "overall": select_overall,
    "worst_group": select_worst_group,
    "pareto": select_pareto,
    "dto": select_dto,
    "final": select_final,
}

__all__ = ["STRATEGIES", "pareto_front", "select_dto", "select_final", "select_overall", "select_pareto",
           "select_worst_group", "val_table"]
