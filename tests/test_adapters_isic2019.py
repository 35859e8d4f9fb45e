"""ISIC 2019 adapter against the original CRLF files (counts from their PROVENANCE.md)."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest

from medfairx.config import DatasetConfig, LabelConfig
from medfairx.data.adapters import isic2019
from medfairx.data.adapters._tabular import DataLeakageWarning, MetadataWarning
from medfairx.data.adapters._testing import data_root, placeholder_images
from medfairx.data.labels import MissingImagesWarning
from medfairx.errors import DataError

ROOT = data_root() / "isic2019"
pytestmark = pytest.mark.skipif(not ROOT.is_dir(), reason="shared data folder ../shared/data/isic2019 not present")
DX = {"MEL": 4522, "NV": 12875, "BCC": 3323, "AK": 867, "BKL": 2624, "DF": 239, "VASC": 253, "SCC": 628}
SEX_BY_DX = {  # dx: (empty, female, male)
    "AK": (3, 406, 458), "BCC": (6, 1317, 2000), "BKL": (23, 1134, 1467), "DF": (0, 117, 122),
    "MEL": (81, 1980, 2461), "NV": (271, 6379, 6225), "SCC": (0, 203, 425), "VASC": (0, 125, 128),
}


def _read(root: Path = ROOT, **kw: object) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingImagesWarning)
        warnings.simplefilter("ignore", DataLeakageWarning)
        warnings.simplefilter("ignore", MetadataWarning)
        return isic2019.read_metadata(root, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return _read()


def test_counts_and_codings(df: pd.DataFrame) -> None:
    assert len(df) == 25331 and df.index.is_unique
    assert df["diagnosis"].value_counts().to_dict() == DX
    assert int(df["label"].sum()) == 4522 + 3323 + 867 + 628
    assert int(df.index.str.endswith("_downsampled").sum()) == 2074
    assert df["sex"].value_counts().to_dict() == {"male": 13286, "female": 11661, "unknown": 384}
    assert int(df["age"].isna().sum()) == 437 and df.loc["ISIC_0000000", "age"] == 55.0
    assert (df["age"].dropna() % 5 == 0).all() and df["age"].max() == 85
    sites = df["site"].value_counts().to_dict()
    assert sites["anterior torso"] == 6915 and sites["unknown"] == 2631 and sites["lateral torso"] == 54
    assert df["source"].value_counts().to_dict() == {"BCN": 12413, "HAM": 10015, "unknown": 2084, "MSK4": 819}
    table = pd.crosstab(df["diagnosis"], df["sex"])
    for dx, (empty, female, male) in SEX_BY_DX.items():
        assert (table.loc[dx, "unknown"], table.loc[dx, "female"], table.loc[dx, "male"]) == (empty, female, male)


def test_patient_key_falls_back_to_image_id(df: pd.DataFrame) -> None:
    no_lesion = df["lesion_id"] == ""
    assert int(no_lesion.sum()) == 2084
    assert (df.loc[no_lesion, "patient_id"] == df.index[no_lesion]).all()
    assert df.loc[~no_lesion, "lesion_id"].nunique() == 11847
    assert df["patient_id"].nunique() == 11847 + 2084
    report = df.attrs["report"]
    assert report["files"]["ISIC_2019_Training_Metadata.csv"] == {"rows": 25331, "line_endings": "CRLF"}
    assert report["missing_values"] == {"lesion_id": 2084, "age": 437, "sex": 384, "site": 2631}


def test_warnings_leakage_and_lesion_fallback() -> None:
    with (pytest.warns(DataLeakageWarning, match="all 10,015 HAM10000"),
          pytest.warns(MetadataWarning, match="2,084 rows have an empty lesion_id")):
        isic2019.read_metadata(ROOT, check=False)


def test_label_options_and_ham_exclusion() -> None:
    mel = _read(positive=["MEL"], check=False)
    assert int(mel["label"].sum()) == 4522 and mel.attrs["class_names"] == ("other", "MEL")
    bcc = _read(label=LabelConfig(column="diagnosis", positive=["BCC"]), check=False)
    assert int(bcc["label"].sum()) == 3323
    no_ham = _read(exclude_ham10000=True, check=False)
    assert len(no_ham) == 25331 - 10015 and no_ham.attrs["report"]["excluded"] == {"HAM10000 image (options.exclude_ham10000)": 10015}


def test_edited_copy_with_gender_is_rejected(tmp_path: Path) -> None:
    shutil.copy(ROOT / "ISIC_2019_Training_GroundTruth.csv", tmp_path)
    text = (ROOT / "ISIC_2019_Training_Metadata.csv").read_bytes().replace(b",sex\r\n", b",gender\r\n", 1)
    (tmp_path / "ISIC_2019_Training_Metadata.csv").write_bytes(text)
    with pytest.raises(DataError, match=r"ISIC_2019_Training_Metadata\.csv: column\(s\) \['sex'\].*'gender' looks like a renamed 'sex'"):
        isic2019.read_metadata(tmp_path, check=False)


def test_lf_copy_reads_the_same_and_bad_onehot_names_line(tmp_path: Path) -> None:
    gt = (ROOT / "ISIC_2019_Training_GroundTruth.csv").read_bytes().replace(b"\r\n", b"\n")
    (tmp_path / "ISIC_2019_Training_GroundTruth.csv").write_bytes(gt)
    shutil.copy(ROOT / "ISIC_2019_Training_Metadata.csv", tmp_path)
    lf = _read(tmp_path, check=False)
    assert lf.attrs["report"]["files"]["ISIC_2019_Training_GroundTruth.csv"]["line_endings"] == "LF"
    assert lf["diagnosis"].value_counts().to_dict() == DX
    lines = gt.split(b"\n")
    lines[5] = lines[5].replace(b"0.0", b"1.0", 1)  # two classes on one row
    (tmp_path / "ISIC_2019_Training_GroundTruth.csv").write_bytes(b"\n".join(lines))
    with pytest.raises(DataError, match=r"GroundTruth\.csv, line 6: expected exactly one '1\.0'"):
        _read(tmp_path, check=False)


def test_load_with_placeholder_images(tmp_path: Path) -> None:
    for name in ("ISIC_2019_Training_GroundTruth.csv", "ISIC_2019_Training_Metadata.csv"):
        shutil.copy(ROOT / name, tmp_path)
    ids = pd.read_csv(ROOT / "ISIC_2019_Training_Metadata.csv", usecols=["image"])["image"].iloc[:41].tolist()
    assert "ISIC_0000017_downsampled" in ids
    placeholder_images(tmp_path, [f"ISIC_2019_Training_Input/{i}.jpg" for i in ids])
    cfg = DatasetConfig(
        name="isic", adapter="isic2019", root=tmp_path, image_size=8,
        split={"stratify": False}, groupings={"sex": {"column": "sex"}, "age": {"column": "age", "bins": [50]}},
    )
    with pytest.warns(MissingImagesWarning), pytest.warns(DataLeakageWarning), pytest.warns(MetadataWarning):
        ds = isic2019.load(cfg, cache_dir=tmp_path / "cache")
    assert len(ds) == 41 and "ISIC_0000017_downsampled" in ds.metadata.index
    assert ds.info["skipped_missing_images"] == 25331 - 41
    assert ds.task_data("test", "age").images.dtype.name == "uint8"
