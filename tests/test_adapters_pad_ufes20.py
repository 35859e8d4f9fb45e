"""PAD-UFES-20 adapter on a ``metadata.csv`` written from the documentation (``NOT-STAGED.md``):
the 26-column header, ``fitspatrick`` (sic) floats, FEMALE/MALE, empty background blocks,
the authors' diagnosis totals (BCC 845, ACK 730, NEV 244, SEK 235, SCC 192, MEL 52)."""

from __future__ import annotations

from pathlib import Path

import pytest

from medfairx.config import DatasetConfig
from medfairx.data.adapters import pad_ufes20
from medfairx.data.adapters._tabular import MetadataWarning
from medfairx.data.adapters._testing import placeholder_images
from medfairx.data.ham10000 import MissingImagesWarning
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
