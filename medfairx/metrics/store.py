"""Reading the run store (``runs/<suite>/<run_id>/``) as docs/CONTRACTS.md defines it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medfairx.errors import DataError
from medfairx.fileio import inside
from medfairx.metrics.catalogue import CLS
from medfairx.metrics.engine import Problem
from medfairx.runner.store import RUN_JSON, in_search_store, read_run_json

GROUP_PREFIX = "group:"
NO_SCORES = "{where}: no 'score' or 'score_<k>' columns; classification predictions need them."
UNREADABLE_RUN = (
    "{path}: unreadable ({error}); the run is listed as unreadable and left out of the results. "
    "Re-run it (delete its folder, then run `medfairx bench` again)."
)
UNREADABLE_TYPE = "UnreadableRun"
PER_SAMPLE_COLUMNS = ("dice", "iou", "loss", "hd95", "nsd", "boundary_error_share", "slice_dice")  # segmentation


@dataclass
class StoredRun:
    """One run folder: its record and (lazily) its prediction tables."""

    path: Path
    record: dict[str, Any]
    root: Path | None = None

    @property
    def ok(self) -> bool:
        return self.record.get("status") == "ok"

    @property
    def task(self) -> str:
        return str(self.record.get("task") or CLS)

    def predictions(self) -> pd.DataFrame:
        """``predictions.parquet`` (the checkpoint the trainer kept).

        Raises:
            UnreadableRunError: the file is corrupt, missing, or a link out of the store.
        """
        return self._table("predictions.parquet")

    def epochs(self) -> pd.DataFrame | None:
        """``epochs.parquet`` if the run wrote one (errors as :meth:`predictions`)."""
        f = self.path / "epochs.parquet"
        return self._table(f.name) if f.exists() or f.is_symlink() else None

    def unreadable(self) -> str | None:
        """Why this finished run's tables cannot be read (``None``: they can)."""
        try:
            self.predictions()
            self.epochs()
        except UnreadableRunError as exc:
            return str(exc)
        return None

    def _table(self, name: str) -> pd.DataFrame:
        path = self.path / name
        if not inside(path, self.root or self.path):
            raise UnreadableRunError(UNREADABLE_RUN.format(path=path, error="a link to a file outside the run store"))
        try:
            return pd.read_parquet(path)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a damaged file
            error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            raise UnreadableRunError(UNREADABLE_RUN.format(path=path, error=error)) from None

    def groupings(self, frame: pd.DataFrame) -> list[str]:
        """Groupings to score: run.json ``groupings``, else every ``group:<name>`` column."""
        listed = self.record.get("groupings") or []
        if listed:
            return [str(g) for g in listed]
        return [c[len(GROUP_PREFIX):] for c in frame.columns if str(c).startswith(GROUP_PREFIX)]


class UnreadableRunError(DataError):
    """A run's prediction tables cannot be read."""


def iter_runs(runs_dir: Path) -> Iterator[StoredRun]:
    """Every readable ``run.json`` under ``runs_dir`` (sorted by path).

    One that is not valid JSON, or a link to a file outside ``runs_dir``, is skipped with a
    :class:`~medfairx.runner.store.StoreFileWarning` naming the file.
    """
    root = Path(runs_dir)
    for f in sorted(root.rglob(RUN_JSON)):
        if in_search_store(f.relative_to(root)):  # a search's own stores (scored on their own)
            continue
        record = read_run_json(f, root)
        if record is not None:
            yield StoredRun(f.parent, record, root)


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
