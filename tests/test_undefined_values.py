"""Undefined between-group values stay undefined: NaN with a reason, no CI, "undefined" on the
page, and never a rank (a gap of a grouping with one defined group is no comparison, not 0)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from medfairx.metrics.evaluate import RESULT_COLUMNS, score_predictions
from medfairx.report.leaderboard import build_leaderboard
from medfairx.stats.ranking import average_ranks, block_matrix

N = 120


def _frame(rng: np.random.Generator, *, groups: tuple[str, ...] = ("F", "M"), single_class: str | None = "M",
           shift: float = 0.0) -> pd.DataFrame:
    """Val + test predictions; in the test split every sample of ``single_class`` is negative."""
    parts = []
    for split in ("val", "test"):
        g = np.array(groups)[np.arange(N) % len(groups)]
        y = rng.integers(0, 2, N)
        if split == "test" and single_class is not None:
            y[g == single_class] = 0
        s = 1 / (1 + np.exp(-(rng.normal(0, 1, N) + 1.5 * y + shift)))
        parts.append(pd.DataFrame({"split": split, "sample_id": [f"{split}-{i:03d}" for i in range(N)],
                                   "group:sex": g, "y_true": y, "score": s, "score_0": 1 - s, "score_1": s}))
    return pd.concat(parts, ignore_index=True)


def _rows(out: pd.DataFrame, metric: str, group: str = "") -> pd.Series:
    (row,) = out[(out["metric"] == metric) & (out["group"] == group)].to_dict("records")
    return pd.Series(row)


def test_gaps_of_a_grouping_with_one_defined_group_are_nan_with_a_reason_and_no_ci() -> None:
    frame = _frame(np.random.default_rng(0))
    test = frame[frame["split"] == "test"]
    m = test[test["group:sex"] == "M"]
    with warnings.catch_warnings():  # the reference agrees: AUC of a single-class group is undefined (NaN)
        warnings.simplefilter("ignore")
        assert math.isnan(roc_auc_score(m["y_true"], m["score"]))
    with pytest.warns(RuntimeWarning, match="single class"):  # the existing warning is kept
        out = score_predictions(frame, task="classification", grouping="sex", n_boot=50)
    assert "note" in out.columns and "note" in RESULT_COLUMNS
    assert math.isnan(_rows(out, "auc", "M")["value"]) and "one class" in _rows(out, "auc", "M")["note"]
    for metric in ("auc_gap", "worst_group_auc", "es_auc", "mean_psd", "equal_opportunity_difference",
                   "equalized_odds_difference", "eqopp_score_medfair", "eqodd_score_medfair"):
        row = _rows(out, metric)
        assert math.isnan(row["value"]), (metric, row["value"])  # was 0 (gap) or 1 (score) before
        assert math.isnan(row["ci_low"]) and math.isnan(row["ci_high"]), metric  # was [0, 0]
        assert row["note"].startswith("undefined: fewer than two groups") and "M:" in row["note"], row["note"]
    # a summary over measures every group defines is untouched
    dp = _rows(out, "demographic_parity_difference")
    ppr = test.groupby("group:sex").apply(lambda d: (d["score"] >= out["threshold"].iloc[0]).mean())
    assert dp["value"] == pytest.approx(ppr.max() - ppr.min()) and dp["note"] == ""


def test_with_two_defined_groups_left_the_gap_uses_them_and_names_the_group_left_out() -> None:
    frame = _frame(np.random.default_rng(1), groups=("A", "B", "C"), single_class="C")
    with pytest.warns(RuntimeWarning, match="single class"):
        out = score_predictions(frame, task="classification", grouping="sex", n_boot=0)
    test = frame[frame["split"] == "test"]
    auc = {g: roc_auc_score(d["y_true"], d["score"]) for g, d in test.groupby("group:sex") if g != "C"}
    row = _rows(out, "auc_gap")
    assert row["value"] == pytest.approx(max(auc.values()) - min(auc.values()))
    assert row["note"].startswith("computed over the defined groups; left out: C")


def test_a_grouping_with_one_group_has_no_gap_and_no_worst_group() -> None:
    out = score_predictions(_frame(np.random.default_rng(2), groups=("all",), single_class=None),
                            task="classification", grouping="sex", n_boot=20)
    for metric in ("auc_gap", "worst_group_auc", "demographic_parity_difference", "dp_score_medfair"):
        row = _rows(out, metric)
        assert math.isnan(row["value"]) and math.isnan(row["ci_low"]), metric
        assert "of 1 group(s)" in row["note"], row["note"]


def _results(rng: np.random.Generator) -> pd.DataFrame:
    """Two methods on three blocks; on block ``b0`` group M of the test split is single-class."""
    tables = []
    for b in range(3):
        frame = _frame(rng, single_class="M" if b == 0 else None)
        for method, shift in (("good", 0.0), ("other", 0.3)):
            f = frame.copy()
            f["score"] = f["score_1"] = np.clip(f["score"] + shift * (f["group:sex"] == "M"), 0, 1)
            f["score_0"] = 1 - f["score"]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                t = score_predictions(f, task="classification", grouping="sex", n_boot=0)
            t = t.assign(suite="s", dataset=f"b{b}", grouping="sex", method=method, seed=0, strategy="overall")
            tables.append(t[list(RESULT_COLUMNS)])
    return pd.concat(tables, ignore_index=True)


def test_a_nan_block_is_dropped_from_the_ranking_not_ranked_best(tmp_path: Path) -> None:
    results = _results(np.random.default_rng(3))
    gaps = results[results["metric"] == "auc_gap"].set_index(["dataset", "method"])["value"]
    assert gaps.loc[("b0", "good")] != gaps.loc[("b0", "good")]  # NaN, not the 0 it used to be
    bm = block_matrix(results, "auc_gap", strategy="overall")
    assert list(bm.matrix.index.get_level_values(0)) == ["b1", "b2"] and ("b0", "sex") in bm.dropped_blocks
    complete = gaps.drop("b0", level=0).unstack("method")
    assert average_ranks(bm.matrix, False).to_dict() == average_ranks(complete, False).to_dict()
    build_leaderboard(results, tmp_path, suite="s")
    index = (tmp_path / "index.html").read_text()
    assert "1 incomplete block(s) dropped" in index and "b0 × sex (no value for good, other)" in index
    page = (tmp_path / "b0__sex.html").read_text()
    assert ">undefined<" in page and "fewer than two groups with a defined auc" in page
    assert "0.000 [0.000, 0.000]" not in page
