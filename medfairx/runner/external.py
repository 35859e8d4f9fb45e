"""External test sets: a run's selected model also predicts on other datasets, or on held-out rows.

A suite's ``evaluate_on`` names, per training dataset, catalogue datasets to score the trained
model on; a dataset's ``holdout`` keeps the rows of one value of a column (e.g. one acquisition
site) out of train/val/test. Each becomes a split of ``predictions.parquet`` of its own,
``external:<dataset>`` or ``external:<dataset>@<column>=<value>``, predicted with the model whose
test predictions are stored, from images alone (labels are joined only when the rows are
written, as for the in-distribution test split). An external dataset is scored on its ``test``
split (so its numbers compare with an in-distribution board of that dataset); the decision
threshold is the one chosen on the training dataset's validation split.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from medfairx.errors import ConfigError, DataError

EXTERNAL_PREFIX = "external:"
#: split of an external dataset that is scored (WILDS-style: its own test split)
EXTERNAL_SPLIT = "test"
HOLDOUT_SPLIT = "holdout"
#: columns kept on external rows besides the scores: an external dataset's metadata columns are not copied
_BASE = ("run_id", "split", "sample_id")


def is_external(split: str) -> bool:
    """Whether ``split`` names an external test set."""
    return str(split).startswith(EXTERNAL_PREFIX)


def holdout_name(dataset: Any) -> str:
    """Split name of a dataset's held-out rows, ``external:<dataset>@<column>=<value>``."""
    rule = dataset.config.holdout
    return f"{EXTERNAL_PREFIX}{dataset.name}@{rule.column}={rule.value}"


def plan_external(suite: Any, train: Any, load: Callable[[str], Any]) -> dict[str, dict[str, Any]]:
    """The external sets of training dataset ``train`` in ``suite`` (what :class:`RunSpec` carries).

    Under a frozen-feature protocol ``train`` and the datasets ``load`` returns are the
    feature datasets (:func:`medfairx.runner.protocols.apply_protocol`): every external set is
    embedded by the suite's encoder, and its entry names its embeddings (``"embeddings"``).

    Args:
        suite: the :class:`~medfairx.config.SuiteConfig`.
        train: the training :class:`~medfairx.data.dataset.FairDataset`, as its runs see it.
        load: catalogue name → the dataset as the runs see it.

    Raises:
        ConfigError: an external dataset's task, classes or image (or feature) shape differ
            from ``train``'s.
    """
    sets: dict[str, dict[str, Any]] = {}
    groupings = list(suite.datasets.get(train.name, []))
    if train.config.holdout is not None:
        sets[holdout_name(train)] = {"dataset": train.name, "split": HOLDOUT_SPLIT, "groupings": groupings}
    for ext_name, ext_groupings in suite.external_sets(train.name).items():
        ext = load(ext_name)
        _check_compatible(train, ext)
        sets[EXTERNAL_PREFIX + ext_name] = {"dataset": ext_name, "split": EXTERNAL_SPLIT, "groupings": ext_groupings}
        embeddings = (ext.info or {}).get("protocol", {}).get("embeddings")
        if embeddings:  # a frozen protocol: the set's features, embedded by the same encoder
            sets[EXTERNAL_PREFIX + ext_name]["embeddings"] = embeddings
    return sets


def _check_compatible(train: Any, ext: Any) -> None:
    problems = []
    for what, mine, theirs in (("task", train.card.task, ext.card.task),
                               ("number of classes", train.card.num_classes, ext.card.num_classes),
                               ("image shape (channels, size)", train.image_shape, ext.image_shape)):
        if mine != theirs:
            problems.append(f"{what} {theirs} instead of {mine}")
    if problems:
        raise ConfigError(
            f"External dataset {ext.name!r} cannot score models trained on {train.name!r}: {'; '.join(problems)}. "
            f"Give datasets.{ext.name} the training dataset's label, image_size and channels."
        )


def record_of(spec: Any, datasets: Mapping[str, Any]) -> dict[str, Any]:
    """``run.json`` entry: per external set its dataset, split, revision, split hash, size, groupings."""
    out = {}
    for name, info in spec.external.items():
        ds = datasets[info["dataset"]]
        out[name] = {**info, "revision": ds.revision, "split_hash": ds.splits.hash,
                     "n": len(ds.splits.ids(info["split"]))}
    return out


def not_scored_reason(method: str, predict_grouping: str, name: str) -> str:
    """Why a method that predicts with ``predict_grouping`` cannot score external set ``name``."""
    return (f"{method} predicts with its {predict_grouping!r} group models, and external set {name!r} does not map "
            f"grouping {predict_grouping!r}")


def predict_external(method: Any, ctx: Any, spec: Any, datasets: Mapping[str, Any], *, predict_grouping: str | None,
                     frame_of: Callable[..., pd.DataFrame],
                     check: Callable[..., None]) -> tuple[list[pd.DataFrame], dict[str, str]]:
    """Prediction rows of every external set of ``spec`` (split = the set's name).

    The method sees the images only (:meth:`TaskData.without_labels`); ``frame_of`` is
    :func:`medfairx.runner.execute.predictions_frame` and ``check`` the finite-score check.
    A method that predicts with the training grouping's group codes (group-specific models)
    cannot score a set that does not map that grouping: the set is left out of this run,
    with the reason, and everything else of the run is kept.

    Returns:
        ``(frames, not_scored)``: the prediction rows, and set name → reason for the sets left out.
    """
    frames, not_scored = [], {}
    for name, info in spec.external.items():
        ds = datasets[info["dataset"]]
        grouping = predict_grouping if predict_grouping in info["groupings"] else None
        if predict_grouping is not None and grouping is None:
            not_scored[name] = not_scored_reason(spec.method, predict_grouping, name)
            continue
        truth = ds.task_data(info["split"], grouping)
        if tuple(truth.images.shape[2:]) != tuple(ctx.image_size) or int(truth.images.shape[1]) != ctx.in_channels:
            raise DataError(f"external set {name!r}: images {tuple(truth.images.shape[1:])} do not match the training "
                            f"images ({ctx.in_channels}, {', '.join(map(str, ctx.image_size))}).")
        scores = method.predict_scores(truth.without_labels(), ctx)
        check(scores, method=spec.method, split=name)
        scored = dataclasses.replace(spec, groupings=tuple(info["groupings"]))
        frame = frame_of(ds, info["split"], scored, scores, truth, ds.card.num_classes, ds.card.task)
        keep = [c for c in frame.columns if c in _BASE or c not in ds.metadata.columns]
        frame = frame[keep].copy()
        frame["split"] = name
        frames.append(frame)
    return frames, not_scored


def external_splits(frame: pd.DataFrame) -> list[str]:
    """The external split names present in a prediction table, sorted."""
    return sorted(s for s in np.unique(frame["split"].astype(str)) if is_external(s))
