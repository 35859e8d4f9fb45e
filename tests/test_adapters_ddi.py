"""DDI adapter on a ``ddi_metadata.csv`` written from the documentation (``NOT-STAGED.md``):
unnamed index column, TRUE/FALSE strings, skin_tone codes 12/34/56; published totals
I-II 208, III-IV 241, V-VI 207, 171 malignant of 656."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from medfairx.config import DatasetConfig
from medfairx.data.adapters import ddi
from medfairx.data.adapters._tabular import MetadataWarning
from medfairx.data.adapters._testing import placeholder_images
from medfairx.data.labels import MissingImagesWarning
from medfairx.errors import DataError

TONES = ["12"] * 208 + ["34"] * 241 + ["56"] * 207


def write_metadata(root: Path, *, malignant_column: str = "malignant", first_tone: str | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    lines = [f",DDI_ID,DDI_file,skin_tone,{malignant_column},disease"]
    for i, tone in enumerate(TONES):
        malignant = (i * 171) // 656 != ((i + 1) * 171) // 656  # exactly 171 spread evenly
        value = ("1" if malignant else "0") if malignant_column != "malignant" else ("TRUE" if malignant else "FALSE")
        tone = first_tone if (i == 0 and first_tone) else tone
        disease = "melanoma-in-situ" if malignant else "nodular-melanoma-(nm)" if i % 5 == 0 else "verruca-vulgaris"
        lines.append(f"{i},{i + 1},{i + 1:06d}.png,{tone},{value},{disease}")
    (root / "ddi_metadata.csv").write_text("\n".join(lines) + "\n")
    return root


def test_counts_and_codings(tmp_path: Path) -> None:
    with pytest.warns(MissingImagesWarning, match="656 of 656"):
        df = ddi.read_metadata(write_metadata(tmp_path))
    assert len(df) == 656 and df.index[0] == "000001" and df.loc["000001", "image_path"] == "images/000001.png"
    assert df["skin_tone"].value_counts().to_dict() == {"34": 241, "12": 208, "56": 207}
    assert df["skin_tone"].map(type).eq(str).all()  # group codes, never numbers
    assert int(df["label"].sum()) == 171 and df.attrs["class_names"] == ("benign", "malignant")
    assert df["patient_id"].iloc[0] == "1" and "Unnamed: 0" not in df.columns
    assert any("unnamed leading index" in n for n in df.attrs["report"]["notes"])


def test_alternative_malignancy_column(tmp_path: Path) -> None:
    df = ddi.read_metadata(write_metadata(tmp_path, malignant_column="malignancy(malig=1)"), check=False)
    assert int(df["label"].sum()) == 171


def test_unknown_skin_tone_warns_and_renamed_column_errors(tmp_path: Path) -> None:
    root = write_metadata(tmp_path / "a", first_tone="7")
    with pytest.warns(MetadataWarning, match=r"column 'skin_tone'.*line 2 \('7'\)"):
        df = ddi.read_metadata(root, check=False)
    assert df["skin_tone"].iloc[0] == "unknown" and df.attrs["report"]["unknown_codes"] == {"skin_tone": {"7": 1}}
    root = write_metadata(tmp_path / "b")
    text = (root / "ddi_metadata.csv").read_text().replace("skin_tone", "fitzpatrick", 1)
    (root / "ddi_metadata.csv").write_text(text)
    with pytest.raises(DataError, match=r"ddi_metadata\.csv: column\(s\) \['skin_tone'\] not found"):
        ddi.read_metadata(root, check=False)


def test_load_with_placeholder_images(tmp_path: Path) -> None:
    root = write_metadata(tmp_path)
    placeholder_images(root, [f"images/{i:06d}.png" for i in range(1, 657, 8)])
    cfg = DatasetConfig(name="ddi", adapter="ddi", root=root, image_size=8,
                        groupings={"tone": {"column": "skin_tone", "map": {"12": "I-II", "34": "III-IV", "56": "V-VI"}}})
    with pytest.warns(MissingImagesWarning):
        ds = ddi.load(cfg, cache_dir=tmp_path / "cache")
    assert len(ds) == 82 and ds.task_data("val", "tone").group_names == ("I-II", "III-IV", "V-VI")
    assert isinstance(ds.metadata, pd.DataFrame)
