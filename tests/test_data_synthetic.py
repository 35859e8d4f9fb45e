"""Synthetic datasets, ``load_dataset`` / ``FairDataset`` through the plugin registry, and
``validate_catalogue`` / ``describe_dataset``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from medfairx.config import EMBEDDED_CATALOGUE, DatasetConfig, load_catalogue
from medfairx.data import FairDataset, describe_dataset, load_dataset, synthetic
from medfairx.data.dataset import validate_catalogue
from medfairx.errors import ConfigError, UnknownNameError
from medfairx.plugins import PluginHost, get_host, set_host
from medfairx.specs import Origin

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def host() -> Iterator[PluginHost]:
    """A host holding only the built-in dataset and grouping plugins (registered through their hooks)."""
    import medfairx.default_plugins.datasets as datasets_plugin
    import medfairx.default_plugins.groupings as groupings_plugin

    fresh = PluginHost()
    datasets_plugin.register_datasets(register=lambda s: fresh.registry("datasets").add(s, Origin("medfairx.datasets")))
    groupings_plugin.register_groupings(register=lambda s: fresh.registry("groupings").add(s, Origin("medfairx.groupings")))
    set_host(fresh)
    yield fresh
    set_host(None)


def make(name: str = "synthetic_cls", **options: object) -> FairDataset:
    cfg = load_catalogue(EMBEDDED_CATALOGUE).datasets[name]
    return synthetic.load(cfg.model_copy(update={"options": {**cfg.options, **options}}))


def test_plugin_module_is_lazy() -> None:
    """Registering the built-ins must not import torch or h5py."""
    import subprocess

    code = (
        "import sys, medfairx.default_plugins.datasets, medfairx.default_plugins.groupings;"
        "print('torch' in sys.modules, 'h5py' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_deterministic_and_seed_dependent() -> None:
    a, b, c = make(), make(), make(seed=5)
    assert np.array_equal(a.source.read()[0], b.source.read()[0]) and a.metadata.equals(b.metadata)
    assert a.revision == b.revision and a.splits.hash == b.splits.hash
    assert not np.array_equal(a.source.read()[0], c.source.read()[0]) and a.revision != c.revision


def test_known_bias_structure() -> None:
    ds = make()
    meta = ds.metadata
    assert len(meta) == 1000 and ds.card.in_channels == 1 and ds.source.read()[0].shape == (1000, 1, 32, 32)
    minority = meta["group"] == "minority"
    assert 0.18 < minority.mean() < 0.32
    assert set(meta["site"]) == {"site_a", "site_b", "site_c"}
    assert not meta.loc[~minority, "hard"].any() and 0.15 < meta.loc[minority, "hard"].mean() < 0.45
    assert (meta.groupby("patient_id").size() == 2).sum() > 50  # some patients have two samples
    assert ds.splits.patient_disjoint(meta)
    images = ds.source.read()[0].astype(float)
    is_min = minority.to_numpy()
    contrast, level = images.std(axis=(1, 2, 3)), images.mean(axis=(1, 2, 3))
    assert contrast[is_min].mean() < 0.92 * contrast[~is_min].mean()  # lower contrast, same noise
    assert level[is_min].mean() > level[~is_min].mean() + 15  # shifted intensity (grey levels)


def test_signal_learnable_and_weaker_in_minority_and_hard_subset() -> None:
    ds = make(n_samples=1500)
    train, test = ds.task_data("train", "group"), ds.task_data("test", "group")
    model = LogisticRegression(C=0.1, max_iter=3000).fit(train.images.reshape(len(train), -1) / 255, train.labels)
    score = model.predict_proba(test.images.reshape(len(test), -1) / 255)[:, 1]
    hard = ds.metadata.loc[test.sample_ids, "hard"].to_numpy()

    def auc(mask: np.ndarray) -> float:
        return roc_auc_score(test.labels[mask], score[mask])

    everyone = np.ones(len(test), bool)
    majority, minority = test.groups == 0, test.groups == 1
    assert test.group_names == ("majority", "minority")
    assert auc(everyone) > 0.8
    assert auc(minority) < auc(majority) - 0.05
    assert auc(hard) < auc(minority & ~hard)


def test_segmentation_2d_and_3d() -> None:
    seg = make("synthetic_seg")
    data = seg.task_data("train", "site")
    assert data.labels.dtype == np.int64 and data.labels.shape == (len(data), 32, 32)
    assert set(np.unique(data.labels)) == {0, 1} and "label" not in seg.metadata
    fg = data.labels.astype(bool)
    inside = [im[0][m].mean() > im[0][~m].mean() for im, m in zip(data.images, fg, strict=False) if m.any()]
    assert np.mean(inside) > 0.9  # objects are brighter than background
    vol = make("synthetic_seg3d")
    data3 = vol.task_data("val")
    assert data3.images.shape[1:] == (1, 16, 16, 16) and data3.labels.shape[1:] == (16, 16, 16)
    assert vol.card.spatial_dims == 3 and vol.card.task == "segmentation"


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['n_sample'\].*n_samples"):
        make(n_sample=10)
    with pytest.raises(ConfigError, match="0 < minority_fraction < 1"):
        make(minority_fraction=1.5)
    cfg = DatasetConfig(name="x", adapter="synthetic", image_size=(8, 8, 8))
    with pytest.raises(ConfigError, match="spatial_dims is 2"):
        synthetic.load(cfg)


def test_load_dataset_through_registry(host: PluginHost, tmp_path: Path) -> None:
    assert get_host() is host
    cat = load_catalogue(REPO / "datasets.yaml")
    ds = load_dataset(cat, "synthetic_cls", cache_dir=tmp_path)
    assert isinstance(ds, FairDataset) and ds.name == "synthetic_cls" and ds.config.name == "synthetic_cls"
    assert set(ds.groupings) == {"group", "site", "age", "group_x_site", "age3"}
    assert ds.groupings["group"].dataset == "synthetic_cls"
    data = ds.task_data("test", "group_x_site")
    names = data.group_names
    assert data.n_groups == len(names) and names[0] == "majority|site_a"
    codes = {n: i for i, n in enumerate(names)}
    labels = ds.group_labels("test")
    assert list(labels.index) == list(data.sample_ids)
    expected = [codes[v] if v is not None else -1 for v in labels["group_x_site"]]
    assert data.groups.tolist() == expected
    assert ds.task_data("test").groups is None
    # a registered generic grouping applies when the dataset has its column
    generic = ds.task_data("val", "age_60")
    assert generic.group_names == ("<=60", ">60")
    with pytest.raises(UnknownNameError, match="Did you mean: site"):
        ds.task_data("val", "sit")
    with pytest.raises(UnknownNameError, match="Unknown dataset 'synthetic_clss'"):
        load_dataset(cat, "synthetic_clss")


def test_validate_and_describe(host: PluginHost, tmp_path: Path) -> None:
    assert validate_catalogue(REPO / "datasets.yaml") == []
    assert validate_catalogue(EMBEDDED_CATALOGUE, deep=True) == []
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\ndatasets:\n  d: {adapter: synthetik}\n")
    problems = validate_catalogue(bad)
    assert len(problems) == 1 and "datasets.d.adapter" in problems[0] and "Did you mean 'synthetic'" in problems[0]
    info = describe_dataset(EMBEDDED_CATALOGUE, "synthetic_cls")
    assert info["samples"] == 1000 and info["patient_disjoint"] is True and info["problems"] == []
    assert sum(info["splits"].values()) == 1000
    groups = info["groupings"]["group"]["groups"]
    assert groups["majority"]["n"] + groups["minority"]["n"] == 1000
    assert 0 < groups["minority"]["prevalence"] < 1
    assert info["warnings"] == []


def test_describe_real_dataset_reports_skipped_rows(host: PluginHost, tmp_path: Path) -> None:
    info = describe_dataset(REPO / "datasets.yaml", "ham10000", cache_dir=tmp_path)
    # counts from ../shared/data/ham10000/PROVENANCE.md
    assert (info["source_rows"], info["skipped_missing_images"], info["samples"]) == (10015, 4617, 5398)
    assert any("4,617 of 10,015" in w for w in info["warnings"])
    sex = info["groupings"]["sex"]
    assert (sex["groups"]["male"]["n"], sex["groups"]["female"]["n"], sex["outside"]) == (2904, 2459, 35)
    assert info["overall"]["positives"] == 833 and info["patient_disjoint"] and info["problems"] == []
    assert not list(tmp_path.glob("*.h5"))  # describing decodes no image
