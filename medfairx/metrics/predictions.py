"""Scores and scoring problems from the prediction tables of the run store."""

from __future__ import annotations

import numpy as np
import pandas as pd

from medfairx.errors import DataError
from medfairx.metrics.catalogue import CLS
from medfairx.metrics.engine import Problem
from medfairx.store import PER_SAMPLE_COLUMNS

NO_SCORES = "{where}: no 'score' or 'score_<k>' columns; classification predictions need them."


def scores_of(frame: pd.DataFrame, where: str = "predictions") -> np.ndarray:
    """P(positive) ``(n,)`` for binary tasks, class probabilities ``(n, K)`` otherwise."""
    cols = sorted((c for c in frame.columns if str(c).startswith("score_") and str(c)[6:].isdigit()),
                  key=lambda c: int(str(c)[6:]))
    if len(cols) > 2:
        result: np.ndarray = frame[cols].to_numpy(np.float64)
        return result
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
