"""Fitzpatrick17k adapter: the authors' ``fitzpatrick17k.csv`` (2021 or 2022 header) + images.

* Both header versions are accepted: 2021 (unnamed, non-unique leading index column,
  ``fitzpatrick``) and current (``fitzpatrick_scale`` + ``fitzpatrick_centaur``).
* Skin type (FST) ``-1`` means *not assigned*: it is kept as ``"unknown"`` and falls
  outside every grouping; it is never read as a skin type. Each annotation gives a 6-way
  attribute (``"1"``–``"6"``) and a binarised one (``"1-3"`` / ``"4-6"``):
  ``skin_type`` / ``skin_type_binary`` (Scale AI, ``fitzpatrick_scale``) and
  ``skin_type_centaur`` / ``skin_type_centaur_binary`` (Centaur Labs, current file only).
* Label: malignant (``three_partition_label == "malignant"``) vs the rest, by default.
* There is **no patient id**: ``patient_id`` is the image's ``md5hash``, so splits are
  image-level and near-duplicate images of one patient can leak across splits.
* Images: ``<root>/images/<md5hash>.jpg``; rows without an image are counted and skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from medfairx.config import DatasetConfig, LabelConfig
from medfairx.data.adapters import _loading
from medfairx.data.adapters._tabular import (
    Header,
    Report,
    binarise,
    codes,
    read_id_table,
)
from medfairx.data.dataset import FairDataset

NAME = "fitzpatrick17k"
HEADER = Header(
    required=("md5hash", "fitzpatrick_scale", "label", "nine_partition_label", "three_partition_label"),
    optional=("fitzpatrick_centaur", "qc", "url", "url_alphanum"),
    aliases={"fitzpatrick": "fitzpatrick_scale"},
    drop_unnamed_index=True,
)
FST = {str(i): str(i) for i in range(1, 7)} | {"-1": "unknown"}
FST_BINARY = {"1-3": ("1", "2", "3"), "4-6": ("4", "5", "6")}
DEFAULT_LABEL = LabelConfig(column="three_partition_label", positive=["malignant"])
CLASS_NAMES = ("non-malignant", "malignant")
OPTIONS: dict[str, Any] = {"metadata": "fitzpatrick17k.csv", "images_dir": "images"}
LAYOUT = "fitzpatrick17k.csv (original, either header version) and images/<md5hash>.jpg"


def read_metadata(
    root: Path,
    *,
    metadata: str = OPTIONS["metadata"],
    images_dir: str = OPTIONS["images_dir"],
    label: LabelConfig | None = None,
    check: bool = True,
) -> pd.DataFrame:
    """Parse ``fitzpatrick17k.csv`` into the standard metadata frame.

    Args:
        root: dataset folder.
        metadata: CSV file name (relative to ``root``).
        images_dir: image folder (relative to ``root``).
        label: label definition over the frame's columns (default: malignant).
        check: count rows without an image file (warns when some are missing).

    Returns:
        Frame indexed by ``sample_id`` (= ``md5hash``) with ``label``, ``patient_id``,
        ``skin_type``, ``skin_type_binary`` (and the ``_centaur`` pair on the current
        file), ``condition``, ``nine_partition_label``, ``three_partition_label``, ``qc``,
        ``image_path``; ``attrs["report"]`` holds the counts.
    """
    report = Report(NAME)
    table = read_id_table(Path(root) / metadata, HEADER, report, "md5hash")
    df = table.frame
    report.notes.append(
        f"header version: {'2022 (fitzpatrick_scale + fitzpatrick_centaur)' if 'fitzpatrick_centaur' in df else '2021 (fitzpatrick)'}"
    )
    out = pd.DataFrame(index=df["md5hash"].to_numpy())
    out["patient_id"] = df["md5hash"].to_numpy()
    report.notes.append("no patient id in Fitzpatrick17k: patient_id = md5hash (image-level splits; near duplicates may leak)")
    annotations = [("fitzpatrick_scale", "skin_type")]
    if "fitzpatrick_centaur" in df.columns:
        annotations.append(("fitzpatrick_centaur", "skin_type_centaur"))
    for column, attribute in annotations:
        six = codes(table, column, FST, report, attribute=attribute)
        unknown_fst = int((df[column] == "-1").sum())
        report.missing_values[attribute] = report.missing_values.get(attribute, 0) + unknown_fst
        out[attribute] = six.to_numpy()
        out[f"{attribute}_binary"] = binarise(six, FST_BINARY).to_numpy()
    out["condition"] = df["label"].to_numpy()
    for column in ("nine_partition_label", "three_partition_label", "qc"):
        if column in df.columns:
            out[column] = df[column].to_numpy()
    out["image_path"] = [f"{images_dir}/{h}.jpg" for h in df["md5hash"]]
    return _loading.labelled(out, report, Path(root), label=label, default=DEFAULT_LABEL, names=CLASS_NAMES, check=check)


def load(cfg: DatasetConfig, *, cache_dir: Path) -> FairDataset:
    """Adapter entry point: metadata, images, cache and splits as a :class:`FairDataset`."""
    return _loading.load_classification(cfg, cache_dir, NAME, OPTIONS, LAYOUT, read_metadata, files=("metadata",))
