"""Fitzpatrick17k adapter against the original files (counts from their PROVENANCE.md)."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medfairx.config import DatasetConfig
from medfairx.data.adapters import fitzpatrick17k
from medfairx.data.adapters._tabular import MetadataWarning
from medfairx.data.adapters._testing import data_root, placeholder_images
from medfairx.data.labels import MissingImagesWarning
from medfairx.errors import DataError

ROOT = data_root() / "fitzpatrick17k"
pytestmark = pytest.mark.skipif(not ROOT.is_dir(), reason="shared data folder ../shared/data/fitzpatrick17k not present")

FST_SCALE = {"1": 2947, "2": 4808, "3": 3308, "4": 2781, "5": 1533, "6": 635, "unknown": 565}
FST_CENTAUR = {"1": 5561, "2": 3180, "3": 2934, "4": 1974, "5": 1293, "6": 562, "unknown": 1073}
MALIGNANT_BY_FST = {"1": 453, "2": 742, "3": 456, "4": 301, "5": 147, "6": 61, "unknown": 103}
WITHOUT_IMAGE = {"2022": 16577 - 2854, "2021": 16577}
# the 2,854 staged images (224-px JPEG copies named by md5hash), counts from PROVENANCE.md
IMAGES_FST_SCALE = {"1": 515, "2": 969, "3": 576, "4": 416, "5": 188, "6": 91, "unknown": 99}
IMAGES_FST_CENTAUR = {"1": 1012, "2": 735, "3": 489, "4": 250, "5": 145, "6": 74, "unknown": 149}
IMAGES_MALIGNANT_BY_FST = {"1": 271, "2": 488, "3": 307, "4": 215, "5": 88, "6": 44, "unknown": 63}
IMAGES_NINE = {
    "inflammatory": 1022, "malignant epidermal": 899, "malignant melanoma": 342, "benign epidermal": 228,
    "benign dermal": 128, "malignant cutaneous lymphoma": 128, "malignant dermal": 107,
}


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingImagesWarning)
        out["2022"] = fitzpatrick17k.read_metadata(ROOT)
        out["2021"] = fitzpatrick17k.read_metadata(ROOT / "original_2021")
    return out


@pytest.mark.parametrize("version", ["2022", "2021"])
def test_counts_and_codings(frames: dict[str, pd.DataFrame], version: str) -> None:
    df = frames[version]
    assert len(df) == 16577 and df.index.is_unique and df.index.name == "sample_id"
    assert df["skin_type"].value_counts().to_dict() == FST_SCALE
    assert (df["patient_id"] == df.index).all()  # no patient id: md5hash
    assert int(df["label"].sum()) == 2263
    assert df["three_partition_label"].value_counts().to_dict() == {"non-neoplastic": 12080, "malignant": 2263, "benign": 2234}
    malignant = df.loc[df["label"] == 1, "skin_type"].value_counts().to_dict()
    assert malignant == MALIGNANT_BY_FST
    binary = df["skin_type_binary"].value_counts().to_dict()
    assert binary == {"1-3": 2947 + 4808 + 3308, "4-6": 2781 + 1533 + 635, "unknown": 565}
    assert df["condition"].nunique() == 114
    assert (df["image_path"] == "images/" + df.index + ".jpg").all()
    report = df.attrs["report"]
    # 2,854 real images sit next to the current file; the 2021 folder has none
    assert report["source_rows"] == 16577 and report["rows_without_image"] == WITHOUT_IMAGE[version]
    assert report["missing_values"]["skin_type"] == 565 and report["unknown_codes"] == {}


def test_both_versions_agree_and_centaur_only_in_2022(frames: dict[str, pd.DataFrame]) -> None:
    new, old = frames["2022"], frames["2021"]
    assert (new.index == old.index).all() and (new["skin_type"] == old["skin_type"]).all()
    assert "skin_type_centaur" not in old.columns
    assert new["skin_type_centaur"].value_counts().to_dict() == FST_CENTAUR
    crosstab = pd.crosstab(new["skin_type"], new["skin_type_centaur"])
    assert crosstab.loc["unknown", "unknown"] == 291 and crosstab.loc["2", "1"] == 2400
    assert np.isclose((new["skin_type"] == new["skin_type_centaur"]).mean(), 0.458, atol=0.001)
    assert any("unnamed leading index" in n for n in old.attrs["report"]["notes"])


def _edited(tmp_path: Path, old: str, new: str) -> Path:
    text = (ROOT / "fitzpatrick17k.csv").read_text().replace(old, new, 1)
    (tmp_path / "fitzpatrick17k.csv").write_text(text)
    return tmp_path


def test_renamed_column_is_a_clear_error(tmp_path: Path) -> None:
    root = _edited(tmp_path, "fitzpatrick_scale", "fitzpatrick_skin")
    with pytest.raises(DataError, match=r"fitzpatrick17k\.csv.*\['fitzpatrick_scale'\].*'fitzpatrick_skin' looks like a renamed") as err:
        fitzpatrick17k.read_metadata(root, check=False)
    assert "expected header: md5hash,fitzpatrick_scale" in str(err.value)


def test_unknown_code_warns_with_line(tmp_path: Path) -> None:
    lines = (ROOT / "fitzpatrick17k.csv").read_text().splitlines(keepends=True)
    parts = lines[3].split(",")
    parts[1] = "7"
    lines[3] = ",".join(parts)
    (tmp_path / "fitzpatrick17k.csv").write_text("".join(lines))
    with pytest.warns(MetadataWarning, match=r"fitzpatrick17k\.csv: column 'fitzpatrick_scale'.*line 4 \('7'\)"):
        df = fitzpatrick17k.read_metadata(tmp_path, check=False)
    assert df.attrs["report"]["unknown_codes"] == {"skin_type": {"7": 1}}
    assert df["skin_type"].iloc[2] == "unknown" and df["skin_type_binary"].iloc[2] == "unknown"


def test_load_with_placeholder_images(tmp_path: Path) -> None:
    shutil.copy(ROOT / "fitzpatrick17k.csv", tmp_path / "fitzpatrick17k.csv")
    ids = pd.read_csv(ROOT / "fitzpatrick17k.csv", usecols=["md5hash"])["md5hash"].iloc[:60]
    placeholder_images(tmp_path, [f"images/{i}.jpg" for i in ids])
    cfg = DatasetConfig(
        name="fitz",
        adapter="fitzpatrick17k",
        root=tmp_path,
        image_size=8,
        split={"train": 0.5, "val": 0.25, "test": 0.25, "stratify": False},
        groupings={"fst": {"column": "skin_type_binary"}},
    )
    with pytest.warns(MissingImagesWarning, match="16,517 of 16,577"):
        ds = fitzpatrick17k.load(cfg, cache_dir=tmp_path / "cache")
    assert len(ds) == 60 and ds.info["skipped_missing_images"] == 16517 and ds.info["source_rows"] == 16577
    assert ds.card.class_names == ("non-malignant", "malignant")
    data = ds.task_data("train", "fst")
    assert data.images.shape[1:] == (3, 8, 8) and set(data.group_names) == {"1-3", "4-6"}
    assert ds.describe()["patient_disjoint"]


@pytest.fixture(scope="module")
def with_images(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Rows of the current file whose image is in ``images/``."""
    df = frames["2022"]
    return df.loc[[(ROOT / p).is_file() for p in df["image_path"]]]


