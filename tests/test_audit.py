"""``medfairx audit``: outside predictions scored like a run, checked against fairlearn and ``medfairx report``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from fairlearn.metrics import MetricFrame, false_positive_rate, true_positive_rate
from sklearn.metrics import precision_recall_curve, roc_auc_score

from medfairx.cli import cli
from medfairx.errors import ConfigError, DataError
from medfairx.report.audit import SELF_THRESHOLD, audit

N = 3000
N_BOOT = 200
EFFECT = {"A": 1.6, "B": 1.0, "C": 0.4}  # score separation per group: AUC differs by group


def make_predictions(seed: int = 0, n: int = N) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    group = np.array(list(EFFECT))[rng.integers(0, 3, n)]
    y = (rng.random(n) < np.where(group == "C", 0.3, 0.5)).astype(int)
    logit = rng.normal(0, 1, n) + np.array([EFFECT[g] for g in group]) * (2 * y - 1) - 0.3 * (group == "B")
    return pd.DataFrame({
        "image": [f"img{i:05d}" for i in range(n)],
        "y": y,
        "p": 1 / (1 + np.exp(-logit)),
        "site": group,
        "age": rng.integers(18, 95, n).astype(float),
        "part": np.where(rng.random(n) < 0.3, "val", "test"),
    })


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("audit") / "preds.csv"
    make_predictions().to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def with_val(csv_path):
    return audit(csv_path, label="y", score="p", sensitive=["site"], split_col="part", id_col="image", n_boot=N_BOOT)


def f1_threshold(y: np.ndarray, s: np.ndarray) -> float:
    """F1-optimal threshold by scikit-learn's precision-recall curve (an independent reference)."""
    precision, recall, thresholds = precision_recall_curve(y, s)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))[:-1]
    best = np.flatnonzero(f1 == f1.max())
    return float(thresholds[best[-1]])  # ties go to the largest threshold


def fairlearn_frame(df: pd.DataFrame, threshold: float) -> pd.DataFrame:
    auc = MetricFrame(metrics={"auc": roc_auc_score}, y_true=df["y"], y_pred=df["p"], sensitive_features=df["site"])
    rates = MetricFrame(metrics={"tpr": true_positive_rate, "fpr": false_positive_rate}, y_true=df["y"],
                        y_pred=(df["p"] >= threshold).astype(int), sensitive_features=df["site"])
    return pd.concat([auc.by_group, rates.by_group], axis=1)


def test_matches_fairlearn_metricframe_with_validation_part(with_val):
    df = make_predictions()
    val, test = df[df["part"] == "val"], df[df["part"] == "test"]
    threshold = f1_threshold(val["y"].to_numpy(), val["p"].to_numpy())
    assert with_val.thresholds["site"] == pytest.approx(threshold, abs=0)
    ref = fairlearn_frame(test, threshold)
    got = with_val.by_group.loc["site"][["auc", "tpr", "fpr"]]
    assert ref.loc["A", "auc"] - ref.loc["C", "auc"] > 0.1  # the group effect is there
    np.testing.assert_allclose(got.loc[ref.index].to_numpy(), ref.to_numpy(), rtol=0, atol=1e-9)
    overall = with_val.overall
    assert overall["auc"] == pytest.approx(roc_auc_score(test["y"], test["p"]), abs=1e-9)


def test_without_validation_part_thresholds_come_from_audited_rows(csv_path):
    res = audit(csv_path, label="y", score="p", sensitive="site", n_boot=0)
    df = make_predictions()
    threshold = f1_threshold(df["y"].to_numpy(), df["p"].to_numpy())
    assert res.thresholds["site"] == pytest.approx(threshold, abs=0)
    ref = fairlearn_frame(df, threshold)
    np.testing.assert_allclose(res.by_group.loc["site"].loc[ref.index, ["auc", "tpr", "fpr"]].to_numpy(),
                               ref.to_numpy(), rtol=0, atol=1e-9)
    assert res.notes == [SELF_THRESHOLD] and res.settings["threshold_source"] == "audited rows"
    assert int(res.results.loc[(res.results["metric"] == "auc") & (res.results["scope"] == "overall"), "n"].iloc[0]) == N


