"""Per-epoch val and test scores, recorded by the runner for after-the-fact model selection.

The runner holds the masked val and test splits; ``fit`` never sees them. It hands the
trainer an observer (:attr:`~medfairx.methods.base.RunContext.observe_epoch`), a closure
over those splits: at the end of every epoch of the deployed stage the trainer calls it with
a ``predict`` function of the current model, and the observer records ``predict(split)`` of
every split it holds. :func:`epochs_frame` turns the records into the rows of
``epochs.parquet``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from medfairx.contracts import TaskData
from medfairx.errors import TrainingError
from medfairx.methods.base import EpochObserver, Predictor

MIXED_STAGES = (
    "Method {method!r} reported the epochs of stage {new!r} after those of stage {old!r} to the epoch observer; "
    "pass deployed=False to train_model for every stage but the deployed one (or set epochs_are_checkpoints = False)."
)


@dataclass(frozen=True)
class EpochRecord:
    """The scores of one observed epoch: ``{split: (N, C) probabilities}``."""

    stage: str
    epoch: int
    scores: dict[str, np.ndarray]


def epoch_recorder(sets: dict[str, TaskData], *, method: str) -> tuple[EpochObserver, list[EpochRecord]]:
    """An epoch observer over ``sets`` and the list it appends one :class:`EpochRecord` to per call.

    Args:
        sets: the splits to predict each epoch (labels masked), e.g. ``{"val": ..., "test": ...}``.
        method: the method's name, for the message.

    Returns:
        ``(observe_epoch, records)``.

    Raises:
        TrainingError: (from the observer) a second stage reports epochs, so the records would
            mix the epochs of models that are not the deployed one.
    """
    records: list[EpochRecord] = []

    def observe_epoch(stage: str, epoch: int, predict: Predictor) -> None:
        if records and records[0].stage != stage:
            raise TrainingError(MIXED_STAGES.format(method=method, new=stage, old=records[0].stage))
        records.append(EpochRecord(stage, int(epoch), {name: np.asarray(predict(d)) for name, d in sets.items()}))

    return observe_epoch, records


def epochs_frame(records: list[EpochRecord], base: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per-epoch rows of every recorded split: ``base[split]`` (the final predictions' rows)
    with an ``epoch`` column and that epoch's scores (empty without records)."""
    parts = []
    for rec in records:
        for split, probs in rec.scores.items():
            if split not in base:
                continue
            f = base[split].copy()
            f.insert(0, "epoch", rec.epoch)
            if "score" in f:
                f["score"] = probs[:, 1]
            for k in range(probs.shape[1]):
                f[f"score_{k}"] = probs[:, k]
            parts.append(f)
    result: pd.DataFrame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return result
