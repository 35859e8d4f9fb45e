"""Grouping rules against hand-computed expectations (medfairx.data.groupings)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medfairx.config import DatasetConfig
from medfairx.data.groupings import (
    AGE_60,
    BinsRule,
    CategoricalRule,
    GroupSizeWarning,
    build_groupings,
)
from medfairx.errors import ConfigError

FRAME = pd.DataFrame(
    {
        "sex": ["male", "female", "unknown", "male", None, "female", "male"],
        "age": [60.0, 61.0, np.nan, 40.0, 80.0, 85.0, 45.0],
        "site": ["a", "b", "a", "unknown", "", "b", "c"],
    },
    index=pd.Index([f"s{i}" for i in range(7)], name="sample_id"),
)


def labels(series: pd.Series) -> list[str | None]:
    return [None if pd.isna(v) else str(v) for v in series]


def dataset(groupings: dict, min_group_size: int = 1) -> DatasetConfig:
    return DatasetConfig(name="toy", adapter="synthetic", groupings=groupings, min_group_size=min_group_size)


def test_categorical_with_map_excludes_unmapped_and_keeps_map_order() -> None:
    spec = build_groupings(dataset({"sex": {"column": "sex", "map": {"male": "M", "female": "F"}}}))["sex"]
    out = spec.assign(FRAME)
    assert isinstance(out.dtype, pd.CategoricalDtype) and list(out.index) == list(FRAME.index)
    assert labels(out) == ["M", "F", None, "M", None, "F", "M"]
    assert list(out.cat.categories) == ["M", "F"]
    assert (spec.dataset, spec.columns) == ("toy", ("sex",))


def test_categorical_raw_values_drop_unknown_and_empty() -> None:
    out = build_groupings(dataset({"site": {"column": "site"}}))["site"].assign(FRAME)
    assert labels(out) == ["a", "b", "a", None, None, "b", "c"]
    assert list(out.cat.categories) == ["a", "b", "c"]


def test_numeric_categorical_values_render_as_integers() -> None:
    out = CategoricalRule("age", column="age")(FRAME)
    assert labels(out)[:2] == ["60", "61"] and labels(out)[2] is None


def test_bins_are_right_closed_and_keep_nan() -> None:
    out = build_groupings(dataset({"age": {"column": "age", "bins": [60], "labels": ["<=60", ">60"]}}))["age"].assign(FRAME)
    # 60 -> <=60 (right-closed), 61 -> >60, NaN stays outside
    assert labels(out) == ["<=60", ">60", None, "<=60", ">60", ">60", "<=60"]
    four = build_groupings(dataset({"a": {"column": "age", "bins": [40, 60, 80], "labels": ["w", "x", "y", "z"]}}))["a"]
    assert labels(four.assign(FRAME)) == ["x", "y", None, "w", "y", "z", "x"]
    assert AGE_60(FRAME).cat.categories.tolist() == ["<=60", ">60"]


def test_bins_default_labels() -> None:
    assert BinsRule("a", column="age", bins=(40.0, 60.0)).bin_labels() == ("<=40", "(40, 60]", ">60")


def test_bins_reject_text_column() -> None:
    with pytest.raises(ConfigError, match="non-numeric value"):
        BinsRule("s", column="sex", bins=(1.0,))(FRAME)


def test_intersection_labels_and_missing_parts() -> None:
    cfg = dataset(
        {
            "sex": {"column": "sex", "map": {"male": "male", "female": "female"}},
            "age": {"column": "age", "bins": [60], "labels": ["<=60", ">60"]},
            "sex_x_age": {"intersection": ["sex", "age"]},
        }
    )
    spec = build_groupings(cfg)["sex_x_age"]
    out = spec.assign(FRAME)
    assert labels(out) == ["male|<=60", "female|>60", None, "male|<=60", None, "female|>60", "male|<=60"]
    # only observed combinations, in the parts' category order
    assert list(out.cat.categories) == ["male|<=60", "female|>60"]
    assert spec.columns == ("sex", "age")


def test_min_group_size_drops_and_records_with_warning() -> None:
    cfg = dataset({"site": {"column": "site"}}, min_group_size=2)
    with pytest.warns(GroupSizeWarning, match="'c': 1"):
        out = build_groupings(cfg)["site"].assign(FRAME)
    assert labels(out) == ["a", "b", "a", None, None, "b", None]
    assert out.attrs["dropped"] == {"c": 1}
    assert out.attrs["counts"] == {"a": 2, "b": 2}
    assert list(out.cat.categories) == ["a", "b"]


def test_grouping_min_size_overrides_dataset_default() -> None:
    cfg = dataset({"site": {"column": "site", "min_group_size": 3}}, min_group_size=1)
    with pytest.warns(GroupSizeWarning):
        out = build_groupings(cfg)["site"].assign(FRAME)
    assert out.notna().sum() == 0 and out.attrs["dropped"] == {"a": 2, "b": 2, "c": 1}


def test_missing_column_lists_available_columns() -> None:
    spec = build_groupings(dataset({"race": {"column": "race"}}))["race"]
    with pytest.raises(ConfigError, match=r"needs column\(s\) \['race'\].*'age', 'sex', 'site'"):
        spec.assign(FRAME)


def test_values_the_map_does_not_list_are_named_with_their_counts() -> None:
    from medfairx.data.groupings import UnmappedValueWarning

    frame = FRAME.assign(sex=["Male", "female", "unknown", "Male", None, "female", "other"])
    spec = build_groupings(dataset({"sex": {"column": "sex", "map": {"male": "M", "female": "F"}}}))["sex"]
    with pytest.warns(UnmappedValueWarning) as caught:
        out = spec.assign(frame)
    assert labels(out) == [None, "F", None, None, None, "F", None]
    (w,) = caught
    msg = str(w.message)
    assert "grouping 'sex' of dataset 'toy'" in msg and "{'Male': 2, 'other': 1}" in msg and "3 sample(s)" in msg
    assert "case-sensitive" in msg and "Add them to the grouping's `map`" in msg
    assert "unknown" not in msg.split("{", 1)[1]  # 'unknown' never forms a group: no warning for it
    import warnings

    with warnings.catch_warnings():  # a map listing every value (null = excluded on purpose) is quiet
        warnings.simplefilter("error", UnmappedValueWarning)
        spec = build_groupings(dataset({"sex": {"column": "sex", "map": {"Male": "M", "female": "F", "other": None}}}))
        spec["sex"].assign(frame)