def _store_from(df: pd.DataFrame, root: Path) -> Path:
    """A one-run store holding the same predictions, written the way the runner lays it out."""
    run = root / "runs" / "ext" / "model-s0"
    run.mkdir(parents=True)
    preds = pd.DataFrame({"run_id": run.name, "split": df["part"], "sample_id": df["image"],
                          "group:site": df["site"], "y_true": df["y"], "score": df["p"],
                          "score_0": 1 - df["p"], "score_1": df["p"]})
    preds.to_parquet(run / "predictions.parquet")
    json.dump(dict(run_id=run.name, suite="ext", status="ok", method="model", dataset="preds",
                   task="classification", num_classes=2, train_grouping=None, groupings=["site"], seed=0,
                   error=None), (run / "run.json").open("w"))
    return root / "runs" / "ext"


def test_cis_equal_medfairx_report_on_the_same_predictions(csv_path, tmp_path):
    store = _store_from(make_predictions(), tmp_path)
    out = tmp_path / "board" / "ext"
    result = CliRunner().invoke(cli, ["report", str(store), "-o", str(out), "--n-boot", str(N_BOOT)])
    assert result.exit_code == 0, result.output
    report = pd.read_csv(out / "results.csv")
    report = report[report["strategy"] == "final"]
    res = audit(csv_path, label="y", score="p", sensitive="site", split_col="part", id_col="image", n_boot=N_BOOT)
    key = ["metric", "scope", "group"]
    mine = res.results.assign(group=res.results["group"].replace("", np.nan))
    merged = report.merge(mine, on=key, suffixes=("_report", "_audit"), validate="one_to_one")
    assert len(merged) == len(mine) == len(report) and len(merged) > 50
    for col in ("value", "ci_low", "ci_high", "delong_low", "delong_high", "n", "threshold"):
        np.testing.assert_allclose(merged[f"{col}_audit"].to_numpy(float), merged[f"{col}_report"].to_numpy(float),
                                   rtol=1e-12, atol=1e-12, equal_nan=True, err_msg=col)
    auc_ci = merged[(merged["metric"] == "auc") & (merged["scope"] == "group")]
    assert auc_ci["ci_low_audit"].notna().all() and auc_ci["delong_low_audit"].notna().all()


def test_cli_writes_pages_csv_and_json(csv_path, tmp_path):
    out = tmp_path / "audit"
    args = ["audit", str(csv_path), "--label", "y", "--score", "p", "--sensitive", "site,age", "--bins",
            "age=40,60,80", "--intersect", "site,age", "--id-col", "image", "--n-boot", "20", "-o", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    for name in ("index.html", "preds__site.html", "preds__age.html", "preds__site_x_age.html", "results.csv",
                 "audit.json", "provenance.json", "method-model.html"):
        assert (out / name).is_file(), name
    results = pd.read_csv(out / "results.csv")
    assert {"ci_low", "ci_high", "delong_low", "delong_high"} <= set(results.columns)
    assert set(results["grouping"]) == {"site", "age", "site_x_age"}
    page = (out / "preds__site.html").read_text(encoding="utf-8")
    assert "chosen on the audited data itself" in page
    assert "chosen on the audited data itself" in (out / "index.html").read_text(encoding="utf-8")
    doc = json.loads((out / "audit.json").read_text(encoding="utf-8"))
    assert doc["settings"]["threshold_source"] == "audited rows"
    assert set(doc["by_group"]["site"]) == set(EFFECT) and "auc" in doc["by_group"]["site"]["A"]
    assert "warning:" in result.output


def test_page_with_validation_part_has_no_warning(csv_path, tmp_path, with_val):
    with_val.write(tmp_path / "out")
    page = (tmp_path / "out" / "preds__site.html").read_text(encoding="utf-8")
    assert "chosen on the audited data itself" not in page
    assert json.loads((tmp_path / "out" / "audit.json").read_text())["settings"]["threshold_source"] == "validation part"


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # tiny groups: some rates are undefined
def test_bins_and_intersections_follow_the_catalogue_rules():
    from medfairx.data.groupings import BinsRule

    df = pd.DataFrame({"y": [0, 1] * 6, "p": np.linspace(0.05, 0.95, 12), "sex": ["F", "M"] * 6,
                       "age": [40, 40.5, 60, 61, 80, 81, 10, 90, 59, 60.1, 79.9, 100]})
    res = audit(df, label="y", score="p", sensitive="age", bins={"age": [40, 60, 80]}, intersect=[["sex", "age"]],
                n_boot=0)
    expected = BinsRule("age", column="age", bins=(40.0, 60.0, 80.0))(df).astype(str)
    n = res.results[(res.results["grouping"] == "age") & (res.results["metric"] == "auc") & (res.results["scope"] == "group")]
    assert dict(zip(n["group"], n["n"], strict=False)) == expected.value_counts().to_dict()
    assert set(n["group"]) == {"<=40", "(40, 60]", "(60, 80]", ">80"}  # right-closed: 40 is in <=40, 60 in (40, 60]
    inter = set(res.by_group.loc["sex_x_age"].index)
    assert {"F|<=40", "M|(40, 60]"} <= inter
    assert res.by_group.loc["age", "auc"].notna().any()


def test_cli_bins_string_form_equals_mapping():
    df = make_predictions(n=400)
    a = audit(df, label="y", score="p", sensitive="age", bins=["age=60"], n_boot=0)
    b = audit(df, label="y", score="p", sensitive="age", bins={"age": [60]}, n_boot=0)
    pd.testing.assert_frame_equal(a.by_group, b.by_group)
    assert set(a.by_group.loc["age"].index) == {"<=60", ">60"}


def test_segmentation_audit_gives_group_means():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"sex": rng.choice(["F", "M"], 300), "dice": rng.beta(5, 2, 300)})
    res = audit(df, task="segmentation", sensitive="sex", n_boot=0)
    ref = df.groupby("sex")["dice"].mean()
    np.testing.assert_allclose(res.by_group.loc["sex"].loc[ref.index, "dice"].to_numpy(), ref.to_numpy(), atol=1e-12)


