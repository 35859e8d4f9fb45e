"""HAM10000 adapter and HDF5 cache on the real data, checked against PROVENANCE.md's counts."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medfairx.config import DatasetConfig, load_catalogue
from medfairx.data import imaging
from medfairx.data.adapters import ham10000
from medfairx.data.cache import CacheRebuildWarning
from medfairx.data.dataset import FairDataset
from medfairx.data.groupings import BinsRule
from medfairx.data.labels import MissingImagesWarning
from medfairx.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[1]
HAM = Path(os.environ.get("MEDFAIRX_DATA") or REPO / ".." / "shared" / "data") / "ham10000"
SUBSET = "HAM10000_metadata_subset.csv"


def config(name: str = "ham10000", **changes: Any) -> DatasetConfig:
    """The repository catalogue's entry with ``changes`` (``options`` are merged)."""
    base = load_catalogue(REPO / "datasets.yaml").datasets[name]
    options = {**base.options, **changes.pop("options", {})}
    return base.model_copy(update={"options": options, **changes})


def small_metadata(tmp_path: Path, ids: list[str], extra_rows: str = "") -> str:
    """A metadata file with the original lines of ``ids`` (plus ``extra_rows``)."""
    lines = (HAM / SUBSET).read_text().splitlines()
    keep = [line for line in lines[1:] if line.split(",")[1] in set(ids)]
    path = tmp_path / "meta.csv"
    path.write_text("\n".join([lines[0], *keep]) + "\n" + extra_rows)
    return str(path)


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> FairDataset:
    with pytest.warns(MissingImagesWarning, match="4,617 of 10,015 metadata rows have no image"):
        return ham10000.load(config(image_size=32), cache_dir=tmp_path_factory.mktemp("full"))


@pytest.fixture(scope="module")
def subset_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("subset")


@pytest.fixture(scope="module")
def subset(subset_cache: Path) -> FairDataset:
    with warnings.catch_warnings():
        warnings.simplefilter("error", MissingImagesWarning)  # every subset row has an image
        return ham10000.load(config(image_size=32, options={"metadata": SUBSET}), cache_dir=subset_cache)


def test_full_metadata_counts_match_provenance(full: FairDataset) -> None:
    meta = full.metadata
    assert (full.info["source_rows"], full.info["skipped_missing_images"], len(meta)) == (10015, 4617, 5398)
    assert meta["dx"].value_counts().to_dict() == {
        "nv": 3916, "bkl": 520, "mel": 424, "bcc": 244, "akiec": 165, "vasc": 75, "df": 54
    }
    assert int(meta["label"].sum()) == 833
    assert meta["sex"].value_counts().to_dict() == {"male": 2904, "female": 2459, "unknown": 35}
    assert meta["dataset"].value_counts().to_dict() == {
        "vidir_molemax": 2866, "vidir_modern": 1205, "rosendahl": 1121, "vienna_dias": 206
    }
    mel = meta["dx"] == "mel"
    assert mel.groupby(meta["sex"]).sum().to_dict() == {"female": 174, "male": 250, "unknown": 0}
    malignant_by_site = meta.groupby("dataset")["label"].sum().to_dict()
    assert malignant_by_site == {"rosendahl": 473, "vidir_modern": 307, "vienna_dias": 36, "vidir_molemax": 17}
    assert meta["localization"].value_counts()[["lower extremity", "back", "unknown", "acral"]].tolist() == [1149, 1095, 149, 2]
    ages = BinsRule("age5", column="age", bins=(29, 44, 59, 74), labels=("<30", "30-44", "45-59", "60-74", "75+"))(meta)
    assert ages.value_counts().to_dict() == {"<30": 291, "30-44": 1209, "45-59": 2060, "60-74": 1146, "75+": 657}
    assert int(ages.isna().sum()) == 35 and int(meta["age"].isna().sum()) == 35
    assert (meta["patient_id"] == meta["lesion_id"]).all()


def test_full_groupings_splits_and_card(full: FairDataset) -> None:
    sex = full.assign("sex")
    assert list(sex.cat.categories) == ["male", "female"] and int(sex.isna().sum()) == 35  # 'unknown' excluded
    assert full.assign("site").value_counts().to_dict()["vienna_dias"] == 206
    assert set(full.assign("sex_x_age").cat.categories) == {"male|<=60", "male|>60", "female|<=60", "female|>60"}
    info = full.describe()
    assert info["problems"] == [] and info["patient_disjoint"] is True
    assert info["overall"]["positives"] == 833 and sum(info["splits"].values()) == 5398
    assert info["groupings"]["sex"]["outside"] == 35
    assert info["groupings"]["site"]["groups"]["rosendahl"]["positives"] == 473
    assert full.card.license == "CC BY-NC-SA 4.0" and full.card.revision == full.revision
    assert full.card.class_names == ("benign", "malignant") and full.card.patient_id_column == "lesion_id"
    labels = full.group_labels("test")
    assert list(labels.columns) == ["sex", "age", "age4", "site", "sex_x_age"]
    assert labels["sex"].isna().sum() == (full.split_metadata("test")["sex"] == "unknown").sum()


