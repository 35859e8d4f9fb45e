"""CheXpert adapter: ``train.csv`` / ``valid.csv`` joined with the demographics file.

Tested on fixtures written from the documentation (``../shared/data/chexpert/NOT-STAGED.md``);
no original file was available.

* ``root`` is the folder that holds ``CheXpert-v1.0-small/`` (``Path`` values start with it).
  ``options.csvs`` lists the label files (default train and valid).
* Label: one observation (``options.finding``, default ``"No Finding"`` as in MEDFAIR;
  ``"Pleural Effusion"`` is the usual disease task). ``1.0`` positive, ``0.0`` negative,
  empty = not mentioned = negative, ``-1.0`` uncertain handled by ``options.uncertain``:
  ``u_ignore`` (default: the row is dropped and counted), ``u_zeros``, ``u_ones``.
* ``patient_id`` (``patientNNNNN``) and ``study`` are parsed from ``Path``; frontal views
  only by default (``options.frontal_only``).
* ``sex`` (Male/Female/Unknown → male/female/unknown) and ``age`` come from the label
  file (age ``0`` is implausible and read as missing, counted).
* Race from ``CHEXPERT DEMO.xlsx`` (``options.demographics``; optional, ``.csv`` accepted),
  joined on ``PATIENT``: ``race`` as published (``PRIMARY_RACE``), ``race_group`` (White /
  Black / Asian / Hispanic / Other by substring) and ``race_binary`` (White / non-White),
  ``ethnicity``. Patients without a demographics row, and values such as ``Unknown`` or
  ``Patient Refused``, are ``unknown`` (counted). Disagreements between ``GENDER`` and
  ``Sex`` are counted; the label file's ``Sex`` is used.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from medfairx.config import DatasetConfig, LabelConfig
from medfairx.data.adapters import _loading
from medfairx.data.adapters._cxr import (
    DEFAULT_FINDING,
    FINDINGS,
    finding_labels,
    race_columns,
)
from medfairx.data.adapters._tabular import (
    MISSING,
    Header,
    Report,
    Table,
    check_header,
    codes,
    empty_ids,
    numbers,
    option_path,
    read_csv_table,
    unique_ids,
)
from medfairx.data.dataset import FairDataset
from medfairx.errors import DataError

NAME = "chexpert"
BASE = ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA")
DEMO = Header(required=("PATIENT", "PRIMARY_RACE"), optional=("GENDER", "AGE_AT_CXR", "ETHNICITY"))
SEX = {"Male": "male", "Female": "female"}
PATIENT_RE = re.compile(r"(patient\d+)/(study\d+)/")
OPTIONS: dict[str, Any] = {
    "csvs": ["CheXpert-v1.0-small/train.csv", "CheXpert-v1.0-small/valid.csv"],
    "demographics": "CHEXPERT DEMO.xlsx",
    "finding": DEFAULT_FINDING,
    "uncertain": "u_ignore",
    "frontal_only": True,
}
LAYOUT = (
    "CheXpert-v1.0-small/{train,valid}.csv, the images under CheXpert-v1.0-small/{train,valid}/patientN/studyN/, "
    "and optionally 'CHEXPERT DEMO.xlsx' (race)"
)


def _header(finding: str) -> Header:
    if finding not in FINDINGS:
        raise DataError(f"CheXpert option finding: {finding!r} is not an observation; use one of: {', '.join(FINDINGS)}.")
    return Header(required=(*BASE, finding), optional=tuple(f for f in FINDINGS if f != finding), strict=True)


def read_demographics(path: Path, report: Report) -> pd.DataFrame:
    """``CHEXPERT DEMO.xlsx`` (or a CSV export) indexed by ``PATIENT``."""
    if path.suffix.lower() == ".csv":
        table = read_csv_table(path, DEMO, report)
    else:
        try:
            raw = pd.read_excel(path, dtype=str, na_filter=False)
        except ImportError as exc:
            raise DataError(f"Reading {path} needs openpyxl ({exc}). Run `pip install openpyxl`.") from None
        except (OSError, ValueError) as exc:
            raise DataError(f"Cannot read CheXpert demographics {path}: {exc}.") from None
        report.files[path.name] = {"rows": len(raw), "line_endings": "n/a"}
        table = Table(check_header(raw, path, DEMO, report), path, unit="row")
    unique_ids(table.frame["PATIENT"], table, "PATIENT")
    result: pd.DataFrame = table.frame.set_index("PATIENT")
    return result


def read_metadata(
    root: Path,
    *,
    csvs: list[str] | tuple[str, ...] = tuple(OPTIONS["csvs"]),
    demographics: str | None = OPTIONS["demographics"],
    finding: str = DEFAULT_FINDING,
    uncertain: str = "u_ignore",
    frontal_only: bool = True,
    label: LabelConfig | None = None,
    check: bool = True,
) -> pd.DataFrame:
    """Parse the CheXpert label CSVs (and the demographics file if present).

    Returns:
        Frame indexed by ``sample_id`` (``Path`` without the archive folder and suffix)
        with ``label``, ``finding`` (positive/negative), ``patient_id``, ``study``,
        ``source_file``, ``view``, ``ap_pa``, ``sex``, ``age``, and, with demographics,
        ``race``, ``race_group``, ``race_binary``, ``ethnicity``; ``image_path`` = ``Path``.
    """
    root = Path(root)
    report = Report(NAME)
    header = _header(finding)
    parts = []
    for name in csvs:
        table = read_csv_table(option_path(root, name), header, report)
        df = table.frame
        empty_ids(df["Path"], table, "Path")
        unique_ids(df["Path"], table, "Path")
        key = df["Path"].str.extract(PATIENT_RE)
        bad = key[0].isna()
        if bad.any():
            raise DataError(
                f"{table.where(int(bad.to_numpy().nonzero()[0][0]))}: Path {df['Path'][bad].iloc[0]!r} has no "
                "'patientN/studyN/' part. Use the original CSV (edited copies flatten the paths)."
            )
        part = pd.DataFrame(index=df["Path"].str.split("/", n=1).str[-1].str.rsplit(".", n=1).str[0].to_numpy())
        part["patient_id"] = key[0].to_numpy()
        part["study"] = key[1].to_numpy()
        part["source_file"] = Path(name).name
        part["view"] = df["Frontal/Lateral"].str.lower().to_numpy()
        part["ap_pa"] = df["AP/PA"].where(df["AP/PA"].ne(""), MISSING).to_numpy()
        part["sex"] = codes(table, "Sex", SEX, report, attribute="sex", missing=("", "Unknown")).to_numpy()
        age = numbers(table, "Age", report, attribute="age")
        zero = age.eq(0)
        if zero.any():
            report.notes.append(f"{Path(name).name}: {int(zero.sum())} rows with age 0 (implausible) read as missing")
            report.missing_values["age"] = report.missing_values.get("age", 0) + int(zero.sum())
        part["age"] = age.where(~zero).to_numpy()
        part["finding"] = finding_labels(table, finding, uncertain, report).to_numpy()
        part["image_path"] = df["Path"].to_numpy()
        report.source_rows += len(df)
        parts.append(part)
    out = pd.concat(parts)
    if out.index.has_duplicates:
        raise DataError(f"CheXpert: image {out.index[out.index.duplicated()][0]!r} is listed in two of {list(csvs)}.")
    dropped = out["finding"].isna()
    out = out.loc[~dropped]
    if frontal_only:
        lateral = out["view"].ne("frontal")
        report.exclude("lateral view (options.frontal_only)", int(lateral.sum()))
        out = out.loc[~lateral]
    demo_path = option_path(root, demographics) if demographics else None
    if demo_path is not None and demo_path.is_file():
        demo = read_demographics(demo_path, report)
        matched = out["patient_id"].isin(demo.index)
        report.missing_values["demographics row"] = int((~matched).sum())
        published = out["patient_id"].map(demo["PRIMARY_RACE"]).fillna("")
        out = out.join(race_columns(published, report))
        if "ETHNICITY" in demo.columns:
            eth = out["patient_id"].map(demo["ETHNICITY"]).fillna("")
            out["ethnicity"] = eth.where(eth.ne(""), MISSING)
        if "GENDER" in demo.columns:
            gender = out["patient_id"].map(demo["GENDER"].str.lower())
            differ = matched & gender.notna() & out["sex"].ne("unknown") & gender.ne(out["sex"])
            report.notes.append(f"{int(differ.sum())} images where demographics GENDER differs from Sex (Sex is used)")
    else:
        report.notes.append(f"no demographics file ({demographics}): no race attributes")
    default = LabelConfig(column="finding", positive=["positive"])
    return _loading.labelled(out, report, root, label=label, default=default, names=(f"no {finding}", finding), check=check)


def load(cfg: DatasetConfig, *, cache_dir: Path) -> FairDataset:
    """Adapter entry point: metadata, images, cache and patient-level splits."""
    return _loading.load_classification(cfg, cache_dir, NAME, OPTIONS, LAYOUT, read_metadata, files=("csvs", "demographics"))
