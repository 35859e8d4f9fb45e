"""PAD-UFES-20 adapter: smartphone skin-lesion images, ``metadata.csv`` (26 columns).

Tested on the original ``metadata.csv`` (2,298 rows) and 403 of its images (224-px PNG copies,
RGBA and RGB, 147-224 px); rows whose image is absent are counted and skipped.

* Header validated against the original 26 columns; a 27th ``image_path`` column (an edited
  public copy) is ignored with a warning.
* Label: ``diagnostic`` ∈ BCC, SCC, MEL (biopsy-proven cancers) vs ACK, NEV, SEK by
  default; ``options.positive`` (e.g. add ``ACK``) or the catalogue ``label`` change it.
* Attributes: ``age`` (years), ``sex`` (``gender`` FEMALE/MALE → female/male),
  ``skin_type`` (``fitspatrick``, sic: ``1.0``–``6.0`` → ``"1"``–``"6"``) and
  ``skin_type_binary`` (``1-3`` / ``4-6``), ``region``. Empty cells are ``unknown``; the
  rows whose whole background block is empty (about 800) are counted in the report.
* ``patient_id`` is the file's ``patient_id`` (several lesions and images per patient).
* Images: ``img_id`` is looked up anywhere under ``<root>/images`` (the download splits
  them into ``imgs_part_1..3``). PNGs with an alpha channel are read as RGB (alpha dropped:
  it is 255 everywhere in the originals); every image is resized to ``image_size``.
"""

from __future__ import annotations

import os
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
    empty_ids,
    numbers,
    read_id_table,
)
from medfairx.data.dataset import FairDataset

NAME = "pad_ufes20"
BACKGROUND = (
    "smoke", "drink", "background_father", "background_mother", "pesticide", "gender",
    "skin_cancer_history", "cancer_history", "has_piped_water", "has_sewage_system", "fitspatrick",
)
HEADER = Header(
    required=("patient_id", "lesion_id", "age", "gender", "fitspatrick", "region", "diagnostic", "img_id"),
    optional=(
        "smoke", "drink", "background_father", "background_mother", "pesticide", "skin_cancer_history",
        "cancer_history", "has_piped_water", "has_sewage_system", "diameter_1", "diameter_2", "itch",
        "grew", "hurt", "changed", "bleed", "elevation", "biopsed",
    ),
    renamed={"fitzpatrick": "fitspatrick", "sex": "gender"},
    strict=True,
)
DIAGNOSES = ("BCC", "ACK", "NEV", "SEK", "SCC", "MEL")
CANCER = ("BCC", "SCC", "MEL")
SEX = {"FEMALE": "female", "MALE": "male"}
FST = {f"{i}.0": str(i) for i in range(1, 7)} | {str(i): str(i) for i in range(1, 7)}
OPTIONS: dict[str, Any] = {"metadata": "metadata.csv", "images_dir": "images", "positive": list(CANCER)}
LAYOUT = "metadata.csv and images/ (img_id files anywhere below it, e.g. images/imgs_part_1/PAT_*.png)"


def _image_index(folder: Path) -> dict[str, str]:
    """File name → path relative to the folder's parent, for every file below ``folder``."""
    found: dict[str, str] = {}
    if folder.is_dir():
        for dirpath, _, files in os.walk(folder):
            rel = Path(dirpath).relative_to(folder.parent)
            for name in files:
                found.setdefault(name, str(rel / name))
    return found


def read_metadata(
    root: Path,
    *,
    metadata: str = OPTIONS["metadata"],
    images_dir: str = OPTIONS["images_dir"],
    positive: list[str] | tuple[str, ...] = CANCER,
    label: LabelConfig | None = None,
    check: bool = True,
) -> pd.DataFrame:
    """Parse PAD-UFES-20 ``metadata.csv`` into the standard metadata frame.

    Returns:
        Frame indexed by ``sample_id`` (= ``img_id``) with ``label``, ``diagnostic``,
        ``patient_id``, ``lesion_id``, ``age``, ``sex``, ``skin_type``,
        ``skin_type_binary``, ``region``, ``background_missing`` (bool), ``image_path``.
    """
    root = Path(root)
    report = Report(NAME)
    table = read_id_table(root / metadata, HEADER, report, "img_id")
    df = table.frame
    empty_ids(df["patient_id"], table, "patient_id")
    out = pd.DataFrame(index=df["img_id"].to_numpy())
    out["diagnostic"] = codes(table, "diagnostic", {d: d for d in DIAGNOSES}, report).to_numpy()
    out["patient_id"] = df["patient_id"].to_numpy()
    out["lesion_id"] = df["lesion_id"].to_numpy()
    out["age"] = numbers(table, "age", report).to_numpy()
    out["sex"] = codes(table, "gender", SEX, report, attribute="sex").to_numpy()
    fst = codes(table, "fitspatrick", FST, report, attribute="skin_type")
    out["skin_type"] = fst.to_numpy()
    out["skin_type_binary"] = binarise(fst, {"1-3": ("1", "2", "3"), "4-6": ("4", "5", "6")}).to_numpy()
    out["region"] = df["region"].where(df["region"].ne(""), "unknown").to_numpy()
    background = [c for c in BACKGROUND if c in df.columns]
    no_background = df[background].eq("").all(axis=1).to_numpy()
    out["background_missing"] = no_background
    report.notes.append(f"{int(no_background.sum())} rows have every background field empty (sex and skin type unknown)")
    index = _image_index(root / images_dir)
    out["image_path"] = [index.get(i, f"{images_dir}/{i}") for i in out.index]
    unlabelled = out["diagnostic"].eq("unknown").to_numpy()
    if unlabelled.any():
        report.exclude("diagnostic not one of " + "/".join(DIAGNOSES), int(unlabelled.sum()))
        out = out.loc[~unlabelled]
    default = LabelConfig(column="diagnostic", positive=list(positive))
    names = ("non-cancer", "cancer") if tuple(positive) == CANCER else ("negative", "+".join(positive))
    return _loading.labelled(out, report, root, label=label, default=default, names=names, check=check)


def load(cfg: DatasetConfig, *, cache_dir: Path) -> FairDataset:
    """Adapter entry point: metadata, images, cache and splits as a :class:`FairDataset`."""
    return _loading.load_classification(cfg, cache_dir, NAME, OPTIONS, LAYOUT, read_metadata, files=("metadata",))
