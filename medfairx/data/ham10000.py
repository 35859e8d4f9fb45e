"""HAM10000 adapter: the original metadata CSV, JPEG images and (optionally) lesion masks.

Rows whose image (or, for segmentation, mask) file is absent are skipped and counted
(``options.missing_images: skip``, the default, because the original metadata lists all
10,015 images) or are an error (``missing_images: error``). ``lesion_id`` is the patient key.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medfairx.config import DatasetConfig, LabelConfig
from medfairx.data import imaging
from medfairx.data.cache import H5ImageCache, cache_key, file_fingerprints, file_sha256
from medfairx.data.dataset import FairDataset, assemble
from medfairx.errors import ConfigError, DataError

COLUMNS: tuple[str, ...] = ("lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization", "dataset")
DEFAULT_LABEL = LabelConfig(column="dx", positive=["mel", "bcc", "akiec"])
OPTIONS: dict[str, Any] = {
    "metadata": "HAM10000_metadata.csv",
    "images_dir": "images",
    "masks_dir": "masks",
    "missing_images": "skip",
    "workers": 4,
}


class MissingImagesWarning(UserWarning):
    """Metadata rows without an image file were skipped."""


def read_metadata(path: Path) -> pd.DataFrame:
    """Parse the original metadata: strings kept as is, empty ``age`` → NaN.

    The returned frame keeps the CSV line number of each row in ``csv_line``.
    """
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"Cannot read HAM10000 metadata {path}: {exc}.") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise DataError(
            f"HAM10000 metadata {path} lacks column(s) {missing}; it has {list(df.columns)}. "
            "Use the original HAM10000_metadata.csv header."
        )
    df["csv_line"] = np.arange(len(df)) + 2
    age = pd.to_numeric(df["age"].str.strip().replace("", np.nan), errors="coerce")
    bad = df.loc[age.isna() & (df["age"].str.strip() != ""), "csv_line"]
    if len(bad):
        raise DataError(f"{path}, line {bad.iat[0]}: age {df.loc[bad.index[0], 'age']!r} is not a number.")
    df["age"] = age.astype(float)
    dup = df["image_id"][df["image_id"].duplicated()]
    if len(dup):
        raise DataError(f"{path}: image_id {dup.iat[0]!r} appears more than once (line {df.loc[dup.index[0], 'csv_line']}).")
    return df


def _options(cfg: DatasetConfig) -> dict[str, Any]:
    unknown = [k for k in cfg.options if k not in OPTIONS]
    if unknown:
        raise ConfigError(
            f"datasets.{cfg.name}.options: unknown option(s) {unknown}; allowed: {', '.join(OPTIONS)}."
        )
    opts = {**OPTIONS, **cfg.options}
    if opts["missing_images"] not in ("skip", "error"):
        raise ConfigError(
            f"datasets.{cfg.name}.options.missing_images: {opts['missing_images']!r}; allowed values: skip, error."
        )
    return opts


def _labels(df: pd.DataFrame, label: LabelConfig, name: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Class index of each row, and the class names."""
    if label.column not in df.columns:
        raise ConfigError(f"datasets.{name}.label.column: {label.column!r} is not a metadata column; columns: {list(df.columns)}.")
    values = df[label.column].astype(str)
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
        warnings.warn(msg + "; check for typos.", UserWarning, stacklevel=3)
    if label.classes is not None:
        codes = values.map({c: i for i, c in enumerate(label.classes)})
        if codes.isna().any():
            other = sorted(set(values[codes.isna()]))
            raise ConfigError(f"datasets.{name}.label.classes: value(s) {other} of {label.column!r} are not listed.")
        return codes.to_numpy(np.int64), tuple(label.classes)
    positive = values.isin(label.positive or []).to_numpy()
    return positive.astype(np.int64), ("benign", "malignant") if label == DEFAULT_LABEL else ("negative", "positive")


