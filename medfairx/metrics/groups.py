"""Group coding and the MetricFrame-shaped :class:`GroupedScores`.

``sensitive_features`` is any 1-D array of group labels (strings, ints, categoricals);
``NaN`` / ``None`` mark samples that belong to no group: they are excluded from every
metric (overall included), the way they are excluded from every group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from medfairx.errors import ConfigError

BAD_DIFFERENCE_METHOD = "difference(method={method!r}): method must be 'between_groups' or 'to_overall'."
LENGTH_MISMATCH = "{name} has {got} entries but y_score has {n}; pass one value per sample."


def encode_groups(sensitive_features: Any, n: int | None = None) -> tuple[np.ndarray, tuple[str, ...]]:
    """Code group labels as ``0..G-1`` (sorted by label); excluded samples get ``-1``.

    Args:
        sensitive_features: one label per sample; ``NaN`` / ``None`` = no group.
        n: expected length (checked when given).

    Returns:
        ``(codes, names)``: int64 codes and the label (as ``str``) of each code.
    """
    if isinstance(sensitive_features, (pd.Series, pd.Index)):
        values = sensitive_features.to_numpy(dtype=object)
    else:
        values = np.asarray(sensitive_features, dtype=object).ravel()
    if n is not None and len(values) != n:
        raise ConfigError(LENGTH_MISMATCH.format(name="sensitive_features", got=len(values), n=n))
    missing = pd.isna(values)
    present = values[~missing]
    codes = np.full(len(values), -1, dtype=np.int64)
    if pd.api.types.infer_dtype(present, skipna=False) == "string":
        # labels are already strings: hash them once, then order the few distinct ones
        inverse, uniq = pd.factorize(present)
        names = tuple(sorted(str(u) for u in uniq))
        position = {name: i for i, name in enumerate(names)}
        codes[~missing] = np.array([position[str(u)] for u in uniq], dtype=np.int64)[inverse]
        return codes, names
    labels = np.array([str(v) for v in present], dtype=object)
    uniq, inverse = np.unique(labels.astype(str), return_inverse=True)
    codes[~missing] = inverse
    names = tuple(str(u) for u in uniq)
    return codes, names


@dataclass(frozen=True)
class GroupedScores:
    """A metric disaggregated by group, shaped like fairlearn's ``MetricFrame``.

    Attributes:
        overall: value on all (grouped) samples.
        by_group: value per group label; ``NaN`` where the metric is undefined for a group.
        higher_is_better: direction of the metric (used by :meth:`worst`).
        counts: number of samples per group.
    """

    overall: float
    by_group: pd.Series
    higher_is_better: bool = True
    counts: pd.Series | None = None

    @property
    def defined(self) -> pd.Series:
        """Group values that are not NaN (what min, max and gaps use)."""
        return self.by_group.dropna()

    def group_min(self) -> float:
        """Smallest defined group value (NaN if none)."""
        d = self.defined
        return float(d.min()) if len(d) else float("nan")

    def group_max(self) -> float:
        """Largest defined group value (NaN if none)."""
        d = self.defined
        return float(d.max()) if len(d) else float("nan")

    def worst(self) -> float:
        """Worst defined group value: the minimum if higher is better, else the maximum."""
        return self.group_min() if self.higher_is_better else self.group_max()

    def difference(self, method: Literal["between_groups", "to_overall"] = "between_groups") -> float:
        """``max - min`` over defined groups, or the largest ``|group - overall|``."""
        if method == "between_groups":
            return self.group_max() - self.group_min()
        if method == "to_overall":
            d = self.defined
            return float((d - self.overall).abs().max()) if len(d) else float("nan")
        raise ConfigError(BAD_DIFFERENCE_METHOD.format(method=method))

    def ratio(self) -> float:
        """``min / max`` over defined groups (NaN when the max is 0)."""
        hi = self.group_max()
        return self.group_min() / hi if hi != 0 else float("nan")
