"""PAD-UFES-20 adapter on the real folder (counts from its PROVENANCE.md) and on a fixture
``metadata.csv`` written from the documentation:
the 26-column header, ``fitspatrick`` (sic) floats, FEMALE/MALE, empty background blocks,
the authors' diagnosis totals (BCC 845, ACK 730, NEV 244, SEK 235, SCC 192, MEL 52)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medfairx.config import DatasetConfig
from medfairx.data import imaging
from medfairx.data.adapters import pad_ufes20
from medfairx.data.adapters._tabular import MetadataWarning
from medfairx.data.adapters._testing import data_root, placeholder_images
from medfairx.data.labels import MissingImagesWarning
from medfairx.errors import DataError

HEADER = ("patient_id,lesion_id,smoke,drink,background_father,background_mother,age,pesticide,gender,"
          "skin_cancer_history,cancer_history,has_piped_water,has_sewage_system,fitspatrick,region,diameter_1,"
          "diameter_2,diagnostic,itch,grew,hurt,changed,bleed,elevation,img_id,biopsed")
DX = {"BCC": 845, "ACK": 730, "NEV": 244, "SEK": 235, "SCC": 192, "MEL": 52}
N_NO_BACKGROUND = 804


def write_metadata(root: Path, *, extra_column: bool = False) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    columns = HEADER.split(",")
    dxs = [d for d, n in DX.items() for _ in range(n)]
    lines = [HEADER + (",image_path" if extra_column else "")]
    for i, dx in enumerate(dxs):
        patient, lesion = 1000 + i // 2, 2000 + i // 2
        row = dict.fromkeys(columns, "")
        row.update(patient_id=f"PAT_{patient}", lesion_id=str(lesion), age=str(50 + i % 30), region="NOSE",
                   diagnostic=dx, itch="False", grew="True", hurt="UNK", changed="False", bleed="False",
                   elevation="True", img_id=f"PAT_{patient}_{lesion}_{i}.png", biopsed="True")
        if not (i % 2 == 0 and i < 2 * N_NO_BACKGROUND):  # else: the whole background block is empty
            row.update(smoke="False", drink="True", background_father="POMERANIA", background_mother="BRASIL",
                       pesticide="False", gender="FEMALE" if i % 2 else "MALE", skin_cancer_history="True",
                       cancer_history="False", has_piped_water="True", has_sewage_system="True",
                       fitspatrick=f"{1 + i % 6}.0", diameter_1="6.0", diameter_2="5.0")
        cells = [row[c] for c in columns]
        if extra_column:
            cells.append(f"files/images/imgs_part_1/{row['img_id']}")
        lines.append(",".join(cells))
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    return root


def test_fixture_matches_the_documented_header(tmp_path: Path) -> None:
    lines = (write_metadata(tmp_path) / "metadata.csv").read_text().splitlines()
    assert all(len(line.split(",")) == 26 for line in lines)


def test_counts_and_codings(tmp_path: Path) -> None:
    with pytest.warns(MissingImagesWarning):
        df = pad_ufes20.read_metadata(write_metadata(tmp_path))
    assert len(df) == 2298 and df["diagnostic"].value_counts().to_dict() == DX
    assert int(df["label"].sum()) == 845 + 192 + 52 and df.attrs["class_names"] == ("non-cancer", "cancer")
    assert int(df["background_missing"].sum()) == N_NO_BACKGROUND
    assert int((df["sex"] == "unknown").sum()) == N_NO_BACKGROUND and set(df["sex"]) == {"male", "female", "unknown"}
    assert int((df["skin_type"] == "unknown").sum()) == N_NO_BACKGROUND
    assert set(df["skin_type"]) == {"1", "2", "3", "4", "5", "6", "unknown"}
    assert df.attrs["report"]["missing_values"]["sex"] == N_NO_BACKGROUND
    ack = pad_ufes20.read_metadata(tmp_path, positive=["BCC", "SCC", "MEL", "ACK"], check=False)
    assert int(ack["label"].sum()) == 845 + 192 + 52 + 730


def test_edited_copy_warns_and_renamed_column_errors(tmp_path: Path) -> None:
    root = write_metadata(tmp_path / "a", extra_column=True)
    with pytest.warns(MetadataWarning, match=r"\['image_path'\] are not in the original header"):
        pad_ufes20.read_metadata(root, check=False)
    root = write_metadata(tmp_path / "b")
    text = (root / "metadata.csv").read_text().replace("fitspatrick", "fitzpatrick", 1)
    (root / "metadata.csv").write_text(text)
    with pytest.raises(DataError, match=r"\['fitspatrick'\] not found \('fitzpatrick' looks like a renamed 'fitspatrick'\)"):
        pad_ufes20.read_metadata(root, check=False)


def test_images_found_in_part_folders_and_loaded(tmp_path: Path) -> None:
    root = write_metadata(tmp_path)
    df = pad_ufes20.read_metadata(root, check=False)
    placeholder_images(root, [f"images/imgs_part_{1 + k % 3}/{i}" for k, i in enumerate(df.index[::40])])
    cfg = DatasetConfig(name="pad", adapter="pad_ufes20", root=root, image_size=8, groupings={"sex": {"column": "sex"}})
    with pytest.warns(MissingImagesWarning):
        ds = pad_ufes20.load(cfg, cache_dir=tmp_path / "cache")
    assert len(ds) == len(df.index[::40]) and ds.describe()["patient_disjoint"]


# --- the real folder: original metadata.csv and 403 real images (counts from its PROVENANCE.md) ---

REAL = data_root() / "pad-ufes-20"
real_data = pytest.mark.skipif(not REAL.is_dir(), reason="shared data folder ../shared/data/pad-ufes-20 not present")
IMAGES_DX = {"BCC": 116, "ACK": 110, "NEV": 96, "SEK": 35, "MEL": 26, "SCC": 20}
IMAGES_FST = {"2": 139, "3": 66, "1": 25, "4": 12, "5": 1, "6": 1, "unknown": 159}
IMAGES_AGE = {"<30": 31, "30-44": 57, "45-59": 123, "60-74": 120, "75+": 72}


@pytest.fixture(scope="module")
def real() -> pd.DataFrame:
    with pytest.warns(MissingImagesWarning, match="1,895 of 2,298 metadata rows have no image"):
        return pad_ufes20.read_metadata(REAL)


@real_data
def test_real_metadata_matches_provenance_counts(real: pd.DataFrame) -> None:
    assert len(real) == 2298 and real["diagnostic"].value_counts().to_dict() == DX
    assert real["patient_id"].nunique() == 1373 and real["lesion_id"].nunique() == 1641
    assert int(real["background_missing"].sum()) == N_NO_BACKGROUND
    report = real.attrs["report"]
    assert report["files"]["metadata.csv"] == {"rows": 2298, "line_endings": "LF"}
    assert report["rows_without_image"] == 1895 and report["unknown_codes"] == {}
    assert report["missing_values"] == {"sex": N_NO_BACKGROUND, "skin_type": N_NO_BACKGROUND}


@real_data
def test_real_images_match_provenance_counts(real: pd.DataFrame) -> None:
    df = real.loc[[(REAL / p).is_file() for p in real["image_path"]]]
    assert len(df) == 403 and {p.split("/")[1] for p in df["image_path"]} == {"imgs_part_1", "imgs_part_2", "imgs_part_3"}
    assert df["diagnostic"].value_counts().to_dict() == IMAGES_DX and int(df["label"].sum()) == 162
    assert df["sex"].value_counts().to_dict() == {"female": 131, "male": 113, "unknown": 159}
    assert df["skin_type"].value_counts().to_dict() == IMAGES_FST
    bands = pd.cut(df["age"], [0, 30, 45, 60, 75, 200], right=False, labels=list(IMAGES_AGE))
    assert bands.value_counts().to_dict() == IMAGES_AGE
    assert df.groupby("sex")["label"].sum().to_dict() == {"female": 92, "male": 70, "unknown": 0}
    assert df["patient_id"].nunique() == 358 and df["lesion_id"].nunique() == 376
    complete = real.groupby("patient_id")["image_path"].apply(lambda s: all((REAL / p).is_file() for p in s))
    assert int(complete.loc[df["patient_id"].unique()].sum()) == 171


@real_data
def test_real_images_load_rgba_and_mixed_sizes(tmp_path: Path) -> None:
    files = sorted((REAL / "images").rglob("*.png"))
    modes, sizes = {}, set()
    for path in files:
        with Image.open(path) as im:
            modes[im.mode] = modes.get(im.mode, 0) + 1
            sizes.add(im.size)
    assert modes == {"RGBA": 259, "RGB": 144} and len(sizes) > 1  # alpha channel, 147-224 px
    cfg = DatasetConfig(name="pad", adapter="pad_ufes20", root=REAL, image_size=16, groupings={"sex": {"column": "sex"}})
    with pytest.warns(MissingImagesWarning):
        ds = pad_ufes20.load(cfg, cache_dir=tmp_path)
    assert len(ds) == 403 and ds.info["skipped_missing_images"] == 1895 and ds.describe()["patient_disjoint"]
    groups = ds.describe()["groupings"]["sex"]
    assert {g: v["n"] for g, v in groups["groups"].items()} == {"female": 131, "male": 113} and groups["outside"] == 159
    rgba = next(p for p in files if Image.open(p).mode == "RGBA")
    row = ds.metadata.index.get_loc(rgba.name)
    assert np.array_equal(ds.source.read(np.array([row]))[0][0], imaging.load_rgb(rgba, (16, 16)))