def test_staged_images_match_provenance_counts(with_images: pd.DataFrame) -> None:
    df = with_images
    assert len(df) == 2854 == len(list((ROOT / "images").glob("*.jpg")))
    assert df["skin_type"].value_counts().to_dict() == IMAGES_FST_SCALE
    assert df["skin_type_centaur"].value_counts().to_dict() == IMAGES_FST_CENTAUR
    assert df["three_partition_label"].value_counts().to_dict() == {"malignant": 1476, "non-neoplastic": 1022, "benign": 356}
    assert int(df["label"].sum()) == 1476
    assert df.loc[df["label"] == 1, "skin_type"].value_counts().to_dict() == IMAGES_MALIGNANT_BY_FST
    assert df["nine_partition_label"].value_counts().to_dict() == IMAGES_NINE
    labels = df["condition"].value_counts()
    assert len(labels) == 21 and labels["squamous cell carcinoma"] == 401 and labels.min() == 39


def test_load_real_images_counts_rows_without_image(tmp_path: Path) -> None:
    cfg = DatasetConfig(
        name="fitz", adapter="fitzpatrick17k", root=ROOT, image_size=8,
        groupings={"fst": {"column": "skin_type_binary"}, "fst3": {"column": "skin_type", "map": {
            "1": "1-2", "2": "1-2", "3": "3-4", "4": "3-4", "5": "5-6", "6": "5-6"}}},
    )
    with pytest.warns(MissingImagesWarning, match="13,723 of 16,577"):
        ds = fitzpatrick17k.load(cfg, cache_dir=tmp_path)
    assert len(ds) == 2854 and ds.info["skipped_missing_images"] == 13723
    groups = ds.describe()["groupings"]
    assert {g: v["n"] for g, v in groups["fst"]["groups"].items()} == {"1-3": 515 + 969 + 576, "4-6": 416 + 188 + 91}
    assert groups["fst"]["outside"] == 99 and groups["fst3"]["groups"]["5-6"]["n"] == 188 + 91
    # non-square JPEGs (long side 224) are resized to the square image_size
    assert ds.images("test").shape[1:] == (3, 8, 8)
