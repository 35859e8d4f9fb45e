"""From an adapter's metadata frame to a :class:`FairDataset`, on the data layer's machinery.

The steps mirror ``medfairx.data.ham10000.load``: options checked against the adapter's
defaults, rows without image (or mask) skipped with a warning or an error, labels from the
catalogue's ``label`` (or the adapter default), an :class:`H5ImageCache` keyed by the
metadata files, image fingerprints and preprocessing, and :func:`assemble` for groupings
and patient-disjoint splits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medfairx.config import DatasetConfig, LabelConfig
from medfairx.data import imaging
from medfairx.data.adapters._tabular import present, report_info
from medfairx.data.cache import H5ImageCache, cache_key, file_fingerprints, file_sha256
from medfairx.data.dataset import FairDataset, assemble
from medfairx.errors import ConfigError, DataError
from medfairx.specs import DatasetCard

COMMON_OPTIONS: dict[str, Any] = {"missing_images": "skip", "workers": 4}
"""Options every file-based adapter accepts (as in the HAM10000 adapter)."""

ItemReader = Callable[[int], tuple[np.ndarray, "np.ndarray | None"]]


def options(cfg: DatasetConfig, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``cfg.options`` over ``defaults`` (plus :data:`COMMON_OPTIONS`); unknown keys are errors."""
    allowed = {**COMMON_OPTIONS, **defaults}
    unknown = [k for k in cfg.options if k not in allowed]
    if unknown:
        raise ConfigError(
            f"datasets.{cfg.name}.options: unknown option(s) {unknown}; allowed: {', '.join(allowed)}."
        )
    opts = {**allowed, **cfg.options}
    if opts["missing_images"] not in ("skip", "error"):
        raise ConfigError(
            f"datasets.{cfg.name}.options.missing_images: {opts['missing_images']!r}; allowed values: skip, error."
        )
    return opts


def root_of(cfg: DatasetConfig, layout: str) -> Path:
    """The dataset's existing ``root`` folder, or a :class:`ConfigError` / :class:`DataError`."""
    if cfg.root is None:
        raise ConfigError(f"datasets.{cfg.name}.root is required: the folder holding {layout}.")
    root = Path(cfg.root)
    if not root.is_dir():
        raise DataError(
            f"Dataset {cfg.name!r}: root {root} does not exist. Set MEDFAIRX_DATA or fix datasets.{cfg.name}.root "
            f"(expected: {layout})."
        )
    return root


