"""CheXpert adapter on label files and a demographics table written from the documentation
(``NOT-STAGED.md``): the 19-column header, ``Path`` with patient/study, 1.0/0.0/-1.0/empty
coding, lateral views with empty AP/PA, ``PRIMARY_RACE`` free text."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from medfairx.config import DatasetConfig
from medfairx.data.adapters import chexpert
from medfairx.data.adapters._cxr import FINDINGS, race_group
from medfairx.data.adapters._testing import placeholder_images
from medfairx.data.labels import MissingImagesWarning
from medfairx.errors import DataError

BASE = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA"]
RACES = ["White", "White, non-Hispanic", "Black or African American", "Asian, non-Hispanic", "Other", "Patient Refused", "Unknown"]
# train rows: (patient, study, view, sex, age, No Finding, Pleural Effusion)
TRAIN = [
    (1, 1, "frontal", "Female", "68", "1.0", ""),
    (1, 1, "lateral", "Female", "68", "1.0", ""),
    (2, 1, "frontal", "Male", "87", "", "-1.0"),
    (2, 2, "frontal", "Male", "87", "-1.0", "1.0"),
    (3, 1, "frontal", "Unknown", "0", "0.0", "0.0"),
    (4, 1, "frontal", "Male", "41", "", "1.0"),
    (5, 1, "frontal", "Female", "55", "1.0", ""),
    (6, 1, "frontal", "Male", "33", "-1.0", ""),
]


def _row(path: str, view: str, sex: str, age: str, values: dict[str, str]) -> list[str]:
    ap = "" if view == "lateral" else "AP"
    return [path, sex, age, view.capitalize(), ap, *[values.get(f, "") for f in FINDINGS]]


def write_chexpert(root: Path) -> Path:
    folder = root / "CheXpert-v1.0-small"
    folder.mkdir(parents=True, exist_ok=True)
    header = ",".join(BASE + list(FINDINGS))
    rows = []
    for p, s, view, sex, age, nf, pe in TRAIN:
        path = f"CheXpert-v1.0-small/train/patient{p:05d}/study{s}/view1_{view}.jpg"
        rows.append(_row(path, view, sex, age, {"No Finding": nf, "Pleural Effusion": pe}))
    (folder / "train.csv").write_text("\n".join([header, *[",".join(r) for r in rows]]) + "\n")
    valid = [_row("CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg", "frontal", "Male", "73",
                  {f: ("1.0" if f in ("Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity") else "0.0") for f in FINDINGS})]
    for k in range(1, 234):
        p = 64541 + k % 200
        valid.append(_row(f"CheXpert-v1.0-small/valid/patient{p}/study{1 + k // 200}/view{1 + k % 2}_frontal.jpg", "frontal",
                          "Female" if k % 2 else "Male", str(20 + k % 70),
                          {f: ("1.0" if (k + i) % 9 == 0 else "0.0") for i, f in enumerate(FINDINGS)}))
    (folder / "valid.csv").write_text("\n".join([header, *[",".join(r) for r in valid]]) + "\n")
    patients = [f"patient{p:05d}" for p in range(1, 7)] + [f"patient{64541 + k}" for k in range(200)]
    demo = pd.DataFrame({
        "PATIENT": patients[:-1],  # the last patient has no demographics row
        "GENDER": ["Female", "Male", "Unknown", "Female", "Female", "Male"] + ["Male"] * 199,
        "AGE_AT_CXR": ["68"] * 205,
        "PRIMARY_RACE": [RACES[i % len(RACES)] for i in range(205)],
        "ETHNICITY": ["Non-Hispanic/Non-Latino"] * 205,
    })
    demo.to_csv(root / "demo.csv", index=False)
    return root


def test_valid_file_counts(tmp_path: Path) -> None:
    root = write_chexpert(tmp_path)
    df = chexpert.read_metadata(root, csvs=["CheXpert-v1.0-small/valid.csv"], demographics=None, check=False)
    assert len(df) == 234 and df["patient_id"].nunique() == 200
    first = df.loc["valid/patient64541/study1/view1_frontal"]
    assert (first["patient_id"], first["sex"], first["age"], first["ap_pa"]) == ("patient64541", "male", 73.0, "AP")
    ecm = chexpert.read_metadata(root, csvs=["CheXpert-v1.0-small/valid.csv"], finding="Cardiomegaly", demographics=None, check=False)
    assert ecm.loc["valid/patient64541/study1/view1_frontal", "label"] == 1


@pytest.mark.parametrize(("policy", "n", "positives"), [("u_ignore", 5, 2), ("u_zeros", 7, 2), ("u_ones", 7, 4)])
def test_uncertain_policies(tmp_path: Path, policy: str, n: int, positives: int) -> None:
    root = write_chexpert(tmp_path)
    df = chexpert.read_metadata(root, csvs=["CheXpert-v1.0-small/train.csv"], demographics=None, uncertain=policy, check=False)
    assert len(df) == n and int(df["label"].sum()) == positives  # the lateral view is always excluded
    report = df.attrs["report"]
    assert report["excluded"]["lateral view (options.frontal_only)"] == 1
    if policy == "u_ignore":
        assert report["excluded"]["uncertain 'No Finding' (u_ignore)"] == 2
    assert df.loc["train/patient00003/study1/view1_frontal", "sex"] == "unknown"
    assert pd.isna(df.loc["train/patient00003/study1/view1_frontal", "age"])  # age 0 is implausible
    effusion = chexpert.read_metadata(root, csvs=["CheXpert-v1.0-small/train.csv"], finding="Pleural Effusion",
                                      demographics=None, uncertain=policy, check=False)
    assert int(effusion["label"].sum()) == {"u_ignore": 2, "u_zeros": 2, "u_ones": 3}[policy]


def test_race_from_demographics(tmp_path: Path) -> None:
    root = write_chexpert(tmp_path)
    with pytest.warns(MissingImagesWarning):
        df = chexpert.read_metadata(root, demographics="demo.csv")
    assert len(df) == 234 + 5
    assert df.loc["train/patient00002/study1/view1_frontal", "race"] == "White, non-Hispanic"
    groups = df.drop_duplicates("patient_id").set_index("patient_id")["race_group"]
    assert groups["patient00002"] == "White" and groups["patient00004"] == "Asian" and groups["patient00005"] == "Other"
    assert groups["patient64541"] == "unknown"  # "Unknown"
    assert df.loc[df["patient_id"] == "patient64740", "race_group"].eq("unknown").all()  # no demographics row
    assert set(df["race_binary"]) == {"White", "non-White", "unknown"}
    assert df.attrs["report"]["missing_values"]["demographics row"] == int((df["patient_id"] == "patient64740").sum())


def test_race_rule() -> None:
    assert [race_group(v) for v in ("White, non-Hispanic", "HISPANIC/LATINO - PUERTO RICAN", "ASIAN - CHINESE",
                                    "PATIENT DECLINED TO ANSWER", "Native Hawaiian or Other Pacific Islander", "")] == \
        ["White", "Hispanic", "Asian", "unknown", "Other", "unknown"]


def test_edited_copies_are_rejected(tmp_path: Path) -> None:
    root = write_chexpert(tmp_path)
    valid = root / "CheXpert-v1.0-small/valid.csv"
    valid.write_text(valid.read_text().replace("No Finding", "No_Finding", 1))
    with pytest.raises(DataError, match=r"\['No Finding'\] not found \('No_Finding' looks like a renamed 'No Finding'\)"):
        chexpert.read_metadata(root, csvs=["CheXpert-v1.0-small/valid.csv"], demographics=None, check=False)
    train = root / "CheXpert-v1.0-small/train.csv"
    train.write_text(train.read_text().replace("CheXpert-v1.0-small/train/patient00001/study1/", "chexpert/train/patient00001_study1_"))
    with pytest.raises(DataError, match=r"train\.csv, line 2: Path .* has no 'patientN/studyN/' part"):
        chexpert.read_metadata(root, csvs=["CheXpert-v1.0-small/train.csv"], demographics=None, check=False)


def test_load_with_placeholder_images(tmp_path: Path) -> None:
    root = write_chexpert(tmp_path)
    df = chexpert.read_metadata(root, demographics="demo.csv", check=False)
    placeholder_images(root, df["image_path"])
    cfg = DatasetConfig(name="cxp", adapter="chexpert", root=root, image_size=8, options={"demographics": "demo.csv"},
                        groupings={"race": {"column": "race_binary"}, "sex": {"column": "sex"}})
    ds = chexpert.load(cfg, cache_dir=tmp_path / "cache")
    assert len(ds) == len(df) and ds.describe()["patient_disjoint"]
