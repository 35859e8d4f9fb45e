"""TN-SCUI 2020 adapter against the original bare-CR train.csv (counts from its PROVENANCE.md)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from medfairx.config import DatasetConfig
from medfairx.data.adapters import tn_scui2020
from medfairx.data.adapters._testing import data_root, placeholder_images
from medfairx.data.labels import MissingImagesWarning
from medfairx.errors import DataError

ROOT = data_root() / "tn-scui2020"
pytestmark = pytest.mark.skipif(not ROOT.is_dir(), reason="shared data folder ../shared/data/tn-scui2020 not present")


def test_counts_codings_and_cr_line_endings() -> None:
    raw = (ROOT / "train.csv").read_bytes()
    assert raw.count(b"\n") == 1  # the quirk under test: bare CR separators
    with pytest.warns(MissingImagesWarning, match="3,644 of 3,644"):
        df = tn_scui2020.read_metadata(ROOT)
    assert len(df) == 3644 and df.index.is_unique
    assert list(df.index[:2]) == ["5189.PNG", "2090.PNG"]
    assert df["category"].value_counts().to_dict() == {"malignant": 2003, "benign": 1641}
    assert int(df["label"].sum()) == 2003
    numbers = df.index.str.removesuffix(".PNG").astype(int)
    assert numbers.min() == 2 and numbers.max() == 9767
    assert df.attrs["report"]["files"]["train.csv"] == {"rows": 3644, "line_endings": "CR"}
    assert (df["image_path"] == "image/" + df.index).all() and (df["mask_path"] == "mask/" + df.index).all()


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_lf_and_crlf_copies_parse_the_same(tmp_path: Path, newline: bytes) -> None:
    text = (ROOT / "train.csv").read_bytes().replace(b"\r\n", b"\r").replace(b"\r", newline)
    (tmp_path / "train.csv").write_bytes(text)
    df = tn_scui2020.read_metadata(tmp_path, check=False)
    assert len(df) == 3644 and int(df["label"].sum()) == 2003
    assert df.attrs["report"]["files"]["train.csv"]["line_endings"] == ("LF" if newline == b"\n" else "CRLF")


def _side_table(path: Path, ids: list[str]) -> None:
    rows = [{"ID": i.removesuffix(".PNG"), "sex": "female" if k % 3 else "male", "age": "" if k == 5 else str(30 + k % 40)}
            for k, i in enumerate(ids)]
    pd.DataFrame(rows).to_csv(path, index=False)


def test_side_table_attributes_and_missing_ids(tmp_path: Path) -> None:
    ids = pd.read_csv(ROOT / "train.csv")["ID"].tolist()
    _side_table(tmp_path / "attrs.csv", ids)
    df = tn_scui2020.read_metadata(ROOT, attributes_csv=str(tmp_path / "attrs.csv"), check=False)
    assert df["sex"].value_counts().to_dict() == {"female": 2429, "male": 1215}
    assert df["age"].dtype == float and int(df["age"].isna().sum()) == 1
    _side_table(tmp_path / "short.csv", ids[:-3])
    with pytest.raises(DataError, match=r"short\.csv: 3 of 3,644 image ids are not in column 'ID'.*Add a row"):
        tn_scui2020.read_metadata(ROOT, attributes_csv=str(tmp_path / "short.csv"), check=False)


@pytest.mark.parametrize("task", ["classification", "segmentation"])
def test_load_with_placeholder_images(tmp_path: Path, task: str) -> None:
    shutil.copy(ROOT / "train.csv", tmp_path)
    ids = pd.read_csv(ROOT / "train.csv")["ID"].tolist()
    _side_table(tmp_path / "attrs.csv", ids)
    placeholder_images(tmp_path, [f"image/{i}" for i in ids[:40]])
    placeholder_images(tmp_path, [f"mask/{i}" for i in ids[:40]], mask=True)
    cfg = DatasetConfig(
        name="tn", adapter="tn_scui2020", root=tmp_path, task=task, image_size=8, split={"stratify": False},
        options={"attributes_csv": "attrs.csv"}, groupings={"sex": {"column": "sex"}},
    )
    with pytest.warns(MissingImagesWarning):
        ds = tn_scui2020.load(cfg, cache_dir=tmp_path / "cache")
    assert len(ds) == 40 and ds.card.attributes == ("sex", "age")
    data = ds.task_data("train", "sex")
    if task == "segmentation":
        assert data.labels.shape[1:] == (8, 8) and set(data.labels.ravel()) == {0, 1}
        assert ds.card.class_names == ("background", "nodule")
    else:
        assert data.labels.ndim == 1 and ds.card.class_names == ("benign", "malignant")
