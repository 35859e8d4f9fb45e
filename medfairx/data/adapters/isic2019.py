"""ISIC 2019 adapter: training ground truth (one-hot) joined with the training metadata.

* Files: ``ISIC_2019_Training_GroundTruth.csv`` (``image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK``,
  one-hot ``1.0``/``0.0`` strings) and ``ISIC_2019_Training_Metadata.csv``
  (``image,age_approx,anatom_site_general,lesion_id,sex``), CRLF, joined on ``image``.
  Edited public copies (``gender`` for ``sex``, extra columns) are rejected or warned about.
* Image ids keep their ``_downsampled`` suffix (the files carry it too):
  ``<root>/ISIC_2019_Training_Input/<image>.jpg``.
* ``diagnosis`` is the one-hot class; the default label is malignant = MEL, BCC, AK, SCC
  (``options.positive`` or the catalogue ``label`` choose another definition, e.g.
  ``label: {column: diagnosis, positive: [MEL]}``).
* ``patient_id`` is ``lesion_id``; the 2,084 rows with an empty lesion id fall back to the
  image id (counted and warned: those images are split as singletons).
* Attributes: ``age`` (``age_approx``, NaN when empty), ``sex`` (male / female /
  ``unknown``), ``site`` (``anatom_site_general``, ``unknown`` when empty) and ``source``
  (BCN / HAM / MSK4 / ``unknown``, from the lesion-id prefix).
* All 10,015 HAM10000 images are in ISIC 2019 under the same ids: a
  :class:`DataLeakageWarning` says so; ``options.exclude_ham10000: true`` drops them.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from medfairx.config import DatasetConfig, LabelConfig
from medfairx.data.adapters import _loading
from medfairx.data.adapters._tabular import (
    DataLeakageWarning,
    Header,
    MetadataWarning,
    Report,
    Table,
    codes,
    empty_ids,
    numbers,
    read_csv_table,
    unique_ids,
)
from medfairx.data.dataset import FairDataset
from medfairx.errors import DataError

NAME = "isic2019"
CLASSES: tuple[str, ...] = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")
MALIGNANT: tuple[str, ...] = ("MEL", "BCC", "AK", "SCC")
GROUND_TRUTH = Header(required=("image", *CLASSES[:-1]), optional=("UNK",), strict=True)
METADATA = Header(
    required=("image", "age_approx", "anatom_site_general", "lesion_id", "sex"),
    renamed={"gender": "sex"},
    strict=True,
)
SEX = {"male": "male", "female": "female"}
SITES = (
    "anterior torso", "lower extremity", "head/neck", "upper extremity", "posterior torso",
    "palms/soles", "oral/genital", "lateral torso",
)
SOURCES = ("BCN", "HAM", "MSK4")
OPTIONS: dict[str, Any] = {
    "ground_truth": "ISIC_2019_Training_GroundTruth.csv",
    "metadata": "ISIC_2019_Training_Metadata.csv",
    "images_dir": "ISIC_2019_Training_Input",
    "positive": list(MALIGNANT),
    "exclude_ham10000": False,
}
LAYOUT = "ISIC_2019_Training_GroundTruth.csv, ISIC_2019_Training_Metadata.csv and ISIC_2019_Training_Input/<image>.jpg"
HAM_LEAK = (
    "ISIC 2019 contains all 10,015 HAM10000 images under the same ISIC ids (lesion ids HAM_*). "
    "Never train on one and test on the other without removing the overlap "
    "(options.exclude_ham10000: true drops them from ISIC 2019)."
)


def _diagnosis(table: Table) -> pd.Series:
    """The class of each one-hot row; exactly one ``1.0`` per row, or a :class:`DataError`."""
    cols = [c for c in CLASSES if c in table.frame.columns]
    onehot = table.frame[cols]
    ones, zeros = onehot.isin(["1.0", "1"]), onehot.isin(["0.0", "0"])
    bad = ~(ones | zeros).all(axis=1) | (ones.sum(axis=1) != 1)
    if bad.any():
        pos = int(bad.to_numpy().nonzero()[0][0])
        raise DataError(
            f"{table.where(pos)}: expected exactly one '1.0' among {','.join(cols)} and '0.0' elsewhere, found "
            f"{','.join(onehot.iloc[pos])} ({int(bad.sum())} such row(s)). Use the original ground-truth file."
        )
    result: pd.Series = ones.idxmax(axis=1)
    return result


def read_metadata(
    root: Path,
    *,
    ground_truth: str = OPTIONS["ground_truth"],
    metadata: str = OPTIONS["metadata"],
    images_dir: str = OPTIONS["images_dir"],
    positive: list[str] | tuple[str, ...] = MALIGNANT,
    exclude_ham10000: bool = False,
    label: LabelConfig | None = None,
    check: bool = True,
) -> pd.DataFrame:
    """Parse and join the ISIC 2019 training files into the standard metadata frame.

    Args:
        root: dataset folder.
        ground_truth, metadata: file names (relative to ``root``).
        images_dir: image folder (relative to ``root``).
        positive: diagnoses counted as the positive class (default MEL, BCC, AK, SCC).
        exclude_ham10000: drop the HAM10000 images (lesion id ``HAM_*``), counted.
        label: catalogue label definition (overrides ``positive``).
        check: count rows without an image file.

    Returns:
        Frame indexed by ``sample_id`` (= ``image``) with ``label``, ``diagnosis``,
        ``patient_id``, ``lesion_id``, ``age``, ``sex``, ``site``, ``source``, ``image_path``.
    """
    root = Path(root)
    report = Report(NAME)
    gt = read_csv_table(root / ground_truth, GROUND_TRUTH, report)
    md = read_csv_table(root / metadata, METADATA, report)
    for table in (gt, md):
        empty_ids(table.frame["image"], table, "image id")
        unique_ids(table.frame["image"], table, "image id")
    report.source_rows = len(gt.frame)
    if "UNK" in gt.frame.columns and gt.frame["UNK"].isin(["1.0", "1"]).any():
        report.notes.append("UNK column has positives: this is not the 2019 training ground truth")
    diagnosis = pd.Series(_diagnosis(gt).to_numpy(), index=gt.frame["image"].to_numpy())
    meta_pos = pd.Series(range(len(md.frame)), index=md.frame["image"].to_numpy())
    only_gt = diagnosis.index.difference(meta_pos.index)
    only_md = meta_pos.index.difference(diagnosis.index)
    if len(only_gt) or len(only_md):
        warnings.warn(
            f"ISIC 2019: {len(only_gt)} image(s) of {gt.path.name} have no row in {md.path.name} "
            f"(e.g. {list(only_gt[:3])}) and {len(only_md)} metadata row(s) have no label "
            f"(e.g. {list(only_md[:3])}); they are dropped. Use the matching original files.",
            MetadataWarning,
            stacklevel=2,
        )
        report.exclude("image not in both ground truth and metadata", len(only_gt) + len(only_md))
    ids = diagnosis.index[diagnosis.index.isin(meta_pos.index)]
    m = md.frame.loc[meta_pos.loc[ids].to_numpy()]  # keeps the file positions, so warnings name true lines
    sub = Table(m, md.path, md.first_line)
    out = pd.DataFrame(index=ids.to_numpy())
    out["diagnosis"] = diagnosis.loc[ids].to_numpy()
    lesion = m["lesion_id"]
    no_lesion = lesion.eq("")
    out["lesion_id"] = lesion.to_numpy()
    out["patient_id"] = lesion.where(~no_lesion, m["image"]).to_numpy()
    if int(no_lesion.sum()):
        warnings.warn(
            f"{md.path}: {int(no_lesion.sum()):,} rows have an empty lesion_id (first at line "
            f"{md.line(m.index[no_lesion.to_numpy()][0])}); their patient key falls "
            "back to the image id, so they are split as singletons (a lesion with several such images could leak).",
            MetadataWarning,
            stacklevel=2,
        )
        report.notes.append(f"patient_id falls back to the image id for {int(no_lesion.sum())} rows without lesion_id")
    report.missing_values["lesion_id"] = int(no_lesion.sum())
    out["age"] = numbers(sub, "age_approx", report, attribute="age").to_numpy()
    out["sex"] = codes(sub, "sex", SEX, report).to_numpy()
    out["site"] = codes(sub, "anatom_site_general", {s: s for s in SITES}, report, attribute="site").to_numpy()
    prefix = lesion.str.split("_", n=1).str[0]
    out["source"] = prefix.where(prefix.isin(SOURCES), "unknown").to_numpy()
    odd = ~no_lesion & ~prefix.isin(SOURCES)
    if odd.any():
        report.unknown_codes["source"] = {str(k): int(v) for k, v in prefix[odd].value_counts().items()}
    out["image_path"] = [f"{images_dir}/{i}.jpg" for i in out.index]
    if exclude_ham10000:
        ham = out["source"].eq("HAM")
        report.exclude("HAM10000 image (options.exclude_ham10000)", int(ham.sum()))
        out = out.loc[~ham]
    else:
        report.notes.append(HAM_LEAK)
        warnings.warn(HAM_LEAK, DataLeakageWarning, stacklevel=2)
    default = LabelConfig(column="diagnosis", positive=list(positive))
    names = ("benign", "malignant") if tuple(positive) == MALIGNANT else ("other", "+".join(positive))
    return _loading.labelled(out, report, root, label=label, default=default, names=names, check=check)


def load(cfg: DatasetConfig, *, cache_dir: Path) -> FairDataset:
    """Adapter entry point: metadata, images, cache and splits as a :class:`FairDataset`."""
    return _loading.load_classification(cfg, cache_dir, NAME, OPTIONS, LAYOUT, read_metadata, files=("ground_truth", "metadata"))
