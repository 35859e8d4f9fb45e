"""HAM10000 adapter: the original metadata CSV, JPEG images and (optionally) lesion masks.

Rows whose image (or, for segmentation, mask) file is absent are skipped and counted
(``options.missing_images: skip``, the default, because the original metadata lists all
10,015 images) or are an error (``missing_images: error``). ``lesion_id`` is the patient key.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medfairx.config import DatasetConfig
from medfairx.data.adapters import _loading
from medfairx.data.cache import (
    file_sha256,
)
from medfairx.data.cards import CARDS
from medfairx.data.dataset import FairDataset
from medfairx.data.labels import MissingImagesWarning, class_labels
from medfairx.errors import DataError

__all__ = ["COLUMNS", "DEFAULT_LABEL", "OPTIONS", "MissingImagesWarning", "load", "read_metadata"]

COLUMNS: tuple[str, ...] = ("lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization", "dataset")
DEFAULT_LABEL = _loading.HAM10000_LABEL
OPTIONS: dict[str, Any] = {
    "metadata": "HAM10000_metadata.csv",
    "images_dir": "images",
    "masks_dir": "masks",
    "missing_images": "skip",
    "workers": 4,
}
LAYOUT = "HAM10000_metadata.csv and images/"


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
    age = pd.to_numeric(df["age"].str.strip().replace({"": np.nan}), errors="coerce")
    bad = df.loc[age.isna() & (df["age"].str.strip() != ""), "csv_line"]
    if len(bad):
        raise DataError(f"{path}, line {bad.iat[0]}: age {df.loc[bad.index[0], 'age']!r} is not a number.")
    df["age"] = age.astype(float)
    dup = df["image_id"][df["image_id"].duplicated()]
    if len(dup):
        raise DataError(f"{path}: image_id {dup.iat[0]!r} appears more than once (line {df.loc[dup.index[0], 'csv_line']}).")
    return df


def _rows_with_files(cfg: DatasetConfig, df: pd.DataFrame, meta_path: Path, wanted: dict[str, tuple[Path, str]], policy: str) -> np.ndarray:
    """Rows whose files (``kind -> (folder, name pattern)``) all exist; ``error`` names the first gap by CSV line."""
    keep = np.ones(len(df), bool)
    for kind, (folder, pattern) in wanted.items():
        if not folder.is_dir():
            raise DataError(f"HAM10000 {kind} folder {folder} does not exist. Check datasets.{cfg.name}.root.")
        present = set(os.listdir(folder))
        has = df["image_id"].map(lambda i, p=pattern: p.format(i)).isin(present).to_numpy()
        if not has.all() and policy == "error":
            row = df.loc[~has].iloc[0]
            raise DataError(
                f"{meta_path}, line {row['csv_line']} (image_id {row['image_id']}): {kind} file "
                f"{folder / pattern.format(row['image_id'])} is missing ({int((~has).sum())} missing in all). "
                f"Restore the file, remove the row, or set datasets.{cfg.name}.options.missing_images: skip."
            )
        keep &= has
    return keep


def load(cfg: DatasetConfig, *, cache_dir: Path) -> FairDataset:
    """Adapter entry point (see module docstring)."""
    opts = _loading.options(cfg, OPTIONS)
    root = _loading.root_of(cfg, LAYOUT)
    task = _loading.task_of(cfg, ("classification", "segmentation"), "classification")
    segmentation = task == "segmentation"
    meta_path = root / opts["metadata"]
    df = read_metadata(meta_path)
    images_dir, masks_dir = root / opts["images_dir"], root / opts["masks_dir"]
    wanted = {"image": (images_dir, "{}.jpg")}
    if segmentation:
        wanted["mask"] = (masks_dir, "{}_segmentation.png")
    keep = _rows_with_files(cfg, df, meta_path, wanted, opts["missing_images"])
    skipped = int((~keep).sum())
    if skipped:
        warnings.warn(
            f"HAM10000 ({meta_path.name}): {skipped:,} of {len(df):,} metadata rows have no image"
            f"{' or mask' if segmentation else ''} under {root}; they are skipped.",
            MissingImagesWarning,
            stacklevel=3,
        )
    source_rows = len(df)
    df = df.loc[keep].reset_index(drop=True)
    label_cfg = cfg.label or DEFAULT_LABEL
    labels, class_names = class_labels(df, label_cfg, cfg.name, default=DEFAULT_LABEL)

    meta = df.drop(columns=["image_id"]).assign(patient_id=df["lesion_id"])
    if task == "classification":
        meta["label"] = labels
    meta.index = pd.Index(df["image_id"].to_numpy(dtype=str), name="sample_id")

    size = _loading.image_size(cfg, what="HAM10000 images")
    image_paths = [images_dir / f"{i}.jpg" for i in meta.index]
    mask_paths = [masks_dir / f"{i}_segmentation.png" for i in meta.index] if segmentation else None
    # HAM10000's key predates the shared adapters' key (same parts, no options).
    px = _loading.pixels(
        cfg, cache_dir, image_paths, mask_paths, size, int(opts["workers"]), adapter="ham10000", metadata=file_sha256(meta_path)
    )
    line = meta["csv_line"].to_numpy()
    return _loading.cache_and_assemble(
        _loading.Loader(cfg, cache_dir, CARDS["ham10000"], opts, task, root),
        meta,
        px,
        class_names=("background", "lesion") if segmentation else class_names,
        info={"source_rows": source_rows, "skipped_missing_images": skipped, "metadata_file": str(meta_path)},
        revision_label=label_cfg,
        where=lambda i: f"{meta_path}, line {line[i]}",
    )
