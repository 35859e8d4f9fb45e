"""PAPILA adapter: clinical spreadsheets of both eyes + fundus images (glaucoma).

Tested on fixtures written from the documentation (``../shared/data/papila/NOT-STAGED.md``);
no original file was available.

* ``ClinicalData/patient_data_od.xlsx`` (right eyes) and ``patient_data_os.xlsx`` (left
  eyes), one row per patient. The header spans two rows (group headings such as
  ``Refractive_Defect`` / ``IOP`` above the column names): the row holding ``ID`` and
  ``Age`` is found among the first rows, and empty names are taken from the row above.
  CSV exports of the sheets (same layout) are accepted too. Reading ``.xlsx`` needs
  ``openpyxl``.
* ``ID`` ``#002`` → images ``FundusImages/RET002OD.jpg`` / ``RET002OS.jpg``; sample ids
  ``RET002OD`` / ``RET002OS``; ``patient_id`` is the ID, so both eyes of a patient always
  fall in the same split.
* ``Gender``: 0 = male, 1 = female. ``Diagnosis`` (per eye): 0 healthy, 1 glaucoma,
  2 suspicious. Label glaucoma vs healthy; suspicious eyes are excluded and counted by
  default (``options.suspect: exclude``; or ``negative`` / ``positive``).
* Attributes: ``age`` (years), ``sex``, ``eye`` (OD / OS).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from medfairx.config import DatasetConfig, LabelConfig
from medfairx.data.adapters import _loading
from medfairx.data.adapters._tabular import (
    Header,
    MetadataWarning,
    Report,
    Table,
    check_header,
    choose,
    codes,
    numbers,
    unique_ids,
)
from medfairx.data.dataset import FairDataset
from medfairx.errors import DataError

NAME = "papila"
HEADER = Header(
    required=("ID", "Age", "Gender", "Diagnosis"),
    optional=(
        "dioptre_1", "dioptre_2", "astigmatism", "Phakic/Pseudophakic", "Pneumatic", "Perkins",
        "Pachymetry", "Axial_Length", "VF_MD",
    ),
)
SEX = {"0": "male", "1": "female", "0.0": "male", "1.0": "female"}
DIAGNOSIS = {"0": "healthy", "1": "glaucoma", "2": "suspicious"}
DIAGNOSIS |= {f"{k}.0": v for k, v in DIAGNOSIS.items()}
ID_RE = re.compile(r"^#(\d+)$")
OPTIONS: dict[str, Any] = {
    "od": "ClinicalData/patient_data_od.xlsx",
    "os": "ClinicalData/patient_data_os.xlsx",
    "images_dir": "FundusImages",
    "suspect": "exclude",
}
SUSPECT = ("exclude", "negative", "positive")
LAYOUT = "ClinicalData/patient_data_od.xlsx, ClinicalData/patient_data_os.xlsx and FundusImages/RET<ID><OD|OS>.jpg"
HEADER_SEARCH_ROWS = 6


def read_sheet(path: Path, report: Report) -> Table:
    """One clinical spreadsheet (``.xlsx`` or a CSV export) with its two-row header resolved."""
    if not path.is_file():
        raise DataError(f"PAPILA clinical file {path} does not exist. Expected layout: {LAYOUT}.")
    try:
        if path.suffix.lower() == ".csv":
            raw = pd.read_csv(path, header=None, dtype=str, keep_default_na=False, na_filter=False)
        else:
            raw = pd.read_excel(path, header=None, dtype=str, na_filter=False)
    except ImportError as exc:
        raise DataError(f"Reading {path} needs openpyxl ({exc}). Run `pip install openpyxl`.") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"Cannot read PAPILA clinical file {path}: {exc}.") from None
    raw = raw.apply(lambda s: s.astype(str).str.strip().replace("nan", ""))
    row = None
    for i in range(min(HEADER_SEARCH_ROWS, len(raw))):
        cells = {c.lower() for c in raw.iloc[i]}
        if "id" in cells and "age" in cells:
            row = i
            break
    if row is None:
        raise DataError(
            f"{path}: no header row with 'ID' and 'Age' in the first {HEADER_SEARCH_ROWS} rows.\n"
            f"  expected columns: {HEADER.expected}\nUse the original PAPILA spreadsheet (two-row header)."
        )
    names = list(raw.iloc[row])
    above = list(raw.iloc[row - 1]) if row else [""] * len(names)
    names = [n or a or f"column_{j + 1}" for j, (n, a) in enumerate(zip(names, above, strict=False))]
    canonical = {n.lower(): n for n in HEADER.required}
    names = [canonical.get(n.lower(), n) for n in names]
    frame = raw.iloc[row + 1 :].reset_index(drop=True)
    frame.columns = names
    frame = frame.loc[frame.ne("").any(axis=1)].reset_index(drop=True)  # trailing empty rows of the sheet
    report.files[path.name] = {"rows": len(frame), "line_endings": "n/a", "header_row": row + 1}
    frame = check_header(frame, path, HEADER, report)
    table = Table(frame, path, first_line=row + 2, unit="row")
    if len(frame) and not ID_RE.match(frame["ID"].iloc[0]):
        raise DataError(
            f"{table.where(0)}: the first data row's ID is {frame['ID'].iloc[0]!r}, not a patient id such as '#002'. "
            "The header row was probably misread; use the original spreadsheet."
        )
    return table


def _eye(table: Table, eye: str, images_dir: str, report: Report) -> pd.DataFrame:
    df = table.frame
    ids = df["ID"]
    bad = ids[~ids.str.match(ID_RE)]
    if len(bad):
        raise DataError(f"{table.where(bad.index[0])}: ID {bad.iloc[0]!r} is not of the form '#002'. Fix the cell.")
    unique_ids(ids, table, "ID")
    number = ids.str.slice(1)
    out: pd.DataFrame = pd.DataFrame(index=("RET" + number + eye).to_numpy())
    out["patient_id"] = ids.to_numpy()
    out["eye"] = eye
    out["age"] = numbers(table, "Age", report, attribute="age").to_numpy()
    out["sex"] = codes(table, "Gender", SEX, report, attribute="sex").to_numpy()
    out["diagnosis"] = codes(table, "Diagnosis", DIAGNOSIS, report, attribute="diagnosis").to_numpy()
    out["image_path"] = [f"{images_dir}/{i}.jpg" for i in out.index]
    return out


def read_metadata(
    root: Path,
    *,
    od: str = OPTIONS["od"],
    os: str = OPTIONS["os"],
    images_dir: str = OPTIONS["images_dir"],
    suspect: str = "exclude",
    label: LabelConfig | None = None,
    check: bool = True,
) -> pd.DataFrame:
    """Parse both PAPILA clinical spreadsheets into one frame, one row per eye.

    Args:
        root: dataset folder.
        od, os: spreadsheets of the right / left eyes (relative to ``root``).
        images_dir: fundus image folder.
        suspect: what to do with ``Diagnosis = 2`` (suspicious): ``exclude`` (default,
            counted), ``negative`` or ``positive``.
        label: catalogue label definition (overrides the glaucoma label).
        check: count rows without an image file.

    Returns:
        Frame indexed by ``sample_id`` (``RET002OD``) with ``label``, ``diagnosis``,
        ``patient_id`` (``#002``), ``eye``, ``age``, ``sex``, ``image_path``.
    """
    root = Path(root)
    choose(suspect, SUSPECT, "papila option suspect")
    report = Report(NAME)
    tables = {"OD": read_sheet(root / od, report), "OS": read_sheet(root / os, report)}
    eyes = {eye: _eye(t, eye, images_dir, report) for eye, t in tables.items()}
    report.source_rows = sum(len(e) for e in eyes.values())
    right, left = (set(eyes[e]["patient_id"]) for e in ("OD", "OS"))
    if right != left:
        only = sorted(right ^ left)
        warnings.warn(
            f"PAPILA: {len(only)} patient(s) appear in only one of {od} / {os} (e.g. {only[:3]}); the paper lists "
            "the same patients in both. Their single eye is kept.",
            MetadataWarning,
            stacklevel=2,
        )
        report.notes.append(f"{len(only)} patients with one eye only")
    both = eyes["OD"].reset_index().merge(eyes["OS"].reset_index(), on="patient_id", suffixes=("_od", "_os"))
    disagree = int(((both["sex_od"] != both["sex_os"]) | (both["age_od"] != both["age_os"])).sum())
    if disagree:
        report.notes.append(f"{disagree} patients have a different age or sex in the two spreadsheets")
    out = pd.concat([eyes["OD"], eyes["OS"]])
    unknown = out["diagnosis"].eq("unknown")
    if unknown.any():
        report.exclude("diagnosis not 0/1/2", int(unknown.sum()))
        out = out.loc[~unknown]
    suspicious = out["diagnosis"].eq("suspicious")
    positive = ["glaucoma"]
    if suspect == "exclude":
        report.exclude("suspicious diagnosis (options.suspect: exclude)", int(suspicious.sum()))
        out = out.loc[~suspicious]
    elif suspect == "positive":
        positive.append("suspicious")
    default = LabelConfig(column="diagnosis", positive=positive)
    return _loading.labelled(out, report, root, label=label, default=default, names=("no glaucoma", "glaucoma"), check=check)


def load(cfg: DatasetConfig, *, cache_dir: Path) -> FairDataset:
    """Adapter entry point: metadata, images, cache and (patient-level) splits."""

    def read(root: Path, **kwargs: Any) -> pd.DataFrame:
        choose(str(kwargs["suspect"]), SUSPECT, f"datasets.{cfg.name}.options.suspect")
        return read_metadata(root, **kwargs)

    return _loading.load_classification(cfg, cache_dir, NAME, OPTIONS, LAYOUT, read, files=("od", "os"))