def test_subset_counts_match_provenance(subset: FairDataset) -> None:
    meta = subset.metadata
    assert len(meta) == 1915 and subset.info["skipped_missing_images"] == 0
    assert meta["sex"].value_counts().to_dict() == {"male": 984, "female": 896, "unknown": 35}
    assert meta["dataset"].value_counts().to_dict() == {
        "rosendahl": 755, "vidir_modern": 635, "vidir_molemax": 322, "vienna_dias": 203
    }


def test_cache_pixels_labels_and_groups(subset: FairDataset) -> None:
    data = subset.task_data("train", "sex")
    n = len(subset.splits.ids("train"))
    assert data.images.shape == (n, 3, 32, 32) and data.images.dtype == np.uint8
    meta = subset.split_metadata("train")
    assert list(data.sample_ids) == list(meta.index)
    assert data.labels.dtype == np.int64 and (data.labels == meta["dx"].isin(["mel", "bcc", "akiec"])).all()
    assert data.group_names == ("male", "female") and data.n_groups == 2
    assert ((data.groups == -1) == (meta["sex"] == "unknown").to_numpy()).all()
    assert ((data.groups == 0) == (meta["sex"] == "male").to_numpy()).all()
    sid = data.sample_ids[5]
    with Image.open(HAM / "images" / f"{sid}.jpg") as im:  # independent decode
        expected = np.asarray(im.convert("RGB").resize((32, 32), Image.Resampling.BILINEAR)).transpose(2, 0, 1)
    assert np.array_equal(data.images[5], expected)
    with h5py.File(subset.info["cache_file"], "r") as f:
        assert f.attrs["complete"] == 1 and f["images"].chunks == (1, 3, 32, 32)
        assert f.attrs["key"] in subset.info["cache_file"]


def test_second_load_reuses_cache_without_decoding(subset: FairDataset, subset_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = subset.task_data("val").images

    def no_decode(*args: Any, **kw: Any) -> None:
        raise AssertionError("JPEG decoded although the cache is valid")

    monkeypatch.setattr(imaging, "load_rgb", no_decode)
    again = ham10000.load(config(image_size=32, options={"metadata": SUBSET}), cache_dir=subset_cache)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheRebuildWarning)
        assert np.array_equal(again.task_data("val").images, before)
    assert again.revision == subset.revision and again.splits.hash == subset.splits.hash
    assert len(list(subset_cache.glob("*.h5"))) == 1 and len(list(subset_cache.glob("*split*.json"))) == 1


@pytest.fixture
def small(tmp_path: Path) -> DatasetConfig:
    ids = pd.read_csv(HAM / SUBSET)["image_id"].iloc[::40].tolist()  # 48 images
    return config(image_size=16, options={"metadata": small_metadata(tmp_path, ids)})


def test_corrupt_or_incomplete_cache_is_rebuilt_with_warning(small: DatasetConfig, tmp_path: Path) -> None:
    def fresh_train_images() -> np.ndarray:
        return ham10000.load(small, cache_dir=tmp_path).task_data("train").images

    reference = fresh_train_images()
    path = next(tmp_path.glob("*.h5"))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.warns(CacheRebuildWarning, match="is corrupt"):
        assert np.array_equal(fresh_train_images(), reference)
    with h5py.File(path, "r+") as f:
        del f.attrs["complete"]  # e.g. a writer killed before it finished
    with pytest.warns(CacheRebuildWarning, match="incomplete"):
        assert np.array_equal(fresh_train_images(), reference)
    with h5py.File(path, "r+") as f:
        f.attrs["key"] = "0" * 16
    with pytest.warns(CacheRebuildWarning, match="stale"):
        fresh_train_images()
    with h5py.File(path, "r+") as f:
        del f["images"]
        f.create_dataset("images", data=np.zeros((1, 3, 16, 16), np.uint8))
    with pytest.warns(CacheRebuildWarning, match="wrong shape"):
        assert np.array_equal(fresh_train_images(), reference)
    assert not list(tmp_path.glob("*.tmp")) and len(list(tmp_path.glob("*.h5"))) == 1


