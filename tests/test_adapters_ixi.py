"""IXI adapter on the real NIfTI folder: counts from its PROVENANCE.md, the 3-D HDF5 cache,
both label sets, and the messages for a corrupt file, a mismatched label map and a subject
without demographics."""

from __future__ import annotations

import gzip
import shutil
import warnings
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from medfairx.config import DatasetConfig
from medfairx.data.adapters import ixi
from medfairx.data.adapters._tabular import MetadataWarning
from medfairx.data.adapters._testing import data_root
from medfairx.errors import ConfigError, DataError

ROOT = data_root() / "ixi"
pytestmark = pytest.mark.skipif(not ROOT.is_dir(), reason="shared data folder ../shared/data/ixi not present")
REPO = Path(__file__).resolve().parents[1]
NO_DEMOGRAPHICS = ["IXI637-HH-2785", "IXI638-HH-2786", "IXI643-HH-2787", "IXI661-HH-2788"]
# sex x age band (<= 40, (40, 60], > 60), PROVENANCE.md
BANDS = {("female", "<=40"): 28, ("female", "41-60"): 28, ("female", ">60"): 38,
         ("male", "<=40"): 41, ("male", "41-60"): 28, ("male", ">60"): 18}
SUBSET = ["IXI012-HH-1211", "IXI013-HH-1212", "IXI014-HH-1236", "IXI015-HH-1258"]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    with pytest.warns(MetadataWarning, match=r"4 of 185 subjects have a volume but no row in .*IXI_Demog_n181\.csv"):
        return ixi.read_metadata(ROOT)


def test_counts_match_provenance(frame: pd.DataFrame) -> None:
    for folder, suffix in (("images", "_T1.nii.gz"), ("labels", "_seg.nii.gz"), ("labels_dlmuse", "_dlmuse.nii.gz")):
        assert len(list((ROOT / folder).glob(f"*{suffix}"))) == 185
    report = frame.attrs["report"]
    assert report["source_rows"] == 185 and len(frame) == 181 and frame.index.is_unique
    assert report["excluded"] == {"no age or sex in IXI_Demog_n181.csv": 4} and report["rows_without_image"] == 0
    assert not set(NO_DEMOGRAPHICS) & set(frame.index)
    assert frame["sex"].value_counts().to_dict() == {"female": 94, "male": 87}
    bands = pd.cut(frame["age"], [0, 40, 60, 200], labels=["<=40", "41-60", ">60"])
    assert pd.crosstab(frame["sex"], bands).stack().to_dict() == BANDS
    assert (frame["age"].min(), frame["age"].max(), frame["age"].median()) == (20.17, 81.94, 48.05)
    assert (frame["site"] == "HH").all() and frame["patient_id"].is_unique
    old = frame.loc[bands == ">60", "sex"]
    assert round((old == "female").mean(), 2) == 0.68  # the confound the card states


def _subset_root(tmp_path: Path, subjects: list[str], *, demographics: list[str] | None = None) -> Path:
    """A folder with ``subjects``' files (copies) and the demographics rows of ``demographics``."""
    root = tmp_path / "ixi"
    for folder, suffix in (("images", "_T1.nii.gz"), ("labels", "_seg.nii.gz"), ("labels_dlmuse", "_dlmuse.nii.gz")):
        (root / folder).mkdir(parents=True)
        for s in subjects:
            shutil.copy(ROOT / folder / f"{s}{suffix}", root / folder / f"{s}{suffix}")
    keep = set(subjects if demographics is None else demographics)
    lines = (ROOT / "IXI_Demog_n181.csv").read_text().splitlines()
    (root / "IXI_Demog_n181.csv").write_text("\n".join([lines[0], *[x for x in lines[1:] if x.split(",")[0] in keep]]) + "\n")
    shutil.copy(ROOT / "list_MUSE_all.csv", root / "list_MUSE_all.csv")
    return root


