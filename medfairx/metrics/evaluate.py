"""Score a run store into the long results table of docs/CONTRACTS.md.

For every successful run, every selection strategy and every grouping the run is scored
under, this module picks the predictions (the strategy's epoch from ``epochs.parquet``
chosen on validation rows, or ``predictions.parquet`` for ``final`` / runs without an
epochs file), chooses the decision threshold on the VALIDATION rows, and computes every
metric on the TEST rows with stratified bootstrap CIs (test rows sorted by ``sample_id``,
so two runs on the same test set share their resamples: CIs are paired across methods).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medfairx.contracts import RESULT_COLUMNS
from medfairx.errors import ConfigError
from medfairx.metrics.bootstrap import DEFAULT_N_BOOT, StratifiedBootstrap, bootstrap
from medfairx.metrics.catalogue import BY_NAME, CLS, MetricDef
from medfairx.metrics.delong import delong_intervals
from medfairx.metrics.engine import (
    UNDEFINED_NOTE,
    Problem,
    resolve_defs,
    undefined_notes,
)
from medfairx.metrics.functions import EngineMetric
from medfairx.metrics.predictions import problem_from_frame, scores_of
from medfairx.metrics.thresholds import DEFAULT_POLICY, choose_threshold, parse_policy
from medfairx.store import (
    GROUP_PREFIX,
    UNREADABLE_TYPE,
    StoredRun,
    StoreFileWarning,
    UnreadableRunError,
    iter_runs,
)

SCORE_COLUMNS = ["metric", "scope", "group", "value", "ci_low", "ci_high", "n", "prevalence", "higher_is_better",
                 "kind", "note", "delong_low", "delong_high"]
FAILURE_COLUMNS = ["suite", "run_id", "method", "dataset", "grouping", "seed", "error_type", "error_message"]
AGG_KEYS = ["suite", "dataset", "grouping", "method", "strategy", "metric", "scope", "group"]
NO_VAL = "{run}: no validation rows; threshold falls back to 0.5."
MISSING_GROUP_COLUMN = "{run}: predictions have no column {column!r} for grouping {grouping!r}; skipped."
UNKNOWN_STRATEGY_TASK = "Selection strategy {name!r} is not callable."


def _registry(kind: str) -> Any:
    from medfairx.plugins import get_host

    return get_host().registry(kind)


def load_strategy(name: str) -> Any:
    """The callable of the registered selection strategy ``name``."""
    return _registry("selection_strategies").get(name).load()


_strategy = load_strategy


def _plugin_metric(name: str) -> Any:
    return _registry("metrics").get(name)


def registered_strategies() -> list[str]:
    """Every registered selection strategy: the built-in ones in their usual order, then the others by name."""
    registry = _registry("selection_strategies")
    builtin = [n for n in registry.in_order() if registry.origin(n).dist == "medfairx"]
    return builtin + sorted(set(registry.names()) - set(builtin))


def registered_metrics() -> list[str]:
    """Every registered metric: the built-in ones in catalogue order, then the others by name."""
    order = list(BY_NAME)
    return sorted(_registry("metrics").names(), key=lambda n: (order.index(n) if n in order else len(order), n))


def _split_metrics(names: list[str] | None, task: str, num_classes: int) -> tuple[list[MetricDef], list[Any]]:
    """Built-in definitions (fast path) and plugin MetricSpecs (explicit resampling) of ``task``.

    ``names=None`` takes every registered metric. A built-in metric is used only where it
    applies to ``num_classes`` (thresholded metrics need a binary task).
    """
    applies = {d.name for d in resolve_defs(None, task, num_classes=num_classes)}
    builtin, plugin = [], []
    for name in registered_metrics() if names is None else names:
        if name in BY_NAME:
            if name in applies:
                builtin.append(BY_NAME[name])
            continue
        spec = _plugin_metric(name)
        if spec.task == task:
            target = spec.load()
            if isinstance(target, EngineMetric):
                builtin.append(target.definition)
            else:
                plugin.append(spec)
    return builtin, plugin


def _with_columns(problem: Problem, defs: list[MetricDef]) -> list[MetricDef]:
    """The segmentation metrics whose per-sample columns the run has.

    Stores written before a column existed (e.g. ``hd95``, ``nsd``, ``boundary_error_share``
    before spatial metrics were added) simply get no rows for the metrics that need it.
    """
    return [d for d in defs if all(m.split(":", 1)[1] in problem.values for m in d.measures if ":" in m)]


def _plugin_rows(spec: Any, test: pd.DataFrame, task: str, column: str, threshold: float, n_boot: int,
                 seed: int, ci: float = 0.95) -> dict[str, Any]:
    """Summary row of a third-party metric, bootstrapped by explicit resampling."""
    fn = spec.load()
    problem = problem_from_frame(test, task, column, threshold=threshold)
    keep = test[column].notna().to_numpy()
    y = test["y_true"].to_numpy()[keep] if task == CLS else None
    s = scores_of(test)[keep] if task == CLS else test["dice"].to_numpy()[keep]
    g = test[column].to_numpy()[keep]
    kw = {"threshold": threshold} if task == CLS else {}

    def call(idx: np.ndarray) -> float:
        return float(fn(None if y is None else y[idx], s[idx], sensitive_features=g[idx], **kw))

    value = call(np.arange(len(g)))
    sampler = StratifiedBootstrap(problem.strata(), n_boot, seed)
    reps = np.array([call(sampler.indices(b)) for b in range(n_boot)])
    lo, hi = (np.nanpercentile(reps, [(1 - ci) / 2 * 100, (1 + ci) / 2 * 100]) if n_boot else (np.nan, np.nan))
    note = UNDEFINED_NOTE.format(why=f"metric {spec.name!r} returned NaN") if np.isnan(value) else ""
    return dict(metric=spec.name, scope="summary", group="", value=value, ci_low=lo, ci_high=hi, n=problem.n,
                prevalence=problem.prevalence()[0], higher_is_better=spec.higher_is_better, kind=spec.kind, note=note)


def _add_delong(rows: pd.DataFrame, problem: Problem) -> None:
    """DeLong 95% intervals on the binary AUC rows (overall, groups, gap); NaN on every other row."""
    rows["delong_low"] = rows["delong_high"] = np.nan
    if problem.task != CLS or problem.y is None or problem.num_classes != 2:
        return
    assert problem.scores is not None, "a classification problem carries scores"
    cis = delong_intervals(problem.y, problem.scores, problem.codes, problem.names)
    for i, (m, g) in enumerate(zip(rows["metric"], rows["group"], strict=False)):
        if (m, g) in cis:
            rows.iloc[i, rows.columns.get_indexer(pd.Index(["delong_low", "delong_high"]))] = cis[(m, g)]


def score_predictions(
    frame: pd.DataFrame,
    *,
    task: str,
    grouping: str,
    metrics: list[str] | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    threshold_policy: str = DEFAULT_POLICY,
    run_name: str = "predictions",
    split: str = "test",
) -> pd.DataFrame:
    """Score one prediction table (val + test rows) under one grouping.

    ``split`` names the rows scored (default ``test``; e.g. an external test set); the
    threshold is chosen on the ``val`` rows either way.

    Returns:
        Rows with metric, scope, group, value, ci_low, ci_high, n, prevalence,
        higher_is_better, kind, note, delong_low, delong_high, task, threshold. ``note`` gives
        the reason of every undefined (NaN) value, and the groups a defined summary was
        computed without; ``delong_low`` / ``delong_high`` are the DeLong 95% interval of
        binary AUC rows (overall, group, ``auc_gap``) and NaN elsewhere.
    """
    column = GROUP_PREFIX + grouping
    val = frame[frame["split"] == "val"]
    test = frame[frame["split"] == split].sort_values("sample_id", kind="mergesort")
    scores = scores_of(test, run_name) if task == CLS else None
    num_classes = 2 if scores is None or scores.ndim == 1 else scores.shape[1]
    threshold = float("nan")
    if task == CLS and num_classes == 2:
        if len(val) == 0:
            warnings.warn(NO_VAL.format(run=run_name), RuntimeWarning, stacklevel=2)
            threshold = 0.5
        else:
            threshold = choose_threshold(val["y_true"].to_numpy(), scores_of(val, run_name), threshold_policy)
    builtin, plugin = _split_metrics(metrics, task, num_classes)
    problem = problem_from_frame(test, task, column, threshold=0.5 if np.isnan(threshold) else threshold,
                                 where=run_name)
    if task != CLS:
        builtin = _with_columns(problem, builtin)
    parts = []
    if builtin:
        res = bootstrap(problem, builtin, n_boot=n_boot, seed=seed)
        rows = res.to_frame()
        rows["higher_is_better"] = rows["metric"].map(lambda m: BY_NAME[m].higher_is_better)
        rows["kind"] = rows["metric"].map(lambda m: BY_NAME[m].kind)
        notes = undefined_notes(problem, builtin, res.point)
        rows["note"] = [notes.get((m, g), "") for m, g in zip(rows["metric"], rows["group"], strict=False)]
        _add_delong(rows, problem)
        parts.append(rows)
    if plugin:
        parts.append(pd.DataFrame([_plugin_rows(s, test, task, column, threshold, n_boot, seed) for s in plugin]))
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=SCORE_COLUMNS)
    for col in ("delong_low", "delong_high"):  # plugin-only tables have no AUC rows
        if col not in out.columns:
            out[col] = np.nan
    out.loc[out["value"].isna(), ["ci_low", "ci_high"]] = np.nan  # an undefined value has no interval
    out["task"] = task
    out["threshold"] = threshold
    return out


def _runs(source: Path | str | Iterable[StoredRun]) -> Iterator[StoredRun]:
    """The runs of a store folder (:func:`iter_runs`), or the given runs (several stores, bundles)."""
    if isinstance(source, (str, Path)):
        return iter_runs(Path(source))
    return iter(source)


def evaluate_runs(
    runs_dir: Path | Iterable[StoredRun],
    *,
    metrics: list[str] | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    threshold_policy: str = DEFAULT_POLICY,
    strategies: list[str] | None = None,
) -> pd.DataFrame:
    """The long results table of every successful run under ``runs_dir``.

    Args:
        runs_dir: the store root (``runs/``) or a suite folder (every ``run.json`` below counts), or
            the runs themselves (several stores merged, submitted bundles).
        metrics: metric names (built-in or plugin); ``None`` = every registered metric of the task.
        n_boot: bootstrap replicates per (run, strategy, grouping).
        seed: bootstrap seed.
        threshold_policy: how thresholds are chosen on validation (see
            :mod:`medfairx.metrics.thresholds`).
        strategies: selection strategies; ``None`` = every registered strategy
            (:func:`registered_strategies`). Without ``epochs.parquet`` every strategy scores
            the final checkpoint.

    Returns:
        One row per value, columns :data:`RESULT_COLUMNS`.
    """
    parse_policy(threshold_policy)
    names = registered_strategies() if strategies is None else list(strategies)
    fns = {n: _strategy(n) for n in names}
    for n, fn in fns.items():
        if not callable(fn):
            raise ConfigError(UNKNOWN_STRATEGY_TASK.format(name=n))
    tables = []
    for run in _runs(runs_dir):
        if run.ok:
            try:
                table = _evaluate_run(run, fns, metrics, n_boot, seed, threshold_policy)
            except UnreadableRunError as exc:  # listed by collect_failures; the other runs still count
                warnings.warn(str(exc), StoreFileWarning, stacklevel=2)
                continue
            if not table.empty:  # e.g. no requested metric applies to this run's task or columns
                tables.append(table)
    if not tables:
        result: pd.DataFrame = pd.DataFrame(columns=list(RESULT_COLUMNS))
        return result
    result = pd.concat(tables, ignore_index=True)[list(RESULT_COLUMNS)]
    return result


def evaluate_run(run: StoredRun, fns: dict[str, Any], metrics: list[str] | None, n_boot: int, seed: int,
                 policy: str) -> pd.DataFrame:
    """One run's rows of the results table (columns :data:`RESULT_COLUMNS`).

    Args:
        run: a successful stored run.
        fns: strategy name → its callable (``final`` may map to ``None``).
        metrics: metric names to score (``None``: all that apply).
        n_boot: bootstrap resamples for the CIs (0: none).
        seed: bootstrap seed.
        policy: decision-threshold policy (:mod:`medfairx.metrics.thresholds`).
    """
    rec, task = run.record, run.task
    preds = run.predictions()
    epochs = run.epochs()
    cache: dict[tuple[str, int | None], pd.DataFrame] = {}
    out = []
    for grouping in run.groupings(preds):
        column = GROUP_PREFIX + grouping
        if column not in preds.columns:
            warnings.warn(MISSING_GROUP_COLUMN.format(run=run.path, column=column, grouping=grouping),
                          RuntimeWarning, stacklevel=2)
            continue
        val_history = None if epochs is None else epochs[epochs["split"] == "val"]
        for name, fn in fns.items():
            epoch = None if val_history is None or name == "final" else fn(
                val_history, task=task, group_column=column)
            key = (grouping, epoch)
            if key not in cache:
                frame = preds if epoch is None or epochs is None else epochs[epochs["epoch"] == epoch]
                cache[key] = score_predictions(frame, task=task, grouping=grouping, metrics=metrics,
                                               n_boot=n_boot, seed=seed, threshold_policy=policy,
                                               run_name=str(run.path))
            if cache[key].empty:  # no metric applies (e.g. only columns this store lacks)
                continue
            rows = cache[key].copy()
            rows["strategy"] = name
            rows["grouping"] = grouping
            out.append(rows)
    if not out:
        result: pd.DataFrame = pd.DataFrame(columns=list(RESULT_COLUMNS))
        return result
    table: pd.DataFrame = pd.concat(out, ignore_index=True)
    for col in ("suite", "dataset", "method", "seed"):
        table[col] = rec.get(col)
    return table


_evaluate_run = evaluate_run


def collect_failures(runs_dir: Path | Iterable[StoredRun]) -> pd.DataFrame:
    """Runs whose status is not ``ok``, and finished runs whose tables cannot be read (``UnreadableRun``).

    Who failed, and the error type and message.
    """
    rows = []
    for run in _runs(runs_dir):
        rec = run.record
        err = rec.get("error") or {}
        if run.ok:
            problem = run.unreadable()
            if problem is None:
                continue
            err = {"type": UNREADABLE_TYPE, "message": problem}
        rows.append(dict(suite=rec.get("suite"), run_id=rec.get("run_id", run.path.name), method=rec.get("method"),
                         dataset=rec.get("dataset"), grouping=rec.get("train_grouping"), seed=rec.get("seed"),
                         error_type=err.get("type"), error_message=err.get("message")))
    result: pd.DataFrame = pd.DataFrame(rows, columns=FAILURE_COLUMNS)
    return result


def aggregate_seeds(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and std (ddof 1) of ``value`` across seeds.

    Keys: suite, dataset, grouping, method, strategy, metric, scope, group. Columns added:
    ``mean``, ``std``, ``n_seeds``; ``higher_is_better``, ``kind`` and ``task`` are kept.
    """
    keys = [k for k in AGG_KEYS if k in results.columns]
    grouped = results.groupby(keys, dropna=False, sort=True)
    agg = grouped["value"].agg(mean="mean", std="std", n_seeds="count").reset_index()
    meta = grouped[["higher_is_better", "kind", "task"]].first().reset_index()
    result: pd.DataFrame = agg.merge(meta, on=keys, how="left")
    return result
