"""Patient-disjoint, deterministic, stratified splits (medfairx.data.splits)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medfairx.data.adapters.ham10000 import read_metadata
from medfairx.data.splits import SplitManifest, make_splits
from medfairx.errors import ConfigError, DataError

RATIOS = {"train": 0.6, "val": 0.2, "test": 0.2}
HAM = Path(os.environ.get("MEDFAIRX_DATA") or Path(__file__).resolve().parents[1] / ".." / "shared" / "data") / "ham10000"


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """300 patients with 1-3 samples each; ~30% positive patients."""
    rng = np.random.default_rng(123)
    counts = rng.integers(1, 4, 300)
    patients = np.repeat([f"p{i:03d}" for i in range(300)], counts)
    label = np.repeat((rng.random(300) < 0.3).astype(int), counts)
    return pd.DataFrame({"patient_id": patients, "label": label}, index=[f"s{i:04d}" for i in range(len(patients))])


def split_of(manifest: SplitManifest) -> dict[str, str]:
    return {sid: name for name in manifest.splits for sid in manifest.splits[name]}


def test_patient_disjoint_and_complete(frame: pd.DataFrame) -> None:
    m = make_splits(frame, RATIOS, seed=0)
    where = split_of(m)
    assert sorted(where) == sorted(frame.index)  # every sample exactly once
    per_patient = frame.assign(split=frame.index.map(where)).groupby("patient_id")["split"].nunique()
    assert (per_patient == 1).all()
    assert m.check(frame) == [] and m.patient_disjoint(frame)


def test_ratios_and_stratification(frame: pd.DataFrame) -> None:
    m = make_splits(frame, RATIOS, seed=0)
    patients = frame.groupby("patient_id")["label"].max()
    for name, ratio in RATIOS.items():
        ids = m.ids(name)
        split_patients = frame.loc[ids, "patient_id"].unique()
        assert len(split_patients) == pytest.approx(ratio * 300, abs=2)
        # label-stratified at patient level: positive-patient rate matches overall within 1 patient
        assert patients.loc[split_patients].sum() == pytest.approx(ratio * patients.sum(), abs=1)


def test_deterministic_per_seed_and_independent_of_row_order(frame: pd.DataFrame) -> None:
    a, b = make_splits(frame, RATIOS, seed=0), make_splits(frame, RATIOS, seed=0)
    assert a.hash == b.hash and a.to_dict() == b.to_dict()
    shuffled = frame.sample(frac=1.0, random_state=7)
    assert make_splits(shuffled, RATIOS, seed=0).hash == a.hash
    c = make_splits(frame, RATIOS, seed=1)
    assert c.hash != a.hash and set(c.ids("test")) != set(a.ids("test"))


def test_manifest_round_trip_and_tamper_detection(frame: pd.DataFrame, tmp_path: Path) -> None:
    m = make_splits(frame, RATIOS, seed=3)
    path = m.save(tmp_path / "split.json")
    loaded = SplitManifest.load(path)
    assert loaded.hash == m.hash and list(loaded.ids("val")) == list(m.ids("val"))
    assert loaded.params["seed"] == 3
    data = json.loads(path.read_text())
    data["splits"]["test"].append(data["splits"]["train"].pop())
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="edited"):
        SplitManifest.load(path)
    with pytest.raises(ConfigError, match="splits: train, val, test"):
        m.ids("holdout")


def test_check_reports_patient_leak(frame: pd.DataFrame) -> None:
    m = make_splits(frame, RATIOS, seed=0)
    multi = frame.groupby("patient_id").size()
    patient = multi[multi > 1].index[0]
    first, second = frame.index[frame["patient_id"] == patient][:2]
    splits = {k: tuple(s for s in v if s != second) for k, v in m.splits.items()}
    other = next(k for k in splits if first not in splits[k])
    leaky = SplitManifest({**splits, other: (*splits[other], second)})
    assert any("patient" in p for p in leaky.check(frame)) and not leaky.patient_disjoint(frame)


def test_real_ham10000_lesions_with_several_images_stay_together() -> None:
    """The full original metadata has 10,015 images of 7,470 lesions (several per lesion)."""
    meta = read_metadata(HAM / "HAM10000_metadata.csv")
    meta = meta.assign(patient_id=meta["lesion_id"], label=meta["dx"].isin(["mel", "bcc", "akiec"]).astype(int))
    meta.index = meta["image_id"]
    assert len(meta) == 10015 and meta["lesion_id"].nunique() == 7470
    m = make_splits(meta, RATIOS, seed=0)
    assert m.check(meta) == []
    assert sum(m.sizes().values()) == 10015