def _config(root: Path, **changes: object) -> DatasetConfig:
    fields = {"name": "ixi", "adapter": "ixi", "root": root, "task": "segmentation",
              "split": {"train": 0.5, "val": 0.25, "test": 0.25, "stratify": False}, "groupings": {"sex": {"column": "sex"}}}
    return DatasetConfig(**{**fields, **changes})


def _all(ds: ixi.FairDataset) -> tuple[np.ndarray, np.ndarray]:
    images, masks = ds.source.read()
    assert masks is not None
    return images, masks


@pytest.fixture(scope="module")
def subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _subset_root(tmp_path_factory.mktemp("subset"), SUBSET)


def test_native_grid_cache_holds_the_files_voxels(subset: Path, tmp_path: Path) -> None:
    ds = ixi.load(_config(subset), cache_dir=tmp_path)
    assert ds.card.spatial_dims == 3 and ds.card.in_channels == 1 and ds.card.class_names == ixi.COARSE
    images, masks = _all(ds)
    assert images.shape == (4, 1, 80, 80, 60) and images.dtype == np.uint8 and masks.shape == (4, 80, 80, 60)
    volumes = pd.read_csv(ROOT / "coarse_volumes_mm3.csv", index_col="MRID")
    for i, sid in enumerate(ds.metadata.index):
        t1 = nib.load(subset / "images" / f"{sid}_T1.nii.gz")
        assert np.array_equal(images[i, 0], np.asarray(t1.dataobj.get_unscaled()))
        seg = np.asarray(nib.load(subset / "labels" / f"{sid}_seg.nii.gz").dataobj)
        assert np.array_equal(masks[i], seg)
        counts = np.bincount(masks[i].ravel(), minlength=8)[1:] * 27  # 3 mm voxels, mm^3
        assert counts.tolist() == [int(volumes.loc[sid, f"{n}_3mm"]) for n in ixi.COARSE[1:]]
    with h5py.File(ds.info["cache_file"], "r") as f:
        assert f["images"].shape == (4, 1, 80, 80, 60) and f["masks"].shape == (4, 80, 80, 60)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the valid cache is reused, not rebuilt
        again = ixi.load(_config(subset), cache_dir=tmp_path)
    assert again.info["cache_file"] == ds.info["cache_file"]


def test_resized_volumes_and_binary_structure(subset: Path, tmp_path: Path) -> None:
    small = ixi.load(_config(subset, image_size=[40, 40, 30]), cache_dir=tmp_path)
    images, masks = _all(small)
    assert images.shape == (4, 1, 40, 40, 30) and set(np.unique(masks)) <= set(range(8))
    t1 = np.asarray(nib.load(subset / "images" / f"{small.metadata.index[0]}_T1.nii.gz").dataobj.get_unscaled(), float)
    block = t1.reshape(40, 2, 40, 2, 30, 2).mean(axis=(1, 3, 5))  # area averaging by 2 per axis
    assert np.abs(images[0, 0].astype(float) - block).max() <= 0.5 + 1e-6
    hippo = ixi.load(_config(subset, image_size=[40, 40, 30], options={"structure": "hippocampus"}), cache_dir=tmp_path)
    _, binary = _all(hippo)
    assert hippo.card.class_names == ("background", "hippocampus") and hippo.card.num_classes == 2
    assert np.array_equal(binary, (masks == ixi.COARSE.index("hippocampus")).astype(np.uint8))


def test_full_dlmuse_label_set(subset: Path, tmp_path: Path) -> None:
    ids, names = ixi.dlmuse_classes(ROOT)
    assert len(ids) == 149 and names[0] == "background" and "Hippocampus_R" in names and 46 in ids and 69 in ids
    ds = ixi.load(_config(subset, options={"labels": "dlmuse"}), cache_dir=tmp_path)
    assert ds.card.num_classes == 149 and ds.info["label_set"] == "dlmuse"
    _, masks = _all(ds)
    sid = ds.metadata.index[0]
    raw = np.asarray(nib.load(subset / "labels_dlmuse" / f"{sid}_dlmuse.nii.gz").dataobj)
    assert np.array_equal(ids[masks[0]], raw)
    coarse = np.asarray(nib.load(subset / "labels" / f"{sid}_seg.nii.gz").dataobj)
    hippocampus = np.isin(raw, [47, 48])
    assert (hippocampus == (coarse == 2)).mean() >= 0.9996  # PROVENANCE: the two maps agree on >= 99.96%


