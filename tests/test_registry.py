from __future__ import annotations

import pytest

from medfairx.errors import ConfigError, DuplicateNameError, UnknownNameError
from medfairx.registry import Registry
from medfairx.specs import MetricSpec, Origin


def _metric(name: str, target: str = "math:sqrt") -> MetricSpec:
    return MetricSpec(name=name, target=target, task="classification", kind="performance", higher_is_better=True)


def test_duplicate_name_names_both_origins() -> None:
    reg: Registry[MetricSpec] = Registry("metrics")
    reg.add(_metric("auc"), Origin("first", "medfairx-a", "1.0"))
    with pytest.raises(DuplicateNameError) as err:
        reg.add(_metric("auc", "math:floor"), Origin("second", "medfairx-b", "2.0"))
    msg = str(err.value)
    assert "medfairx-a" in msg and "medfairx-b" in msg and "MEDFAIRX_DISABLE_PLUGINS=second" in msg


def test_identical_reregistration_is_a_noop() -> None:
    reg: Registry[MetricSpec] = Registry("metrics")
    reg.add(_metric("auc"), Origin("first"))
    reg.add(_metric("auc"), Origin("again"))
    assert reg.names() == ["auc"]
    assert reg.origin("auc").plugin == "first"


def test_miss_suggests_nearest_and_lists_available() -> None:
    reg: Registry[MetricSpec] = Registry("metrics")
    for n in ("auc", "worst_group_auc", "dice"):
        reg.add(_metric(n), Origin("p"))
    with pytest.raises(UnknownNameError) as err:
        reg.get("worst_grup_auc")
    msg = str(err.value)
    assert "Did you mean: worst_group_auc" in msg
    assert "Available (3): auc, dice, worst_group_auc" in msg
    assert isinstance(err.value, KeyError)


def test_invalid_names_are_rejected() -> None:
    reg: Registry[MetricSpec] = Registry("metrics")
    with pytest.raises(ConfigError, match="must match"):
        reg.add(_metric("Bad-Name"), Origin("p"))


def test_pattern_listing() -> None:
    reg: Registry[MetricSpec] = Registry("metrics")
    for n in ("auc", "auc_gap", "dice"):
        reg.add(_metric(n), Origin("p"))
    assert reg.names("auc*") == ["auc", "auc_gap"]
    assert [s.name for s in reg.items("*gap")] == ["auc_gap"]


def test_lazy_target_is_resolved_only_on_load() -> None:
    spec = _metric("sqrt", "math:sqrt")
    import math

    assert spec.load() is math.sqrt
    with pytest.raises(ConfigError, match="package.module:attr"):
        _metric("x", "no_colon").load()
