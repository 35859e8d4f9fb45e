"""Tiny synthetic data and contexts for the conformance kit and for plugin authors' tests.

Everything here is numpy/pandas only (never torch) and deterministic for a seed:

* :func:`make_toy_task_data` / :func:`make_toy_splits`: :class:`TaskData` with a learnable
  signal (classification: a bright centre square for class 1; segmentation: a bright square
  and its mask), ``n_groups`` groups correlated with the label;
* :func:`make_cpu_run_context`: a seeded CPU :class:`RunContext` with a 2-epoch recipe;
* :func:`make_toy_fair_dataset`: a small object with the ``FairDataset`` interface
  (card, metadata, patient-level splits, ``task_data``) for dataset and grouping checks;
* :func:`make_toy_results`: a synthetic long-format results table for reporter checks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from medfairx.contracts import TaskData, TrainRecipe
from medfairx.methods.base import RunContext
from medfairx.specs import DatasetCard, DatasetSpec, GroupingSpec, Task

SCRIPT_NAME = "<script>alert('x')</script>"
"""A hostile method name the reporter checks feed through every reporter."""


# --- task data ------------------------------------------------------------------------


def _spatial(spatial_dims: int, size: int | None) -> tuple[int, ...]:
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, not {spatial_dims}")
    return (size or (16 if spatial_dims == 2 else 8),) * spatial_dims


def _group_codes(rng: np.random.Generator, n: int, n_groups: int) -> np.ndarray:
    return rng.permutation(np.arange(n) % n_groups).astype(np.int64)


def _class_labels(rng: np.random.Generator, groups: np.ndarray, n_groups: int, num_classes: int, corr: float) -> np.ndarray:
    labels = np.empty(len(groups), dtype=np.int64)
    for g in range(n_groups):
        idx = np.flatnonzero(groups == g)
        if num_classes == 2:
            p1 = 0.5 + corr * ((g / max(n_groups - 1, 1)) - 0.5)
            lab = (rng.random(len(idx)) < p1).astype(np.int64)
        else:
            lab = rng.integers(0, num_classes, len(idx))
        lab[: min(num_classes, len(idx))] = np.arange(min(num_classes, len(idx)))  # every class in every group
        labels[idx] = lab
    return labels


def make_toy_task_data(
    task: Task = "classification",
    *,
    n: int = 48,
    n_groups: int = 3,
    num_classes: int = 2,
    in_channels: int = 1,
    spatial_dims: int = 2,
    size: int | None = None,
    seed: int = 0,
    group_label_correlation: float = 0.5,
    prefix: str = "s",
) -> TaskData:
    """One split of synthetic images with a learnable signal.

    Args:
        task: ``"classification"`` (labels ``(N,)``) or ``"segmentation"`` (label maps).
        n: number of samples.
        n_groups: number of groups (codes ``0..n_groups-1``, balanced).
        num_classes: classes (segmentation: class 0 is background).
        in_channels: image channels.
        spatial_dims: 2 or 3.
        size: side length (default 16 in 2D, 8 in 3D).
        seed: random seed; equal seeds give equal data.
        group_label_correlation: in ``[0, 1]``; how much the positive rate varies by group.
        prefix: prefix of the sample ids (use distinct prefixes for distinct splits).

    Returns:
        A :class:`TaskData` with ``uint8`` images ``(N, in_channels, *spatial)``.
    """
    rng = np.random.default_rng(seed)
    spatial = _spatial(spatial_dims, size)
    s = spatial[0]
    groups = _group_codes(rng, n, n_groups)
    images = rng.normal(60.0, 15.0, size=(n, in_channels, *spatial)) + 20.0 * groups.reshape((n,) + (1,) * (1 + spatial_dims))
    if task == "classification":
        labels = _class_labels(rng, groups, n_groups, num_classes, group_label_correlation)
        lo, hi = s // 4, s - s // 4
        centre = (slice(None),) + (slice(lo, hi),) * spatial_dims
        for i in range(n):
            images[i][centre] += 90.0 * labels[i] / max(num_classes - 1, 1)
    elif task == "segmentation":
        labels = np.zeros((n, *spatial), dtype=np.int64)
        for i in range(n):
            k = int(rng.integers(1, num_classes)) if num_classes > 2 else 1
            side = int(rng.integers(max(2, s // 4), max(3, s // 2)))
            start = rng.integers(0, s - side + 1, size=spatial_dims)
            box = tuple(slice(int(a), int(a) + side) for a in start)
            labels[i][box] = k
            images[i][(slice(None),) + box] += 100.0 * k / max(num_classes - 1, 1)
    else:
        raise ValueError(f"unknown task {task!r}")
    return TaskData(
        images=np.clip(images, 0, 255).astype(np.uint8),
        labels=labels,
        groups=groups,
        sample_ids=np.array([f"{prefix}{i:04d}" for i in range(n)], dtype=object),
        n_groups=n_groups,
        group_names=tuple(f"g{g}" for g in range(n_groups)),
    )


def make_toy_splits(
    task: Task = "classification",
    *,
    spatial_dims: int = 2,
    n_train: int = 48,
    n_val: int = 24,
    n_test: int = 24,
    n_groups: int = 3,
    num_classes: int = 2,
    seed: int = 0,
    **kw: Any,
) -> dict[str, TaskData]:
    """``{"train", "val", "test"}`` toy splits with distinct sample ids (see :func:`make_toy_task_data`)."""
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    return {
        split: make_toy_task_data(
            task, n=n, n_groups=n_groups, num_classes=num_classes, spatial_dims=spatial_dims,
            seed=seed * 100 + i, prefix=f"{split}_", **kw,
        )
        for i, (split, n) in enumerate(sizes.items())
    }


def make_cpu_run_context(
    task: Task = "classification",
    *,
    num_classes: int = 2,
    in_channels: int = 1,
    spatial_dims: int = 2,
    size: int | None = None,
    seed: int = 0,
    epochs: int = 2,
    batch_size: int = 16,
    backbone: str | None = None,
    **changes: Any,
) -> RunContext:
    """A seeded CPU :class:`RunContext` with a tiny recipe (no AMP, no augmentation, silent log).

    The backbone defaults to ``tiny_cnn`` (classification) or ``tiny_unet`` (segmentation).
    """
    recipe = TrainRecipe(
        epochs=epochs, batch_size=batch_size, patience=epochs, step_size=max(epochs, 1), augment=False,
        criterion="auc" if task == "classification" else "dice", num_workers=0,
    )
    ctx = RunContext(
        task=task,
        num_classes=num_classes,
        in_channels=in_channels,
        spatial_dims=spatial_dims,
        image_size=_spatial(spatial_dims, size),
        seed=seed,
        device="cpu",
        backbone=backbone or ("tiny_cnn" if task == "classification" else "tiny_unet"),
        recipe=recipe,
        amp=False,
        log=lambda _msg: None,
    )
    for k, v in changes.items():
        setattr(ctx, k, v)
    return ctx


# --- a toy FairDataset ----------------------------------------------------------------


def assign_toy_sex(metadata: pd.DataFrame) -> pd.Series:
    """Grouping rule of the toy data: the ``sex`` column as a Categorical (``F``, ``M``)."""
    result: pd.Series = pd.Series(pd.Categorical(metadata["sex"], categories=["F", "M"]), index=metadata.index, name="toy_sex")
    return result


TOY_GROUPING = GroupingSpec(
    name="toy_sex",
    target=assign_toy_sex,
    columns=("sex",),
    description="Sex (F / M) of the toy data set.",
)

TOY_CARD = DatasetCard(
    task="classification",
    num_classes=2,
    attributes=("sex", "age", "race"),
    patient_id_column="patient_id",
    license="CC0-1.0",
    citation="medfairx toy data (synthetic).",
    url="https://example.org/medfairx-toy",
    spatial_dims=2,
    in_channels=1,
    revision="toy-1",
    class_names=("negative", "positive"),
)


@dataclass
class ToySplits:
    """Patient-level split manifest with the ``SplitManifest`` interface."""

    split_ids: dict[str, list[str]]

    def ids(self, split: str) -> list[str]:
        """Sample ids of ``split``."""
        return list(self.split_ids[split])

    @property
    def hash(self) -> str:
        """Content hash of the manifest."""
        return hashlib.sha256(json.dumps(self.split_ids, sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, list[str]]:
        """JSON-ready form."""
        return {k: list(v) for k, v in self.split_ids.items()}


@dataclass
class ToyFairDataset:
    """A synthetic dataset with the ``FairDataset`` interface (see ``docs/CONTRACTS.md``)."""

    name: str
    card: DatasetCard
    metadata: pd.DataFrame
    splits: ToySplits
    seed: int = 0
    groupings: dict[str, GroupingSpec] = field(default_factory=dict)
    shape: tuple[int, ...] = (1, 16, 16)
    revision: str = "toy-1"
    config: Any = None

    def group_codes(self, ids: Sequence[str], grouping: str | None) -> tuple[np.ndarray | None, tuple[str, ...]]:
        """Group codes (-1 outside every group) and names for ``ids``."""
        if grouping is None:
            return None, ()
        cat = self.groupings[grouping].assign(self.metadata.loc[list(ids)])
        codes = np.asarray(cat.cat.codes, dtype=np.int64)
        return codes, tuple(str(c) for c in cat.cat.categories)

    def task_data(self, split: str, grouping: str | None = None) -> TaskData:
        """Images and labels of ``split`` (images depend only on the sample and the seed)."""
        ids = self.splits.ids(split)
        meta = self.metadata.loc[ids]
        labels = meta["label"].to_numpy(dtype=np.int64)
        images = np.empty((len(ids), *self.shape), dtype=np.uint8)
        for i, (sid, lab) in enumerate(zip(ids, labels, strict=False)):
            rng = np.random.default_rng([self.seed, int(sid.rsplit("_", 1)[-1])])
            img = rng.normal(60.0, 15.0, size=self.shape)
            s = self.shape[-1]
            img[(slice(None),) + (slice(s // 4, s - s // 4),) * (len(self.shape) - 1)] += 90.0 * lab
            images[i] = np.clip(img, 0, 255).astype(np.uint8)
        groups, names = self.group_codes(ids, grouping)
        return TaskData(
            images=images,
            labels=labels,
            groups=groups,
            sample_ids=np.array(ids, dtype=object),
            n_groups=max(len(names), 1),
            group_names=names,
        )

    def group_labels(self, split: str) -> pd.DataFrame:
        """One string column per grouping, indexed by sample id."""
        meta = self.metadata.loc[self.splits.ids(split)]
        result: pd.DataFrame = pd.DataFrame({g: spec.assign(meta).astype(object) for g, spec in self.groupings.items()}, index=meta.index)
        return result


def make_toy_metadata(n: int = 64, *, n_groups: int = 3, group_label_correlation: float = 0.5, seed: int = 0) -> pd.DataFrame:
    """Toy metadata: index ``sample_id``; ``label``, ``patient_id`` (2 images each), ``sex``,
    ``age``, ``race`` (``n_groups`` categories) and ``fitzpatrick`` columns."""
    rng = np.random.default_rng(seed)
    race = _group_codes(rng, n, n_groups)
    labels = _class_labels(rng, race, n_groups, 2, group_label_correlation)
    races = np.array(["White", "Black", "Asian", "Other", "Hispanic"] + [f"race{i}" for i in range(5, max(n_groups, 5))])
    result: pd.DataFrame = pd.DataFrame(
        {
            "label": labels,
            "patient_id": [f"p{i // 2:04d}" for i in range(n)],
            "sex": np.where(rng.random(n) < 0.5, "F", "M"),
            "age": rng.integers(18, 90, n),
            "race": races[race],
            "fitzpatrick": rng.integers(1, 7, n),
        },
        index=pd.Index([f"toy_{i:04d}" for i in range(n)], name="sample_id"),
    )
    return result


def make_toy_fair_dataset(
    n: int = 64,
    n_groups: int = 3,
    shape: tuple[int, ...] = (1, 16, 16),
    group_label_correlation: float = 0.5,
    *,
    seed: int = 0,
    name: str = "toy",
) -> ToyFairDataset:
    """A small patient-split dataset with the ``FairDataset`` interface (60/20/20 by patient)."""
    meta = make_toy_metadata(n, n_groups=n_groups, group_label_correlation=group_label_correlation, seed=seed)
    patients = np.array(sorted(meta["patient_id"].unique()))
    order = np.random.default_rng(seed).permutation(len(patients))
    n_tr, n_va = int(0.6 * len(patients)), int(0.2 * len(patients))
    parts = {"train": order[:n_tr], "val": order[n_tr : n_tr + n_va], "test": order[n_tr + n_va :]}
    split_ids = {
        split: sorted(meta.index[meta["patient_id"].isin(patients[idx])].tolist()) for split, idx in parts.items()
    }
    card = TOY_CARD if shape == (1, 16, 16) else _card_for(shape)
    return ToyFairDataset(name, card, meta, ToySplits(split_ids), seed, {"toy_sex": TOY_GROUPING}, shape, card.revision)


def _card_for(shape: tuple[int, ...]) -> DatasetCard:
    from dataclasses import replace

    return replace(TOY_CARD, in_channels=shape[0], spatial_dims=len(shape) - 1)


def load_toy_dataset(config: Any = None) -> ToyFairDataset:
    """Dataset-adapter target of :data:`TOY_DATASET` (ignores ``config``)."""
    return make_toy_fair_dataset()


TOY_DATASET = DatasetSpec(name="toy", target=load_toy_dataset, card=TOY_CARD, summary="Synthetic toy data.")


# --- a toy results table --------------------------------------------------------------


def make_toy_results(
    methods: Sequence[str] = ("erm", "toy_fair", SCRIPT_NAME),
    *,
    blocks: Sequence[tuple[str, str]] = (("toy_a", "sex"), ("toy_a", "age"), ("toy_b", "sex"), ("toy_c", "skin"), ("toy_d", "sex")),
    seeds: Sequence[int] = (0, 1),
    groups: Sequence[str] = ("F", "M"),
    seed: int = 0,
) -> pd.DataFrame:
    """A synthetic long-format results table for reporter checks: overall and per-group
    ``auc``, ``worst_group_auc``, ``auc_gap``, ``es_auc`` and ``ece`` for every (dataset,
    grouping) block, method and seed (:func:`medfairx.report.sample.synthetic_results`, suite
    ``toy``, one strategy; later methods are better)."""
    from medfairx.report.sample import synthetic_results

    return synthetic_results(suite="toy", blocks=blocks, methods={m: 0.03 * k for k, m in enumerate(methods)},
                             seeds=seeds, strategies=("overall",), groups=groups, random_state=seed)