def test_subject_without_demographics_is_counted_and_left_out(tmp_path: Path) -> None:
    root = _subset_root(tmp_path, SUBSET[:3], demographics=SUBSET[:2])
    with pytest.warns(MetadataWarning, match=rf"1 of 3 subjects have a volume but no row in .*\({SUBSET[2]}\); they are left out"):
        df = ixi.read_metadata(root)
    assert list(df.index) == SUBSET[:2] and df.attrs["report"]["excluded"] == {"no age or sex in IXI_Demog_n181.csv": 1}


def test_corrupt_nifti_is_a_clear_error(tmp_path: Path) -> None:
    root = _subset_root(tmp_path, SUBSET[:3])
    bad = root / "labels" / f"{SUBSET[1]}_seg.nii.gz"
    bad.write_bytes(gzip.compress(gzip.decompress(bad.read_bytes())[:1000]))  # header and a truncated voxel block
    broken = rf"Cannot read NIfTI file .*{SUBSET[1]}_seg\.nii\.gz \(subject {SUBSET[1]}\).*corrupt or truncated"
    with pytest.raises(DataError, match=broken):
        _all(ixi.load(_config(root), cache_dir=tmp_path / "cache"))  # the volumes are decoded on first read
    (root / "images" / f"{SUBSET[0]}_T1.nii.gz").write_bytes(b"not a nifti file")
    with pytest.raises(DataError, match=rf"Cannot read NIfTI file .*{SUBSET[0]}_T1\.nii\.gz"):
        ixi.load(_config(root), cache_dir=tmp_path / "cache")


def test_label_map_of_another_shape_is_a_clear_error(tmp_path: Path) -> None:
    root = _subset_root(tmp_path, SUBSET[:3])
    path = root / "labels" / f"{SUBSET[2]}_seg.nii.gz"
    seg = nib.load(path)
    cropped = np.asarray(seg.dataobj)[:, :, :59]
    nib.save(nib.Nifti1Image(cropped, seg.affine, seg.header), path)
    with pytest.raises(DataError, match=rf"{SUBSET[2]}_seg\.nii\.gz \(subject {SUBSET[2]}\): label map shape \(80, 80, 59\) "
                       r"differs from the image shape \(80, 80, 60\)"):
        _all(ixi.load(_config(root), cache_dir=tmp_path / "cache"))


def test_bad_options_are_config_errors(subset: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="structure: 'amygdala' is not allowed; use one of: lateral_ventricles"):
        ixi.load(_config(subset, options={"structure": "amygdala"}), cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="cannot be used with labels: dlmuse"):
        ixi.load(_config(subset, options={"labels": "dlmuse", "structure": "hippocampus"}), cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="IXI volumes are 3-D"):
        ixi.load(_config(subset, image_size=[40, 40]), cache_dir=tmp_path)


def test_catalogue_entry_checks_with_data_root(monkeypatch: pytest.MonkeyPatch) -> None:
    from medfairx.cli import cli

    monkeypatch.setenv("MEDFAIRX_DATA", "/nonexistent")  # --data-root replaces it; restored afterwards

    result = CliRunner().invoke(cli, ["datasets", "check", "ixi", "--config", str(REPO / "datasets.yaml"),
                                       "--data-root", str(ROOT.parent)])
    assert result.exit_code == 0, result.output
    assert "female  94" in result.output and "male|>60      18" in result.output and "OK: no problem found" in result.output
