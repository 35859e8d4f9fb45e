"""The Pareto-criterion learning curve (docs/methods.md §4.1): subsets, verdicts, end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medfairx.analysis.curve import (
    HELD,
    HELD_CI,
    UNDETERMINED,
    VIOLATED,
    CurveOptions,
    SubsetTrainDataset,
    criterion_verdict,
    curve_verdicts,
    dominant_keep_mask,
)
from medfairx.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- verdicts on hand-made tables ---------------------------------------------------------


def test_monotone_curve_holds() -> None:
    v = criterion_verdict([0, 100, 200, 400], [0.70, 0.72, 0.72, 0.80], [0.02] * 4)
    assert v["verdict"] == HELD and v["V"] == 0.0 and not v["violations"]


def test_small_drop_inside_half_widths_holds_within_ci() -> None:
    # largest drop 0.035 (s=200 -> 400); half-widths 0.03 and 0.04 -> max 0.04 > 0.035
    v = criterion_verdict([0, 100, 200, 400], [0.70, 0.78, 0.79, 0.755], [0.02, 0.02, 0.03, 0.04])
    assert v["verdict"] == HELD_CI
    assert v["V"] == pytest.approx(0.035) and (v["s"], v["s_prime"]) == (200, 400)
    assert (v["h_s"], v["h_s_prime"]) == (0.03, 0.04)


def test_drop_beyond_both_half_widths_is_a_violation() -> None:
    v = criterion_verdict([0, 100, 200, 400], [0.70, 0.80, 0.81, 0.74], [0.02, 0.02, 0.03, 0.04])
    assert v["verdict"] == VIOLATED and v["V"] == pytest.approx(0.07)
    assert (v["s"], v["s_prime"]) == (200, 400)
    # every violating pair is listed (0.80 -> 0.74 too: drop 0.06 > max(0.02, 0.04))
    assert {(a, b) for a, b, _, _ in v["violations"]} == {(100, 400), (200, 400)}


def test_violation_needs_to_exceed_the_half_widths_of_its_own_pair() -> None:
    # V (0.05, pair 100->400) exceeds h=0.04 only at one end: max rule -> held within CI
    v = criterion_verdict([0, 100, 400], [0.7, 0.80, 0.75], [0.5, 0.01, 0.06])
    assert v["verdict"] == HELD_CI
    # the sum rule is stricter about what counts as a violation
    v = criterion_verdict([0, 100, 400], [0.7, 0.80, 0.75], [0.5, 0.03, 0.03], tolerance="sum")
    assert v["verdict"] == HELD_CI
    v = criterion_verdict([0, 100, 400], [0.7, 0.80, 0.75], [0.5, 0.03, 0.03], tolerance="max")
    assert v["verdict"] == VIOLATED


def test_edge_cases() -> None:
    assert criterion_verdict([0], [0.7], [0.01])["verdict"] == UNDETERMINED
    v = criterion_verdict([0, 1, 2], [0.7, float("nan"), 0.6], [0.01, 0.01, float("nan")])
    assert v["verdict"] == VIOLATED and v["V"] == pytest.approx(0.1)  # NaN half-width counts as 0
    with pytest.raises(ConfigError):
        criterion_verdict([0, 1], [0.1, 0.2], [0.0, 0.0], tolerance="x")
    with pytest.raises(ConfigError):
        CurveOptions("d", "g", ["erm"], fractions=[0.5, 1.5]).validated()
    assert CurveOptions("d", "g", ["erm"], fractions=[1, 0, 0.5, 0.5]).validated().fractions == [0, 0.5, 1]


def test_curve_verdicts_table() -> None:
    pts = pd.DataFrame({
        "method": ["m"] * 6, "group": ["a", "a", "a", "b", "b", "b"], "dominant_n": [0, 10, 20] * 2,
        "value": [0.6, 0.7, 0.8, 0.9, 0.7, 0.8], "half_width": [0.01] * 6,
    })
    out = curve_verdicts(pts).set_index("group")
    assert out.loc["a", "verdict"] == HELD and out.loc["b", "verdict"] == VIOLATED
    assert out.loc["b", "V"] == pytest.approx(0.2) and out.loc["b", "s"] == 0


# --- subsets ------------------------------------------------------------------------------


def test_dominant_subsets_are_nested_and_seeded() -> None:
    groups = np.array([0] * 50 + [1] * 20 + [-1] * 5)
    masks = [dominant_keep_mask(groups, 0, f, seed=3) for f in (0, 0.1, 0.5, 1.0)]
    for m in masks:
        assert m[groups != 0].all()  # minority and ungrouped rows stay fixed
    assert [int((m & (groups == 0)).sum()) for m in masks] == [0, 5, 25, 50]
    for small, big in zip(masks[:-1], masks[1:], strict=False):
        assert not (small & ~big).any()  # nested
    again = dominant_keep_mask(groups, 0, 0.5, seed=3)
    other = dominant_keep_mask(groups, 0, 0.5, seed=4)
    assert (again == masks[2]).all() and not (other == masks[2]).all()


def test_subset_view_changes_only_train() -> None:
    from medfairx.testing.toy import make_toy_fair_dataset

    ds = make_toy_fair_dataset()
    grouping = next(iter(ds.groupings))
    full = ds.task_data("train", grouping)
    keep = full.sample_ids[::2]
    view = SubsetTrainDataset(ds, keep)
    assert list(view.task_data("train", grouping).sample_ids) == list(keep)
    assert len(view.task_data("val", grouping)) == len(ds.task_data("val", grouping))
    assert view.card is ds.card


# --- end to end (ERM on the synthetic dataset, tiny) ------------------------------------------


def test_curve_end_to_end_and_resume(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from medfairx.cli.curve_cmd import curve

    args = ["--dataset", "synthetic_cls", "--grouping", "group", "--methods", "erm", "--fractions", "0,0.5,1",
            "--seeds", "1", "--params", "test", "--epochs", "1", "--n-boot", "50",
            "--out", str(tmp_path / "runs"), "-o", str(tmp_path / "report")]
    res = CliRunner().invoke(curve, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "3 ran, 0 reused" in res.output
    design = json.loads((tmp_path / "runs" / "curve.json").read_text())
    assert design["dominant_n"]["0"] == 0 and design["dominant_n"]["1"] == design["train_counts"][design["dominant"]]
    assert sorted(p.name for p in (tmp_path / "runs").glob("frac-*")) == ["frac-0", "frac-0.5", "frac-1"]
    pts = pd.read_csv(tmp_path / "report" / "points.csv")
    assert set(pts["fraction"]) == {0.0, 0.5, 1.0} and {"overall", *design["groups"]} == set(pts["group"])
    assert ((pts["ci_low"] <= pts["value"]) & (pts["value"] <= pts["ci_high"])).all()
    verdicts = pd.read_csv(tmp_path / "report" / "verdicts.csv")
    assert len(verdicts) == len(design["groups"]) and set(verdicts["verdict"]) <= {HELD, HELD_CI, VIOLATED}
    html = (tmp_path / "report" / "index.html").read_text()
    assert "<svg" in html and "Pareto fairness criterion" in html and (tmp_path / "report" / "curve-erm.svg").exists()
    again = CliRunner().invoke(curve, args, catch_exceptions=False)
    assert again.exit_code == 0 and "0 ran, 3 reused" in again.output  # resumable
    assert math.isfinite(float(pts["value"].iloc[0]))
