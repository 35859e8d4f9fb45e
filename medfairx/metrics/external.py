"""Scores of the external test sets of a run store (``external:<name>`` prediction splits).

Each external split is scored by :func:`medfairx.metrics.evaluate.score_predictions` exactly as
the in-distribution test split, with the threshold chosen on the training dataset's
validation rows, under the groupings its ``run.json`` entry lists. Only the model whose
predictions are stored (strategy ``final``: the checkpoint the trainer selected on
validation) is scored: per-epoch predictions are not made for external sets.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from medfairx.contracts import RESULT_COLUMNS
from medfairx.metrics.bootstrap import DEFAULT_CI, DEFAULT_N_BOOT, bootstrap
from medfairx.metrics.catalogue import BY_NAME, MetricDef
from medfairx.metrics.engine import Problem
from medfairx.metrics.evaluate import _runs, score_predictions
from medfairx.metrics.predictions import problem_from_frame
from medfairx.metrics.thresholds import DEFAULT_POLICY
from medfairx.store import GROUP_PREFIX, StoredRun, StoreFileWarning, UnreadableRunError

#: the column of ``results.csv`` naming the evaluation set: ``test`` or ``external:<name>``
EVAL_SET = "eval_set"
IN_DISTRIBUTION = "test"
EXTERNAL_STRATEGY = "final"
#: the main metric of the external view, by task
MAIN_METRIC = {"classification": "auc", "segmentation": "dice"}
#: result rows of the change in the main gap (external gap − in-distribution gap): ``auc_gap_change``, ...
GAP_CHANGE = "{gap}_change"
GAP_CHANGE_NOTE = "external gap − in-distribution gap; the two test sets bootstrapped independently"


def gap_change(id_problem: Problem, ext_problem: Problem, gap: MetricDef, *, n_boot: int = DEFAULT_N_BOOT,
               seed: int = 0, ci: float = DEFAULT_CI) -> tuple[float, float, float]:
    """Δgap = external gap − in-distribution gap, with a percentile bootstrap interval.

    The in-distribution test split and the external set are independent samples, so each is
    resampled on its own (stratified, ``n_boot`` replicates each; the in-distribution split
    from ``seed``, as its own rows, the external set from ``seed + 1``, an independent
    stream since seeds are hashed). Pairing replicate ``b`` of one with replicate ``b`` of
    the other gives ``n_boot`` draws of the difference of two independent bootstrap
    distributions; the interval is their percentiles.

    Args:
        id_problem: the in-distribution test split.
        ext_problem: the external test set, under the same grouping.
        gap: the gap metric (e.g. ``auc_gap``).
        n_boot: replicates of each set; 0 gives NaN bounds.
        seed: base seed.
        ci: coverage of the interval.

    Returns:
        ``(value, ci_low, ci_high)``; all NaN where either gap is undefined.
    """
    a = bootstrap(id_problem, [gap], n_boot=n_boot, seed=seed, ci=ci)
    b = bootstrap(ext_problem, [gap], n_boot=n_boot, seed=seed + 1, ci=ci)
    value = float(b.point[gap.name] - a.point[gap.name])
    if n_boot == 0 or np.isnan(value):
        return value, float("nan"), float("nan")
    diff = b.replicates[gap.name] - a.replicates[gap.name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all replicates undefined: NaN bounds
        lo, hi = np.nanpercentile(diff, [(1.0 - ci) / 2 * 100, (1.0 + ci) / 2 * 100])
    return value, float(lo), float(hi)


def _gap_change_row(preds: pd.DataFrame, rows: pd.DataFrame, *, task: str, grouping: str, split: str,
                    n_boot: int, seed: int, where: str) -> pd.DataFrame:
    """The ``<gap>_change`` row of one external split (empty without an in-distribution gap to compare)."""
    gap = BY_NAME.get(f"{MAIN_METRIC.get(task, 'auc')}_gap")
    column = GROUP_PREFIX + grouping
    test = preds[preds["split"] == IN_DISTRIBUTION]
    if gap is None or gap.name not in set(rows["metric"]) or test.empty or test[column].isna().all():
        none: pd.DataFrame = rows.iloc[0:0]
        return none
    sets = [frame.sort_values("sample_id", kind="mergesort") for frame in (test, preds[preds["split"] == split])]
    id_problem, ext_problem = (problem_from_frame(f[f[column].notna()], task, column, where=where) for f in sets)
    value, lo, hi = gap_change(id_problem, ext_problem, gap, n_boot=n_boot, seed=seed)
    row: pd.DataFrame = rows[rows["metric"] == gap.name].iloc[:1].copy()
    row["metric"], row["value"], row["ci_low"], row["ci_high"] = GAP_CHANGE.format(gap=gap.name), value, lo, hi
    row["note"], row["delong_low"], row["delong_high"] = GAP_CHANGE_NOTE, np.nan, np.nan
    return row


def evaluate_external(
    runs_dir: Path | Iterable[StoredRun],
    *,
    metrics: list[str] | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    threshold_policy: str = DEFAULT_POLICY,
) -> pd.DataFrame:
    """Result rows (:data:`RESULT_COLUMNS` plus ``eval_set``) of every external split of every run.

    Besides the metric rows, each external split whose grouping the in-distribution test split
    also has gets a summary row ``<main gap>_change`` (e.g. ``auc_gap_change``): external
    gap − in-distribution gap with its interval (:func:`gap_change`).
    """
    tables = []
    for run in _runs(runs_dir):
        if not run.ok or not run.record.get("external"):
            continue
        try:
            preds = run.predictions()
        except UnreadableRunError as exc:
            warnings.warn(str(exc), StoreFileWarning, stacklevel=2)
            continue
        for name, info in run.record["external"].items():
            if info.get("not_scored"):
                tables.append(_not_scored_rows(run, name, info))
                continue
            for grouping in info.get("groupings", []):
                if GROUP_PREFIX + grouping not in preds.columns:
                    continue
                frame = preds[preds["split"].isin(["val", name])]
                rows = score_predictions(frame, task=run.task, grouping=grouping, metrics=metrics, n_boot=n_boot,
                                         seed=seed, threshold_policy=threshold_policy, run_name=str(run.path),
                                         split=name)
                if rows.empty:
                    continue
                change = _gap_change_row(preds, rows, task=run.task, grouping=grouping, split=name, n_boot=n_boot,
                                         seed=seed, where=str(run.path))
                rows = pd.concat([rows, change], ignore_index=True) if len(change) else rows
                rows["strategy"], rows["grouping"], rows[EVAL_SET] = EXTERNAL_STRATEGY, grouping, name
                for col in ("suite", "dataset", "method", "seed"):
                    rows[col] = run.record.get(col)
                tables.append(rows)
    if not tables:
        result: pd.DataFrame = pd.DataFrame(columns=[*RESULT_COLUMNS, EVAL_SET])
        return result
    result = pd.concat(tables, ignore_index=True)[[*RESULT_COLUMNS, EVAL_SET]]
    return result


def _not_scored_rows(run: StoredRun, name: str, info: dict[str, object]) -> pd.DataFrame:
    """Undefined main-metric rows (overall and gap, per grouping) of a set the run could not score, with the reason."""
    main = MAIN_METRIC.get(run.task, "auc")
    rows = [{"suite": run.record.get("suite"), "dataset": run.record.get("dataset"), "grouping": grouping,
             "method": run.record.get("method"), "seed": run.record.get("seed"), "strategy": EXTERNAL_STRATEGY,
             "metric": metric, "scope": scope, "group": "", "value": np.nan, "ci_low": np.nan, "ci_high": np.nan,
             "n": 0, "prevalence": np.nan, "higher_is_better": BY_NAME[metric].higher_is_better,
             "kind": BY_NAME[metric].kind, "task": run.task, "threshold": np.nan,
             "note": f"not scored: {info['not_scored']}", "delong_low": np.nan, "delong_high": np.nan, EVAL_SET: name}
            for grouping in cast(list[str], info.get("groupings") or [])
            for metric, scope in ((main, "overall"), (f"{main}_gap", "summary"))]
    frame: pd.DataFrame = pd.DataFrame(rows, columns=[*RESULT_COLUMNS, EVAL_SET])
    return frame


def with_eval_set(results: pd.DataFrame) -> pd.DataFrame:
    """``results`` with an ``eval_set`` column (``test`` where it has none: tables written before it existed)."""
    out: pd.DataFrame = results.copy()
    if EVAL_SET not in out.columns:
        out[EVAL_SET] = IN_DISTRIBUTION
    out[EVAL_SET] = out[EVAL_SET].fillna(IN_DISTRIBUTION)
    return out
