"""Custom adapter: a user CSV and tiny PNGs in tmp_path become a FairDataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medfairx.config import DatasetConfig
from medfairx.data.adapters import custom
from medfairx.data.adapters._testing import placeholder_images
from medfairx.data.labels import MissingImagesWarning
from medfairx.errors import ConfigError, DataError

N = 48


def write_study(root: Path, *, label_values: list[object] | None = None) -> Path:
    rows = []
    for i in range(N):
        rows.append({
            "image": f"img/{i:03d}.png", "mask": f"mask/{i:03d}.png",
            "label": (label_values or [0, 1])[i % len(label_values or [0, 1])],
            "sex": ["F", "M"][i % 2], "age": "" if i == 3 else str(30 + i), "site": ["a", "b", "c"][i % 3],
            "patient": f"P{i // 2}",
        })
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(root / "metadata.csv", index=False)
    placeholder_images(root, [r["image"] for r in rows])
    placeholder_images(root, [r["mask"] for r in rows], mask=True)
    return root


def _cfg(root: Path, **kw: object) -> DatasetConfig:
    base: dict[str, object] = {
        "name": "mine", "adapter": "custom", "root": root, "image_size": 8,
        "options": {"attributes": ["sex", "age", "site"], "patient_column": "patient"},
        "groupings": {"sex": {"column": "sex"}, "age": {"column": "age", "bins": [50]}},
    }
    base.update(kw)
    return DatasetConfig(**base)  # type: ignore[arg-type]


def test_read_metadata_types_and_report(tmp_path: Path) -> None:
    root = write_study(tmp_path)
    df = custom.read_metadata(root, attributes=["sex", "age", "site"], patient_column="patient")
    assert len(df) == N and df.index[0] == "img/000.png" and df["patient_id"].nunique() == N // 2
    assert df["age"].dtype == float and int(df["age"].isna().sum()) == 1 and not pd.api.types.is_numeric_dtype(df["sex"])
    assert df["label"].tolist()[:4] == [0, 1, 0, 1] and df.attrs["class_names"] == ("0", "1")
    assert df.attrs["report"]["rows_without_image"] == 0 and df.attrs["report"]["missing_values"] == {"age": 1}


def test_classification_dataset(tmp_path: Path) -> None:
    ds = custom.load(_cfg(write_study(tmp_path)), cache_dir=tmp_path / "cache")
    assert len(ds) == N and ds.card.attributes == ("sex", "age", "site") and ds.card.num_classes == 2
    data = ds.task_data("train", "age")
    assert data.images.shape[1:] == (3, 8, 8) and data.group_names == ("<=50", ">50")
    assert ds.describe()["patient_disjoint"]


def test_string_labels_need_a_label_rule(tmp_path: Path) -> None:
    root = write_study(tmp_path, label_values=["benign", "malignant", "benign"])
    with pytest.raises(ConfigError, match=r"line 2: label 'benign'.*label: \{column: label, positive"):
        custom.load(_cfg(root), cache_dir=tmp_path / "cache")
    ds = custom.load(_cfg(root, label={"column": "label", "positive": ["malignant"]}), cache_dir=tmp_path / "cache")
    assert int(ds.metadata["label"].sum()) == N // 3


def test_segmentation_dataset(tmp_path: Path) -> None:
    root = write_study(tmp_path)
    cfg = _cfg(root, task="segmentation", options={"mask_column": "mask", "attributes": ["sex"]}, groupings={"sex": {"column": "sex"}})
    ds = custom.load(cfg, cache_dir=tmp_path / "cache")
    masks = ds.task_data("val", "sex").labels
    assert ds.task == "segmentation" and masks.shape[1:] == (8, 8) and set(np.unique(masks)) == {0, 1}
    assert ds.card.patient_id_column == "(none: one image per patient)"


def test_missing_images_and_columns(tmp_path: Path) -> None:
    root = write_study(tmp_path)
    (root / "img/005.png").unlink()
    with pytest.warns(MissingImagesWarning, match=r"1 of 48 .*img/005\.png"):
        ds = custom.load(_cfg(root), cache_dir=tmp_path / "cache")
    assert len(ds) == N - 1 and ds.info["skipped_missing_images"] == 1
    with pytest.raises(DataError, match=r"img/005\.png"), pytest.warns(MissingImagesWarning):
        custom.load(_cfg(root, options={"missing_images": "error"}), cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match=r"metadata\.csv: column\(s\) \['ethnicity'\] not found"):
        custom.read_metadata(root, attributes=["ethnicity"])
    with pytest.raises(ConfigError, match="unknown option"):
        custom.load(_cfg(root, options={"image_col": "image"}), cache_dir=tmp_path / "cache")


def test_through_the_catalogue(tmp_path: Path) -> None:
    from medfairx.config import load_catalogue
    from medfairx.data.dataset import load_dataset

    write_study(tmp_path / "study")
    (tmp_path / "datasets.yaml").write_text(
        "version: 1\n"
        "datasets:\n"
        "  mine:\n"
        "    adapter: custom\n"
        "    root: study\n"
        "    image_size: 8\n"
        "    options: {attributes: [sex, site], patient_column: patient}\n"
        "    groupings: {sex: {column: sex}}\n"
    )
    ds = load_dataset(load_catalogue(tmp_path / "datasets.yaml"), "mine", cache_dir=tmp_path / "cache")
    assert len(ds) == N and ds.card.license == "(the user's data)"


@pytest.mark.slow
def test_tiny_bench_on_custom_data(tmp_path: Path) -> None:
    from medfairx.config import load_catalogue
    from medfairx.plugins import get_host
    from medfairx.runner.bench import BenchOptions, run_bench

    write_study(tmp_path / "study")
    (tmp_path / "datasets.yaml").write_text(
        "version: 1\n"
        "datasets:\n"
        "  mine: {adapter: custom, root: study, image_size: 8, groupings: {sex: {column: sex}},\n"
        "         options: {attributes: [sex, site], patient_column: patient}}\n"
        "suites:\n"
        "  tiny: {datasets: {mine: [sex]}, methods: [erm], seeds: [0], params: test, device: cpu,\n"
        "         backbones: {classification: tiny_cnn}, recipe: {epochs: 1, batch_size: 16}}\n"
    )
    result = run_bench(load_catalogue(tmp_path / "datasets.yaml"), BenchOptions(suite="tiny", out=tmp_path / "runs"),
                       get_host(), lambda *a, **k: None)
    assert len(result.done) == 1 and not result.failed
    preds = pd.read_parquet(next((tmp_path / "runs").rglob("predictions.parquet")))
    assert set(preds["group:sex"].dropna()) == {"F", "M"} and set(preds["split"]) == {"val", "test"}
