"""Class labels from a catalogue :class:`LabelConfig`, shared by every dataset adapter.

Also home of :class:`MissingImagesWarning`, the warning every file-based adapter emits when
metadata rows name image (or mask) files that do not exist.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from medfairx.config import LabelConfig
from medfairx.errors import ConfigError

__all__ = ["MissingImagesWarning", "class_labels"]


class MissingImagesWarning(UserWarning):
    """Metadata rows without an image file were skipped."""


def class_labels(
    frame: pd.DataFrame,
    label: LabelConfig,
    name: str,
    *,
    default: LabelConfig | None = None,
    default_names: tuple[str, ...] = ("benign", "malignant"),
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Class index of each row of ``frame``, and the class names.

    Args:
        frame: metadata frame holding ``label.column``.
        label: the label definition (``classes`` or ``positive`` values of one column).
        name: dataset name, for the error messages (``datasets.<name>.label``).
        default: the adapter's default binary label; when ``label`` equals it the
            classes are named ``default_names``.
        default_names: class names of ``default``.

    Returns:
        ``(codes, names)``: int64 class index per row and the class names (``classes``
        in order; for a binary label ``default_names`` or ``("negative", "positive")``).

    Raises:
        ConfigError: the column is absent, no listed value occurs, or (with ``classes``)
            a value of the column is not listed.
    """
    if label.column not in frame.columns:
        raise ConfigError(
            f"datasets.{name}.label.column: {label.column!r} is not a metadata column; columns: {list(frame.columns)}."
        )
    values = frame[label.column].astype(str)
    present = set(values)
    wanted = label.classes if label.classes is not None else label.positive or []
    unknown = [v for v in wanted if v not in present]
    if unknown:
        msg = (
            f"datasets.{name}.label: value(s) {unknown} do not occur in column {label.column!r} "
            f"(values: {', '.join(sorted(present))})"
        )
        if len(unknown) == len(wanted):
            raise ConfigError(msg + ". Fix the label definition in the catalogue.")
        # stacklevel 3: the caller of the adapter function that asked for the labels
        warnings.warn(msg + "; check for typos.", UserWarning, stacklevel=3)
    if label.classes is not None:
        codes = values.map({c: i for i, c in enumerate(label.classes)})
        if codes.isna().any():
            other = sorted(set(values[codes.isna()]))
            raise ConfigError(f"datasets.{name}.label.classes: value(s) {other} of {label.column!r} are not listed.")
        return codes.to_numpy(np.int64), tuple(label.classes)
    positive = values.isin(label.positive or []).to_numpy()
    names = default_names if default is not None and label == default else ("negative", "positive")
    return positive.astype(np.int64), names