def load(cfg: DatasetConfig, *, cache_dir: Path) -> FairDataset:
    """Adapter entry point (see module docstring)."""
    from medfairx.default_plugins.datasets import HAM10000_CARD

    opts = _options(cfg)
    if cfg.root is None:
        raise ConfigError(f"datasets.{cfg.name}.root is required: the folder holding HAM10000_metadata.csv and images/.")
    root = Path(cfg.root)
    if not root.is_dir():
        raise DataError(
            f"HAM10000 root {root} (datasets.{cfg.name}.root) does not exist. Set MEDFAIRX_DATA or fix `root`."
        )
    task = cfg.task or "classification"
    meta_path = root / opts["metadata"]
    df = read_metadata(meta_path)
    images_dir, masks_dir = root / opts["images_dir"], root / opts["masks_dir"]
    wanted = {"image": (images_dir, "{}.jpg")}
    if task == "segmentation":
        wanted["mask"] = (masks_dir, "{}_segmentation.png")
    keep = np.ones(len(df), bool)
    for kind, (folder, pattern) in wanted.items():
        if not folder.is_dir():
            raise DataError(f"HAM10000 {kind} folder {folder} does not exist. Check datasets.{cfg.name}.root.")
        present = set(os.listdir(folder))
        has = df["image_id"].map(lambda i, p=pattern: p.format(i)).isin(present).to_numpy()
        if not has.all() and opts["missing_images"] == "error":
            row = df.loc[~has].iloc[0]
            raise DataError(
                f"{meta_path}, line {row['csv_line']} (image_id {row['image_id']}): {kind} file "
                f"{folder / pattern.format(row['image_id'])} is missing ({int((~has).sum())} missing in all). "
                f"Restore the file, remove the row, or set datasets.{cfg.name}.options.missing_images: skip."
            )
        keep &= has
    skipped = int((~keep).sum())
    if skipped:
        warnings.warn(
            f"HAM10000 ({meta_path.name}): {skipped:,} of {len(df):,} metadata rows have no image"
            f"{' or mask' if task == 'segmentation' else ''} under {root}; they are skipped.",
            MissingImagesWarning,
            stacklevel=3,
        )
    source_rows = len(df)
    df = df.loc[keep].reset_index(drop=True)
    label_cfg = cfg.label or DEFAULT_LABEL
    labels, class_names = _labels(df, label_cfg, cfg.name)

    meta = df.drop(columns=["image_id"]).assign(patient_id=df["lesion_id"])
    if task == "classification":
        meta["label"] = labels
    meta.index = pd.Index(df["image_id"].to_numpy(dtype=str), name="sample_id")

    size = cfg.spatial_size((224, 224))
    if len(size) != 2:
        raise ConfigError(f"datasets.{cfg.name}.image_size: HAM10000 images are 2D; give an int or [h, w].")
    image_paths = [images_dir / f"{i}.jpg" for i in meta.index]
    mask_paths = [masks_dir / f"{i}_segmentation.png" for i in meta.index] if task == "segmentation" else None
    key = cache_key(
        adapter="ham10000",
        metadata=file_sha256(meta_path),
        images=file_fingerprints(image_paths),
        masks=file_fingerprints(mask_paths) if mask_paths else None,
        size=size,
        resize=[imaging.IMAGE_RESAMPLE, imaging.MASK_RESAMPLE],
    )
    line = meta["csv_line"].to_numpy()

    def build_item(i: int) -> tuple[np.ndarray, np.ndarray | None]:
        path = image_paths[i]
        try:
            image = imaging.load_rgb(path, size)
            if mask_paths is None:
                return image, None
            path = mask_paths[i]
            return image, imaging.load_mask(path, size)
        except (OSError, ValueError) as exc:
            raise DataError(f"Cannot decode {path} ({meta_path}, line {line[i]}): {exc}. Replace the file.") from None

    cache = H5ImageCache.for_dataset(
        cache_dir,
        cfg.name,
        key,
        sample_ids=list(meta.index),
        image_shape=(3, *size),
        mask_shape=size if mask_paths else None,
        build_item=build_item,
        workers=int(opts["workers"]),
    )
    revision = cache_key(pixels=key, task=task, label=label_cfg.model_dump())
    card = dataclasses.replace(
        HAM10000_CARD,
        task=task,
        num_classes=2 if task == "segmentation" else label_cfg.num_classes,
        class_names=("background", "lesion") if task == "segmentation" else class_names,
    )
    info = {"source_rows": source_rows, "skipped_missing_images": skipped, "metadata_file": str(meta_path), "cache_file": str(cache.path)}
    return assemble(cfg, card, meta, cache, revision, manifest_dir=cache_dir, info=info)
