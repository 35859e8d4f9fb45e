"""PAPILA adapter on spreadsheets written from the documentation (``NOT-STAGED.md``):
two-row header, ``#002`` ids, Gender 0 = male / 1 = female, Diagnosis 0/1/2 per eye;
the paper's totals (244 patients, 488 eyes: 333 healthy, 89 glaucoma, 66 suspicious)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from medfairx.config import DatasetConfig
from medfairx.data.adapters import papila
from medfairx.data.adapters._tabular import MetadataWarning
from medfairx.data.adapters._testing import placeholder_images
from medfairx.data.labels import MissingImagesWarning
from medfairx.errors import DataError

openpyxl = pytest.importorskip("openpyxl")

GROUPS = ["", "", "", "", "Refractive_Defect", "", "", "", "IOP", "", "", "", ""]
NAMES = ["ID", "Age", "Gender", "Diagnosis", "dioptre_1", "dioptre_2", "astigmatism", "Phakic/Pseudophakic",
         "Pneumatic", "Perkins", "Pachymetry", "Axial_Length", "VF_MD"]
N_PATIENTS = 244


def _diagnoses() -> np.ndarray:
    codes = np.array([0] * 333 + [1] * 89 + [2] * 66)
    return np.random.default_rng(0).permutation(codes).reshape(2, N_PATIENTS)


def write_clinical(root: Path, *, names: list[str] = NAMES, edit: dict[tuple[str, int, str], object] | None = None) -> Path:
    """``ClinicalData/patient_data_{od,os}.xlsx`` as documented (numbers stored as numbers)."""
    folder = root / "ClinicalData"
    folder.mkdir(parents=True, exist_ok=True)
    diag = _diagnoses()
    for e, eye in enumerate(("od", "os")):
        wb = openpyxl.Workbook()
        ws = wb.active
        ws.append(GROUPS)
        ws.append(names)
        for p in range(N_PATIENTS):
            row = {"ID": f"#{p + 2:03d}", "Age": 40 + p % 45, "Gender": p % 2, "Diagnosis": int(diag[e, p]),
                   "Pneumatic": 15.5, "Perkins": None if p % 7 else 14}
            for (eye_key, pat, col), value in (edit or {}).items():
                if eye_key == eye and pat == p:
                    row[col] = value
            ws.append([row.get(n) for n in NAMES])
        wb.save(folder / f"patient_data_{eye}.xlsx")
    return root


def test_counts_and_codings(tmp_path: Path) -> None:
    root = write_clinical(tmp_path)
    with pytest.warns(MissingImagesWarning, match="422 of 422"):
        df = papila.read_metadata(root)
    assert len(df) == 488 - 66 and int(df["label"].sum()) == 89
    assert df["diagnosis"].value_counts().to_dict() == {"healthy": 333, "glaucoma": 89}
    report = df.attrs["report"]
    assert report["source_rows"] == 488 and report["excluded"] == {"suspicious diagnosis (options.suspect: exclude)": 66}
    assert report["files"]["patient_data_od.xlsx"]["header_row"] == 2
    assert set(df.loc[df["patient_id"] == "#002", "sex"]) == {"male"}
    assert set(df.loc[df["patient_id"] == "#003", "sex"]) == {"female"}
    assert df["sex"].value_counts().sum() == 422 and "unknown" not in set(df["sex"])
    first = df.index[0]
    assert first.startswith("RET") and df.loc[first, "image_path"] == f"FundusImages/{first}.jpg"
    assert df.loc[first, "patient_id"] == "#" + first[3:6]
    assert df["patient_id"].nunique() <= N_PATIENTS and set(df["eye"]) == {"OD", "OS"}
    kept = papila.read_metadata(root, suspect="negative", check=False)
    assert len(kept) == 488 and int(kept["label"].sum()) == 89
    assert int(papila.read_metadata(root, suspect="positive", check=False)["label"].sum()) == 89 + 66


def test_unknown_code_warns_with_row_and_renamed_header_errors(tmp_path: Path) -> None:
    root = write_clinical(tmp_path / "a", edit={("os", 4, "Gender"): 3})
    with pytest.warns(MetadataWarning, match=r"patient_data_os\.xlsx: column 'Gender'.*row 7 \('3'\)"):
        df = papila.read_metadata(root, check=False)
    assert df.attrs["report"]["unknown_codes"] == {"sex": {"3": 1}}
    renamed = [("Sex" if n == "Gender" else n) for n in NAMES]
    root = write_clinical(tmp_path / "b", names=renamed)
    with pytest.raises(DataError, match=r"(?s)patient_data_od\.xlsx: column\(s\) \['Gender'\] not found"
                                         r".*expected header: ID,Age,Gender,Diagnosis"):
        papila.read_metadata(root, check=False)


def test_bad_id_names_the_row(tmp_path: Path) -> None:
    root = write_clinical(tmp_path, edit={("od", 3, "ID"): "005"})
    with pytest.raises(DataError, match=r"patient_data_od\.xlsx, row 6: ID '005' is not of the form '#002'"):
        papila.read_metadata(root, check=False)


def test_load_splits_by_patient(tmp_path: Path) -> None:
    root = write_clinical(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingImagesWarning)
        df = papila.read_metadata(root)
    placeholder_images(root, df["image_path"].iloc[:150])
    placeholder_images(root, df.loc[df["eye"] == "OS", "image_path"])
    cfg = DatasetConfig(name="papila", adapter="papila", root=root, image_size=8,
                        groupings={"sex": {"column": "sex"}, "age": {"column": "age", "bins": [60]}})
    with pytest.warns(MissingImagesWarning):
        ds = papila.load(cfg, cache_dir=tmp_path / "cache")
    assert ds.describe()["patient_disjoint"] and ds.info["excluded: suspicious diagnosis (options.suspect: exclude)"] == 66
    split_of = {sid: s for s in ("train", "val", "test") for sid in ds.splits.ids(s)}
    both = ds.metadata.groupby("patient_id").filter(lambda g: len(g) == 2)
    assert len(both) > 0
    assert all(len({split_of[s] for s in g.index}) == 1 for _, g in both.groupby("patient_id"))
