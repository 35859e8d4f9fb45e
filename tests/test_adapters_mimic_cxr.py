"""MIMIC-CXR adapter on gzipped files written from the documentation (``NOT-STAGED.md``):
per-image metadata, per-study labels in alphabetical column order, the official split,
MIMIC-IV patients and admissions (``race``, or ``ethnicity`` in v1.0)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from medfairx.config import DatasetConfig
from medfairx.data.adapters import mimic_cxr
from medfairx.data.adapters._cxr import FINDINGS
from medfairx.data.adapters._testing import placeholder_images
from medfairx.data.labels import MissingImagesWarning
from medfairx.errors import DataError

# (subject, study, dicom, view, year, No Finding)
IMAGES = [
    (10000032, 50414267, "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014", "PA", 2180, "1.0"),
    (10000032, 50414267, "174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962", "LATERAL", 2180, "1.0"),
    (10000032, 53189527, "2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab", "AP", 2182, "-1.0"),
    (10000764, 57375967, "096052b7-d256dc40-453a102b-fa7d01c6-1b22c6b4", "AP", 2190, ""),
    (10000898, 50771383, "3a1d9c2e-1b4f2a17-8d6e0c5a-77f0e1b2-9c4d3e21", "PA", 2150, "0.0"),
    (10001176, 54684191, "4b2e0d3f-2c5a3b28-9e7f1d6b-88a1f2c3-0d5e4f32", "PA", 2186, "1.0"),
]
ADMISSIONS = [  # subject, race: 10000032 mixed (2 White, 1 Black) -> White by mode; 10000764 tie; 10001176 none
    (10000032, "WHITE"), (10000032, "WHITE - RUSSIAN"), (10000032, "BLACK/AFRICAN AMERICAN"),
    (10000764, "ASIAN - CHINESE"), (10000764, "HISPANIC/LATINO - PUERTO RICAN"), (10000764, "UNKNOWN"),
    (10000898, "PATIENT DECLINED TO ANSWER"),
]


def write_mimic(root: Path, *, race_column: str = "race") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    meta = pd.DataFrame({
        "dicom_id": [i[2] for i in IMAGES], "subject_id": [i[0] for i in IMAGES], "study_id": [i[1] for i in IMAGES],
        "PerformedProcedureStepDescription": "CHEST (PA AND LAT)", "ViewPosition": [i[3] for i in IMAGES],
        "Rows": 3056, "Columns": 2544, "StudyDate": [f"{i[4]}0512" for i in IMAGES], "StudyTime": "142240.0",
        "ProcedureCodeSequence_CodeMeaning": "CHEST (PA AND LAT)", "ViewCodeSequence_CodeMeaning": "postero-anterior",
        "PatientOrientationCodeSequence_CodeMeaning": "Erect",
    })
    meta.to_csv(root / "mimic-cxr-2.0.0-metadata.csv.gz", index=False)
    studies = {(i[0], i[1]): i[5] for i in IMAGES}
    labels = pd.DataFrame([{"subject_id": s, "study_id": st, **{f: (v if f == "No Finding" else "") for f in sorted(FINDINGS)}}
                           for (s, st), v in studies.items()])
    assert list(labels.columns[2:]) == sorted(FINDINGS)  # alphabetical, unlike CheXpert
    labels.to_csv(root / "mimic-cxr-2.0.0-chexpert.csv.gz", index=False)
    split = meta[["dicom_id", "study_id", "subject_id"]].assign(split=["train", "train", "train", "validate", "test", "train"])
    split.to_csv(root / "mimic-cxr-2.0.0-split.csv.gz", index=False)
    (root / "hosp").mkdir(exist_ok=True)
    pd.DataFrame({"subject_id": [10000032, 10000764, 10000898, 10001176], "gender": ["F", "M", "F", "M"],
                  "anchor_age": [52, 86, 91, 60], "anchor_year": [2180, 2132, 2149, 2186],
                  "anchor_year_group": "2014 - 2016", "dod": ""}).to_csv(root / "hosp/patients.csv.gz", index=False)
    adm = pd.DataFrame([{"subject_id": s, "hadm_id": 20000000 + k, race_column: r} for k, (s, r) in enumerate(ADMISSIONS)])
    adm.to_csv(root / "hosp/admissions.csv.gz", index=False)
    return root


def test_join_labels_views_and_demographics(tmp_path: Path) -> None:
    root = write_mimic(tmp_path)
    with pytest.warns(MissingImagesWarning, match="4 of 4"):
        df = mimic_cxr.read_metadata(root)
    assert list(df.index) == [IMAGES[i][2] for i in (0, 3, 4, 5)]  # lateral and the uncertain study are dropped
    report = df.attrs["report"]
    assert report["excluded"]["view not in ['PA', 'AP']"] == 1 and report["excluded"]["uncertain 'No Finding' (u_ignore)"] == 1
    assert df["label"].tolist() == [1, 0, 0, 1]  # empty = not mentioned = negative
    first = df.iloc[0]
    assert (first["patient_id"], first["sex"], first["age"], first["official_split"]) == ("10000032", "female", 52.0, "train")
    assert first["image_path"] == f"files/p10/p10000032/s50414267/{IMAGES[0][2]}.jpg"
    assert df.loc[IMAGES[4][2], "age"] == 91 + 1  # anchor_age + year(StudyDate) - anchor_year
    assert first["race_group"] == "White" and first["race"] == "WHITE" and first["race_binary"] == "White"
    assert df.loc[IMAGES[3][2], "race_group"] == "unknown"  # Asian/Hispanic tie under the mode rule
    assert df.loc[IMAGES[5][2], "race_group"] == "unknown"  # no admission
    assert any("1 images (1 patients) have no MIMIC-IV admission" in n for n in report["notes"])


def test_consistent_rule_legacy_ethnicity_and_policies(tmp_path: Path) -> None:
    root = write_mimic(tmp_path, race_column="ethnicity")
    df = mimic_cxr.read_metadata(root, race_rule="consistent", uncertain="u_ones", check=False)
    assert len(df) == 5 and df.loc[IMAGES[2][2], "label"] == 1
    assert df.loc[IMAGES[0][2], "race_group"] == "unknown"  # White and Black across admissions
    excluded = df.attrs["report"]["excluded"]
    assert excluded["patients set to unknown, race: different groups across admissions (race_rule consistent)"] == 2


def test_renamed_label_column_is_an_error(tmp_path: Path) -> None:
    root = write_mimic(tmp_path)
    labels = pd.read_csv(root / "mimic-cxr-2.0.0-chexpert.csv.gz").rename(columns={"No Finding": "No_Finding"})
    labels.to_csv(root / "mimic-cxr-2.0.0-chexpert.csv.gz", index=False)
    with pytest.raises(DataError, match=r"chexpert\.csv\.gz: column\(s\) \['No Finding'\] not found"):
        mimic_cxr.read_metadata(root, check=False)


def test_load_with_placeholder_images(tmp_path: Path) -> None:
    root = write_mimic(tmp_path)
    df = mimic_cxr.read_metadata(root, uncertain="u_zeros", check=False)
    placeholder_images(root, df["image_path"])
    cfg = DatasetConfig(name="mimic", adapter="mimic_cxr", root=root, image_size=8, options={"uncertain": "u_zeros"},
                        split={"stratify": False}, groupings={"sex": {"column": "sex"}})
    ds = mimic_cxr.load(cfg, cache_dir=tmp_path / "cache")
    assert len(ds) == 5 and ds.describe()["patient_disjoint"]
