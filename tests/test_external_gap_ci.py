"""The interval of the change in the gap (external gap − in-distribution gap) on the external view."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from medfairx.metrics.catalogue import BY_NAME
from medfairx.metrics.engine import Problem
from medfairx.metrics.external import GAP_CHANGE_NOTE, _gap_change_row, gap_change
from medfairx.report.external import EXTERNAL_JSON, external_json, external_tables, write_external_report


def _frame(n: int, seed: int, shift: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.choice(["f", "m"], n)
    y = rng.integers(0, 2, n)
    s = 1 / (1 + np.exp(-(rng.normal(0, 1, n) + y * (1.0 + shift * (g == "m")))))
    return pd.DataFrame({"sample_id": [f"s{seed}_{i:04d}" for i in range(n)], "y_true": y, "score": np.round(s, 2),
                         "group:sex": g})


def _reference_gaps(frame: pd.DataFrame, n_boot: int, seed: int) -> tuple[float, np.ndarray]:
    """Point gap and replicate gaps of a plain stratified bootstrap (group x label), sklearn AUC."""
    y, s, g = frame["y_true"].to_numpy(), frame["score"].to_numpy(), frame["group:sex"].to_numpy()
    names = sorted(set(g))

    def gap(idx: np.ndarray) -> float:
        aucs = [roc_auc_score(y[idx][g[idx] == k], s[idx][g[idx] == k]) for k in names]
        return max(aucs) - min(aucs)

    strata = np.array([names.index(k) for k in g]) * 2 + y
    reps = []
    for b in range(n_boot):
        rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(n_boot)[b])
        idx = np.concatenate([m[rng.integers(0, m.size, m.size)]
                              for m in (np.flatnonzero(strata == t) for t in np.unique(strata))])
        reps.append(gap(idx))
    return gap(np.arange(len(y))), np.array(reps)


def _problem(frame: pd.DataFrame) -> Problem:
    return Problem.build("classification", frame["group:sex"], y_true=frame["y_true"], y_score=frame["score"])


def test_gap_change_equals_a_plain_independent_bootstrap_of_each_set():
    ind, ext = _frame(160, 0, 0.0), _frame(120, 1, 1.5)
    value, lo, hi = gap_change(_problem(ind), _problem(ext), BY_NAME["auc_gap"], n_boot=60, seed=3)
    id_point, id_reps = _reference_gaps(ind, 60, 3)
    ext_point, ext_reps = _reference_gaps(ext, 60, 4)  # the external set: its own, independent stream
    assert value == pytest.approx(ext_point - id_point, abs=1e-12)
    ref_lo, ref_hi = np.percentile(ext_reps - id_reps, [2.5, 97.5])
    assert (lo, hi) == (pytest.approx(ref_lo, abs=1e-12), pytest.approx(ref_hi, abs=1e-12))
    assert lo < value < hi


def test_gap_change_row_and_view_show_the_interval(tmp_path: Path):
    ind, ext = _frame(160, 0, 0.0), _frame(120, 1, 1.5)
    preds = pd.concat([ind.assign(split="test"), ext.assign(split="external:other")], ignore_index=True)
    gap_row = pd.DataFrame([{"metric": "auc_gap", "scope": "summary", "group": "", "value": 0.1, "ci_low": 0.0,
                             "ci_high": 0.2, "n": len(ext), "note": ""}])
    row = _gap_change_row(preds, gap_row, task="classification", grouping="sex", split="external:other", n_boot=60,
                          seed=3, where="test")
    value, lo, hi = gap_change(_problem(ind), _problem(ext), BY_NAME["auc_gap"], n_boot=60, seed=3)
    assert row["metric"].tolist() == ["auc_gap_change"] and row["note"].iloc[0] == GAP_CHANGE_NOTE
    assert row[["value", "ci_low", "ci_high"]].iloc[0].tolist() == pytest.approx([value, lo, hi], abs=1e-15)

    keys = {"dataset": "d", "grouping": "sex", "method": "erm", "seed": 0, "task": "classification"}
    ext_rows = pd.DataFrame([
        {**keys, "metric": "auc", "scope": "overall", "group": "", "value": 0.7, "ci_low": 0.6, "ci_high": 0.8, "n": 120},
        {**keys, "metric": "auc_gap", "scope": "summary", "group": "", "value": 0.15, "ci_low": 0.05, "ci_high": 0.3,
         "n": 120},
        {**keys, "metric": "auc_gap_change", "scope": "summary", "group": "", "value": 0.05, "ci_low": -0.02,
         "ci_high": 0.08, "n": 120},
    ]).assign(eval_set="external:other")
    id_rows = ext_rows.iloc[:2].assign(strategy="final", eval_set="test", value=[0.8, 0.1])
    (section,) = external_tables(id_rows, ext_rows)
    (m,) = section["methods"]
    assert m["change"] == pytest.approx(0.05) and (m["change_low"], m["change_high"]) == (-0.02, 0.08)
    assert external_json([section])[0]["gap_change_low"] == -0.02
    write_external_report(ext_rows, id_rows, tmp_path, suite="s")
    assert "+0.050 <span class=\"muted\">[-0.020, 0.080]</span>" in (tmp_path / "external.html").read_text()
    (entry,) = json.loads((tmp_path / EXTERNAL_JSON).read_text())
    assert (entry["gap_change"], entry["gap_change_low"], entry["gap_change_high"]) == pytest.approx((0.05, -0.02, 0.08))