def test_python_entry_point_is_lazy_and_torch_free():
    import subprocess
    import sys

    code = ("import sys, medfairx; assert 'torch' not in sys.modules; from medfairx import audit, AuditResult; "
            "assert callable(audit); assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- bad input ---------------------------------------------------------------------------


def _small() -> pd.DataFrame:
    return make_predictions(n=200)


@pytest.mark.parametrize(
    ("change", "kwargs", "error", "match"),
    [
        (None, dict(label="target"), DataError, r"no column 'target' \(given as --label\); available columns: image, y, p, site"),
        (None, dict(sensitive="sex"), DataError, r"no column 'sex' \(given as --sensitive\); available columns:"),
        (lambda d: d.assign(p=d["p"].astype(str).where(d.index != 3, "high")), {}, DataError,
         r"score column 'p' is not numeric \(e.g. 'high' at row 3\)"),
        (lambda d: d.assign(p=d["p"].where(d.index != 5, 1.5)), {}, DataError,
         r"1 value\(s\) that are outside \[0, 1\] \(first at row 5: 1.5\)"),
        (lambda d: d.assign(p=d["p"].where(d.index != 7, np.nan)), {}, DataError, r"missing \(NaN\) \(first at row 7"),
        (lambda d: d.assign(y=d["y"].where(d.index != 2, 2)), {}, DataError,
         r"label column 'y' has value\(s\) other than 0/1: 2 \(first at row 2\)"),
        (lambda d: d.assign(y=1), {}, DataError, r"label column 'y' has a single class \(1\)"),
        (lambda d: d.assign(site="A"), {}, DataError,
         r"sensitive attribute 'site' has 1 group\(s\) \(A\); a fairness audit needs at least 2"),
        (None, dict(split_col="part", val_value="validation"), DataError, r"no row equal to 'validation' \(values: test, val\)"),
        (None, dict(bins=["age=young"]), ConfigError, r"--bins 'age=young': expected COLUMN=CUT"),
        (lambda d: d.assign(image="same"), dict(id_col="image"), DataError, r"duplicate value\(s\) \['same'\]"),
    ],
)
def test_bad_input_is_one_clear_line(change, kwargs, error, match):
    df = _small() if change is None else change(_small())
    args = dict(label="y", score="p", sensitive="site", n_boot=0) | kwargs
    if "bins" in kwargs:
        args["sensitive"] = ["site", "age"]
    with pytest.raises(error, match=match) as info:
        audit(df, **args)
    assert "\n" not in str(info.value)


def test_cli_error_exits_2_with_one_line(csv_path):
    result = CliRunner().invoke(cli, ["audit", str(csv_path), "--label", "nope", "--score", "p", "--sensitive", "site"])
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "no column 'nope'" in lines[0] and "available columns: image, y, p" in lines[0]
