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

import pandas as pd

from medfairx.contracts import RESULT_COLUMNS
from medfairx.metrics.bootstrap import DEFAULT_N_BOOT
from medfairx.metrics.evaluate import _runs, score_predictions
from medfairx.metrics.thresholds import DEFAULT_POLICY
from medfairx.store import GROUP_PREFIX, StoredRun, StoreFileWarning, UnreadableRunError

#: the column of ``results.csv`` naming the evaluation set: ``test`` or ``external:<name>``
EVAL_SET = "eval_set"
IN_DISTRIBUTION = "test"
EXTERNAL_STRATEGY = "final"


def evaluate_external(
    runs_dir: Path | Iterable[StoredRun],
    *,
    metrics: list[str] | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    threshold_policy: str = DEFAULT_POLICY,
) -> pd.DataFrame:
    """Result rows (:data:`RESULT_COLUMNS` plus ``eval_set``) of every external split of every run."""
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
            for grouping in info.get("groupings", []):
                if GROUP_PREFIX + grouping not in preds.columns:
                    continue
                frame = preds[preds["split"].isin(["val", name])]
                rows = score_predictions(frame, task=run.task, grouping=grouping, metrics=metrics, n_boot=n_boot,
                                         seed=seed, threshold_policy=threshold_policy, run_name=str(run.path),
                                         split=name)
                if rows.empty:
                    continue
                rows["strategy"], rows["grouping"], rows[EVAL_SET] = EXTERNAL_STRATEGY, grouping, name
                for col in ("suite", "dataset", "method", "seed"):
                    rows[col] = run.record.get(col)
                tables.append(rows)
    if not tables:
        result: pd.DataFrame = pd.DataFrame(columns=[*RESULT_COLUMNS, EVAL_SET])
        return result
    result = pd.concat(tables, ignore_index=True)[[*RESULT_COLUMNS, EVAL_SET]]
    return result


def with_eval_set(results: pd.DataFrame) -> pd.DataFrame:
    """``results`` with an ``eval_set`` column (``test`` where it has none: tables written before it existed)."""
    out: pd.DataFrame = results.copy()
    if EVAL_SET not in out.columns:
        out[EVAL_SET] = IN_DISTRIBUTION
    out[EVAL_SET] = out[EVAL_SET].fillna(IN_DISTRIBUTION)
    return out