def labels(frame: pd.DataFrame, label: LabelConfig, name: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Class index per row and class names from a :class:`LabelConfig` (HAM10000 semantics)."""
    from medfairx.data.ham10000 import _labels

    return _labels(frame, label, name)


def with_labels(
    frame: pd.DataFrame, label: LabelConfig | None, default: LabelConfig, default_names: Sequence[str], name: str
) -> pd.DataFrame:
    """``frame`` with an int ``label`` column from ``label`` (else ``default``, named ``default_names``).

    The class names are stored in ``frame.attrs["class_names"]``.
    """
    codes, names = labels(frame, label or default, name)
    out = frame.assign(label=codes)
    out.attrs = dict(frame.attrs)
    out.attrs["class_names"] = tuple(default_names) if label is None else names
    return out


def keep_with_files(cfg: DatasetConfig, frame: pd.DataFrame, root: Path, columns: Sequence[str], policy: str) -> pd.DataFrame:
    """Drop rows whose files are absent (``skip``) or raise naming the first one (``error``)."""
    ok = np.ones(len(frame), dtype=bool)
    for col in columns:
        ok &= present(root, frame[col].astype(str))
    if not ok.any():
        raise DataError(
            f"Dataset {cfg.name!r}: none of the {len(frame):,} files named by the metadata exist under {root} "
            f"(e.g. {frame[columns[0]].iloc[0] if len(frame) else '-'}). Check datasets.{cfg.name}.root and the "
            "expected folder layout (`medfairx list datasets`)."
        )
    if not ok.all() and policy == "error":
        sid = frame.index[~ok][0]
        raise DataError(
            f"Dataset {cfg.name!r}: sample {sid!r} has no file {root / str(frame.loc[sid, columns[0]])} "
            f"({int((~ok).sum())} missing in all). Restore the files or set datasets.{cfg.name}.options.missing_images: skip."
        )
    return frame.loc[ok]


def build(
    cfg: DatasetConfig,
    *,
    card: DatasetCard,
    frame: pd.DataFrame,
    root: Path,
    cache_dir: Path,
    opts: Mapping[str, Any],
    source_files: Sequence[Path],
    task: str,
    class_names: Sequence[str],
    default_size: tuple[int, int] = (224, 224),
    mask_column: str | None = None,
    read_item: Callable[[pd.Series, tuple[int, int]], tuple[np.ndarray, np.ndarray | None]] | None = None,
    card_changes: Mapping[str, Any] | None = None,
) -> FairDataset:
    """Cache the pixels of ``frame`` and assemble the :class:`FairDataset`.

    Args:
        frame: ``read_metadata`` output (``image_path`` relative to ``root``; ``label``
            for classification; ``frame.attrs["report"]``).
        source_files: metadata files whose bytes key the cache and the revision.
        task: ``"classification"`` or ``"segmentation"``.
        class_names: names of the label values (or of the mask classes).
        mask_column: column of mask paths (segmentation from image files).
        read_item: custom decoder ``(row, size) -> (image, mask)`` (e.g. npz files); the
            default decodes ``image_path`` (RGB) and ``mask_column`` (binary mask).
        card_changes: further :class:`DatasetCard` fields to replace.
    """
    report = dict(frame.attrs.get("report", {}))
    columns = ["image_path"] + ([mask_column] if mask_column else [])
    kept = keep_with_files(cfg, frame, root, columns, str(opts["missing_images"]))
    skipped = len(frame) - len(kept)
    meta = kept.drop(columns=[c for c in columns if c in kept.columns and c != "image_path"])
    size = cfg.spatial_size(default_size)
    if len(size) != 2:
        raise ConfigError(f"datasets.{cfg.name}.image_size: these images are 2D; give an int or [h, w].")
    size2 = (int(size[0]), int(size[1]))
    paths = [root / p for p in kept["image_path"].astype(str)]
    mask_paths = [root / p for p in kept[mask_column].astype(str)] if mask_column else None
    key = cache_key(
        adapter=cfg.adapter,
        metadata=[file_sha256(p) for p in source_files],
        options={k: v for k, v in sorted(cfg.options.items()) if k != "workers"},
        images=file_fingerprints(paths),
        masks=file_fingerprints(mask_paths) if mask_paths else None,
        size=size2,
        resize=[imaging.IMAGE_RESAMPLE, imaging.MASK_RESAMPLE],
    )
    rows = [kept.iloc[i] for i in range(len(kept))] if read_item is not None else []

    def build_item(i: int) -> tuple[np.ndarray, np.ndarray | None]:
        path = paths[i]
        try:
            if read_item is not None:
                return read_item(rows[i], size2)
            image = imaging.load_rgb(path, size2)
            if mask_paths is None:
                return image, None
            path = mask_paths[i]
            return image, imaging.load_mask(path, size2)
        except (OSError, ValueError) as exc:
            raise DataError(f"Cannot decode {path} (sample {kept.index[i]!r}): {exc}. Replace the file.") from None

    segmentation = task == "segmentation"
    cache = H5ImageCache.for_dataset(
        cache_dir,
        cfg.name,
        key,
        sample_ids=list(kept.index.astype(str)),
        image_shape=(card.in_channels, *size2),
        mask_shape=size2 if segmentation else None,
        build_item=build_item,
        workers=int(opts["workers"]),
    )
    label_dump = cfg.label.model_dump() if cfg.label is not None else None
    revision = cache_key(pixels=key, task=task, label=label_dump)
    card = dataclasses.replace(
        card,
        task=task,
        num_classes=len(class_names),
        class_names=tuple(class_names),
        **dict(card_changes or {}),
    )
    info: dict[str, Any] = {
        **(report_info(report) if report else {"source_rows": len(frame)}),
        "skipped_missing_images": skipped,
        "metadata_file": ", ".join(str(p) for p in source_files),
        "cache_file": str(cache.path),
    }
    return assemble(cfg, card, meta, cache, revision, manifest_dir=cache_dir, info=info)


def task_of(cfg: DatasetConfig, allowed: Sequence[str], default: str) -> str:
    """``cfg.task`` (or ``default``), checked against the tasks the adapter supports."""
    task = cfg.task or default
    if task not in allowed:
        raise ConfigError(
            f"datasets.{cfg.name}.task: adapter {cfg.adapter!r} supports {', '.join(allowed)}, not {task!r}."
        )
    return task