def test_large_cache_is_read_per_request(small: DatasetConfig, tmp_path: Path) -> None:
    ds = ham10000.load(small, cache_dir=tmp_path)
    ds.source.memory_limit = 0  # type: ignore[attr-defined]
    first, again = ds.task_data("val").images, ds.task_data("val").images
    assert ds.source._memo is None and np.array_equal(first, again)  # type: ignore[attr-defined]
    whole = ham10000.load(small, cache_dir=tmp_path)
    assert np.array_equal(whole.task_data("val").images, first) and whole.source._memo is not None  # type: ignore[attr-defined]


def test_image_size_changes_the_key(small: DatasetConfig, tmp_path: Path) -> None:
    a = ham10000.load(small, cache_dir=tmp_path)
    b = ham10000.load(small.model_copy(update={"image_size": 24}), cache_dir=tmp_path)
    assert a.info["cache_file"] != b.info["cache_file"] and a.revision != b.revision
    assert b.task_data("test").images.shape[1:] == (3, 24, 24)


def test_missing_image_error_names_file_row_and_fix(tmp_path: Path) -> None:
    sub = pd.read_csv(HAM / SUBSET)
    ids = sub.loc[sub["dx"].isin(["nv", "mel", "bcc", "akiec"])].groupby("dx")["image_id"].first().tolist()
    meta = small_metadata(tmp_path, ids, "HAM_9999999,ISIC_9999999,mel,histo,50,male,back,rosendahl\n")
    cfg = config(image_size=16, options={"metadata": meta, "missing_images": "error"})
    with pytest.raises(DataError) as info:
        ham10000.load(cfg, cache_dir=tmp_path)
    msg = str(info.value)
    assert "line 6" in msg and "ISIC_9999999.jpg" in msg and str(tmp_path / "meta.csv") in msg
    assert "missing_images: skip" in msg
    with pytest.warns(MissingImagesWarning, match="1 of 5 metadata rows"):
        ds = ham10000.load(cfg.model_copy(update={"options": {**cfg.options, "missing_images": "skip"}}), cache_dir=tmp_path)
    assert len(ds) == 4 and ds.info["skipped_missing_images"] == 1


def test_bad_label_value_and_missing_root(tmp_path: Path) -> None:
    from medfairx.config import LabelConfig

    with pytest.raises(ConfigError, match=r"\['mell'\] do not occur in column 'dx'.*akiec, bcc.*Fix the label"):
        ham10000.load(config(label=LabelConfig(column="dx", positive=["mell"]), options={"metadata": SUBSET}), cache_dir=tmp_path)
    with pytest.raises(DataError, match="MEDFAIRX_DATA"):
        ham10000.load(config(root=tmp_path / "nowhere"), cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="allowed values: skip, error"):
        ham10000.load(config(options={"missing_images": "ignore"}), cache_dir=tmp_path)


def test_segmentation_masks_palette_png_and_alignment(tmp_path: Path) -> None:
    palette = "ISIC_0024672"  # a palette ('P') PNG with an inverted palette
    full_frame = "ISIC_0026042"  # the lesion fills the whole frame
    with Image.open(HAM / "masks" / f"{palette}_segmentation.png") as im:
        assert im.mode == "P"
        raw = np.asarray(im.resize((32, 32), Image.Resampling.NEAREST))
    ids = [palette, full_frame, *pd.read_csv(HAM / SUBSET)["image_id"].iloc[::64].tolist()]
    cfg = config("ham10000_seg", image_size=32, options={"metadata": small_metadata(tmp_path, ids)})
    cfg = cfg.model_copy(update={"split": type(cfg.split)(train=0.5, val=0.25, test=0.25)})
    ds = ham10000.load(cfg, cache_dir=tmp_path)
    assert ds.card.task == "segmentation" and ds.card.num_classes == 2 and "label" not in ds.metadata
    masks = np.concatenate([ds.task_data(s).labels for s in ("train", "val", "test")])
    ids_order = np.concatenate([ds.task_data(s).sample_ids for s in ("train", "val", "test")])
    images = np.concatenate([ds.task_data(s).images for s in ("train", "val", "test")])
    assert masks.dtype == np.int64 and masks.shape[1:] == (32, 32) and set(np.unique(masks)) == {0, 1}
    mask = dict(zip(ids_order, masks, strict=False))
    fraction = mask[palette].mean()
    assert 0 < fraction < 0.5  # lesion is the minority once converted to 'L'
    assert np.array_equal(mask[palette], (raw < 128).astype(np.int64))  # raw palette indices read inverted
    assert mask[full_frame].all()
    grey = images.astype(float).mean(axis=1)
    darker = [grey[i][m == 1].mean() < grey[i][m == 0].mean() for i, m in enumerate(masks) if 0 < m.mean() < 1]
    assert np.mean(darker) >= 0.9  # PROVENANCE: lesion darker for 5,318 of 5,397 masks
