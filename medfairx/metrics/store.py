"""Reading the run store (``runs/<suite>/<run_id>/``) as docs/CONTRACTS.md defines it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medfairx.errors import DataError
from medfairx.metrics.catalogue import CLS
from medfairx.metrics.engine import Problem

GROUP_PREFIX = "group:"
NO_SCORES = "{where}: no 'score' or 'score_<k>' columns; classification predictions need them."
BAD_RUN_JSON = "{path}: cannot read run.json ({error}). Re-run the run or delete its folder."
PER_SAMPLE_COLUMNS = ("dice", "iou", "loss", "hd95", "nsd", "boundary_error_share", "slice_dice")  # segmentation


@dataclass
class StoredRun:
    """One run folder: its record and (lazily) its prediction tables."""

    path: Path
    record: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.record.get("status") == "ok"

    @property
    def task(self) -> str:
        return str(self.record.get("task") or CLS)

    def predictions(self) -> pd.DataFrame:
        """``predictions.parquet`` (the checkpoint the trainer kept)."""
        return pd.read_parquet(self.path / "predictions.parquet")

    def epochs(self) -> pd.DataFrame | None:
        """``epochs.parquet`` if the run wrote one."""
        f = self.path / "epochs.parquet"
        return pd.read_parquet(f) if f.exists() else None

    def groupings(self, frame: pd.DataFrame) -> list[str]:
        """Groupings to score: run.json ``groupings``, else every ``group:<name>`` column."""
        listed = self.record.get("groupings") or []
        if listed:
            return [str(g) for g in listed]
        return [c[len(GROUP_PREFIX):] for c in frame.columns if str(c).startswith(GROUP_PREFIX)]


def iter_runs(runs_dir: Path) -> Iterator[StoredRun]:
    """Every ``run.json`` under ``runs_dir`` (sorted by path)."""
    for f in sorted(Path(runs_dir).rglob("run.json")):
        try:
            record = json.loads(f.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(BAD_RUN_JSON.format(path=f, error=exc)) from exc
        yield StoredRun(f.parent, record)


def scores_of(frame: pd.DataFrame, where: str = "predictions") -> np.ndarray:
    """P(positive) ``(n,)`` for binary tasks, class probabilities ``(n, K)`` otherwise."""
    cols = sorted((c for c in frame.columns if str(c).startswith("score_") and str(c)[6:].isdigit()),
                  key=lambda c: int(str(c)[6:]))
    if len(cols) > 2:
        return frame[cols].to_numpy(np.float64)
    if "score" in frame.columns:
        return frame["score"].to_numpy(np.float64)
    if len(cols) == 2:
        return frame[cols[1]].to_numpy(np.float64)
    raise DataError(NO_SCORES.format(where=where))


def problem_from_frame(frame: pd.DataFrame, task: str, group_column: str | None, *, threshold: float = 0.5,
                       where: str = "predictions") -> Problem:
    """A :class:`Problem` from prediction rows (one split); no group column = one group ``all``."""
    groups = frame[group_column] if group_column else pd.Series(["all"] * len(frame), index=frame.index)
    values = {c: frame[c].to_numpy(np.float64) for c in PER_SAMPLE_COLUMNS if c in frame.columns}
    if task == CLS:
        return Problem.build(task, groups, y_true=frame["y_true"].to_numpy(), y_score=scores_of(frame, where),
                             values=values, threshold=threshold)
    return Problem.build(task, groups, values=values)
