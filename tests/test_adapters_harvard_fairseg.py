"""Harvard-FairSeg adapter on npz subject files written from the documentation
(``NOT-STAGED.md``): keys, integer codings with -1 = unknown, 0-d scalar arrays, and the
disc/cup mask values {0, -1, -2} that public loader code reads with ``abs()``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medfairx.config import DatasetConfig
from medfairx.data.adapters import harvard_fairseg
from medfairx.data.adapters._tabular import MetadataWarning
from medfairx.errors import DataError

SIZE = 24


def write_subject(path: Path, k: int, *, race: int | None = None, mask_values: tuple[int, int] = (-1, -2), drop: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    r = np.hypot(yy - SIZE / 2, xx - SIZE / 2)
    mask = np.where(r < 4, mask_values[1], np.where(r < 8, mask_values[0], 0)).astype(np.int16)
    data = {
        "slo_fundus": (np.random.default_rng(k).random((SIZE, SIZE)) * 255).astype(np.uint8),
        "disc_cup_mask": mask,
        "age": np.array(40.0 + k),
        "gender": np.array(k % 2),
        "race": np.array(k % 3 if race is None else race),
        "ethnicity": np.array(-1 if k % 4 == 0 else k % 2),
        "language": np.array([0, 1, 2, -1][k % 4]),
        "maritalstatus": np.array(k % 6 - 1),
    }
    data.pop(drop, None)
    np.savez(path, **data)


def write_dataset(root: Path, n: int = 24) -> Path:
    for k in range(n):
        write_subject(root / ("Training" if k < 18 else "Test") / f"data_{k + 1:05d}.npz", k)
    return root


def test_attributes_and_codings(tmp_path: Path) -> None:
    df = harvard_fairseg.read_metadata(write_dataset(tmp_path))
    assert len(df) == 24 and df.index[0] == "data_00001" and (df["patient_id"] == df.index).all()
    assert df["folder"].value_counts().to_dict() == {"Training": 18, "Test": 6}
    assert df["sex"].value_counts().to_dict() == {"female": 12, "male": 12}  # 0 = Female
    assert df["race"].value_counts().to_dict() == {"Asian": 8, "Black": 8, "White": 8}
    assert df.loc["data_00001", "ethnicity"] == "unknown" and df.loc["data_00002", "ethnicity"] == "Hispanic"
    assert df["language"].value_counts().to_dict() == {"English": 6, "Spanish": 6, "Others": 6, "unknown": 6}
    assert df.loc["data_00001", "marital_status"] == "unknown" and df.loc["data_00006", "marital_status"] == "Legally Separated"
    assert df["age"].tolist() == [40.0 + k for k in range(24)]
    assert df.attrs["report"]["missing_values"]["ethnicity"] == 6


def test_unknown_code_names_the_file_and_missing_key_errors(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "a", n=3)
    write_subject(root / "Training" / "data_00002.npz", 1, race=5)
    with pytest.warns(MetadataWarning, match=r"column 'race'.*file data_00002\.npz \('5'\)"):
        df = harvard_fairseg.read_metadata(root)
    assert df.loc["data_00002", "race"] == "unknown" and df.attrs["report"]["unknown_codes"] == {"race": {"5": 1}}
    root = write_dataset(tmp_path / "b", n=2)
    write_subject(root / "Training" / "data_00002.npz", 1, drop="gender")
    with pytest.raises(DataError, match=r"data_00002\.npz: key\(s\) \['gender'\] not found"):
        harvard_fairseg.read_metadata(root)


def test_load_segmentation_masks(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "data")
    cfg = DatasetConfig(name="fairseg", adapter="harvard_fairseg", root=root, image_size=SIZE, split={"stratify": False},
                        groupings={"race": {"column": "race"}})
    ds = harvard_fairseg.load(cfg, cache_dir=tmp_path / "cache")
    data = ds.task_data("train", "race")
    assert ds.task == "segmentation" and ds.card.class_names == ("background", "rim", "cup")
    assert data.images.shape[1:] == (3, SIZE, SIZE) and set(np.unique(data.labels)) == {0, 1, 2}
    assert (data.labels[:, SIZE // 2, SIZE // 2] == 2).all()  # the cup (-2) is in the centre


def test_unmapped_mask_values_stop_with_the_fix(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for k in range(6):
        write_subject(root / f"data_{k + 1:05d}.npz", k, mask_values=(128, 255))
    cfg = DatasetConfig(name="fairseg", adapter="harvard_fairseg", root=root, image_size=SIZE, split={"stratify": False})
    ds = harvard_fairseg.load(cfg, cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match=r"disc_cup_mask has value\(s\) \[128, 255\].*options\.mask_values"):
        ds.task_data("train")
    cfg = cfg.model_copy(update={"options": {"mask_values": {0: 0, 128: 1, 255: 2}}})
    data = harvard_fairseg.load(cfg, cache_dir=tmp_path / "cache2").task_data("train")
    assert set(np.unique(data.labels)) == {0, 1, 2}
