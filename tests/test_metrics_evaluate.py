"""evaluate_runs / collect_failures / aggregate_seeds over a fabricated run store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from medfairx.metrics.evaluate import (
    RESULT_COLUMNS,
    aggregate_seeds,
    collect_failures,
    evaluate_runs,
)
from medfairx.metrics.thresholds import choose_threshold
from medfairx.selection import select_worst_group

N = 240


def _frame(rng: np.random.Generator, task: str, strength: float = 1.0, test_labels: np.ndarray | None = None):
    rows = []
    for split in ("val", "test"):
        sex = np.array(["F", "M"])[np.arange(N) % 2]
        age = np.array(["<60", ">=60", None], dtype=object)[np.arange(N) % 3]
        df = pd.DataFrame({"split": split, "sample_id": [f"{split}-{i:03d}" for i in range(N)],
                           "patient_id": [f"p{i}" for i in range(N)], "group:sex": sex, "group:age": age})
        if task == "classification":
            y = rng.integers(0, 2, N)
            s = 1 / (1 + np.exp(-(rng.normal(0, 1, N) + strength * y - 0.3 * (sex == "M"))))
            if split == "test" and test_labels is not None:
                y = test_labels
            df["y_true"], df["score"], df["score_0"], df["score_1"] = y, s, 1 - s, s
        else:
            d = np.clip(rng.beta(6, 2, N) - 0.1 * (sex == "M"), 0, 1)
            df["dice"], df["iou"], df["loss"] = d, d / (2 - d), 1 - d
        rows.append(df)
    return pd.concat(rows, ignore_index=True)


def make_store(root: Path, *, test_labels: np.ndarray | None = None) -> Path:
    """runs/<suite>/<run_id>/: two ERM seeds with epochs, one segmentation run, one failure."""
    runs = root / "runs"
    for seed in (0, 1):
        rng = np.random.default_rng(seed)
        d = runs / "suite1" / f"erm-toy-s{seed}"
        d.mkdir(parents=True)
        json.dump(dict(run_id=d.name, suite="suite1", status="ok", method="erm", dataset="toy",
                       task="classification", num_classes=2, train_grouping=None, groupings=["sex", "age"],
                       seed=seed, selected_epoch=2, error=None), (d / "run.json").open("w"))
        _frame(rng, "classification", test_labels=test_labels).assign(run_id=d.name).to_parquet(
            d / "predictions.parquet")
        epochs = [_frame(np.random.default_rng(100 * seed + e), "classification", strength=st,
                         test_labels=test_labels).assign(epoch=e) for e, st in enumerate([0.2, 2.0, 1.0])]
        pd.concat(epochs, ignore_index=True).to_parquet(d / "epochs.parquet")
    d = runs / "suite1" / "unet-seg-s0"
    d.mkdir(parents=True)
    json.dump(dict(run_id=d.name, suite="suite1", status="ok", method="erm", dataset="segtoy", task="segmentation",
                   num_classes=2, train_grouping=None, groupings=["sex"], seed=0, error=None),
              (d / "run.json").open("w"))
    _frame(np.random.default_rng(5), "segmentation").to_parquet(d / "predictions.parquet")
    d = runs / "suite1" / "groupdro-toy-s0"
    d.mkdir(parents=True)
    json.dump(dict(run_id=d.name, suite="suite1", status="failed", method="groupdro", dataset="toy",
                   task="classification", train_grouping="sex", groupings=["sex"], seed=0,
                   error=dict(type="TrainingError", message="NaN loss at epoch 3", traceback="...")),
              (d / "run.json").open("w"))
    return runs


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def results(store) -> pd.DataFrame:
    return evaluate_runs(store, n_boot=40, seed=0)


def test_table_shape(results):
    assert list(results.columns) == list(RESULT_COLUMNS)
    assert set(results["strategy"]) == {"overall", "worst_group", "pareto", "dto", "final"}
    cls = results[results["task"] == "classification"]
    assert set(cls["grouping"]) == {"sex", "age"}  # group-unaware run scored under every grouping
    assert set(cls["seed"]) == {0, 1}
    assert set(results.loc[results["task"] == "segmentation", "grouping"]) == {"sex"}
    assert set(results["scope"]) == {"overall", "group", "summary"}
    assert (results.loc[results["scope"] != "group", "group"] == "").all()
    assert set(cls.loc[(cls["grouping"] == "age") & (cls["scope"] == "group"), "group"]) == {"<60", ">=60"}
    assert results["threshold"].notna().all() == False  # noqa: E712 - segmentation rows have no threshold
    assert cls["threshold"].notna().all()
    assert "groupdro" not in set(results["method"])
    ok = results["ci_low"].notna()
    assert ok.mean() > 0.95


def test_values_against_sklearn(store, results):
    pred = pd.read_parquet(store / "suite1" / "erm-toy-s0" / "predictions.parquet")
    test = pred[pred["split"] == "test"]
    val = pred[pred["split"] == "val"]
    r = results[(results["seed"] == 0) & (results["strategy"] == "final") & (results["grouping"] == "sex")
                & (results["task"] == "classification")]
    auc = r[(r["metric"] == "auc") & (r["scope"] == "overall")].iloc[0]
    assert auc["value"] == pytest.approx(roc_auc_score(test["y_true"], test["score"]), abs=1e-9)
    assert auc["n"] == len(test)
    assert auc["prevalence"] == pytest.approx(test["y_true"].mean())
    t = choose_threshold(val["y_true"].to_numpy(), val["score"].to_numpy(), "f1")
    assert (r["threshold"] == t).all()
    tpr = r[(r["metric"] == "tpr") & (r["scope"] == "group") & (r["group"] == "F")].iloc[0]
    f = test[test["group:sex"] == "F"]
    assert tpr["value"] == pytest.approx(((f["score"] >= t) & (f["y_true"] == 1)).sum() / (f["y_true"] == 1).sum())
    # age: samples with no group are excluded
    r_age = results[(results["seed"] == 0) & (results["strategy"] == "final") & (results["grouping"] == "age")
                    & (results["metric"] == "auc") & (results["scope"] == "overall")].iloc[0]
    keep = test["group:age"].notna()
    assert r_age["value"] == pytest.approx(roc_auc_score(test["y_true"][keep], test["score"][keep]), abs=1e-9)


def test_strategy_rows_use_the_chosen_epoch(store, results):
    epochs = pd.read_parquet(store / "suite1" / "erm-toy-s1" / "epochs.parquet")
    chosen = select_worst_group(epochs[epochs["split"] == "val"], task="classification", group_column="group:sex")
    test = epochs[(epochs["epoch"] == chosen) & (epochs["split"] == "test")]
    r = results[(results["seed"] == 1) & (results["strategy"] == "worst_group") & (results["grouping"] == "sex")
                & (results["metric"] == "auc") & (results["scope"] == "overall")].iloc[0]
    assert r["value"] == pytest.approx(roc_auc_score(test["y_true"], test["score"]), abs=1e-9)


def test_test_labels_cannot_change_thresholds_or_selection(tmp_path, results):
    flipped = np.random.default_rng(42).integers(0, 2, N)
    other = evaluate_runs(make_store(tmp_path, test_labels=flipped), n_boot=0, seed=0,
                          metrics=["auc", "tpr"])
    key = ["seed", "strategy", "grouping"]
    a = results[results["task"] == "classification"].groupby(key)["threshold"].first()
    b = other.groupby(key)["threshold"].first()
    pd.testing.assert_series_equal(a, b)


def test_segmentation_rows(store, results):
    pred = pd.read_parquet(store / "suite1" / "unet-seg-s0" / "predictions.parquet")
    test = pred[pred["split"] == "test"]
    seg = results[(results["task"] == "segmentation") & (results["strategy"] == "final")]
    es = seg[seg["metric"] == "es_dice_sumabs"].iloc[0]
    means = test.groupby("group:sex")["dice"].mean()
    assert es["value"] == pytest.approx(test["dice"].mean() / (1 + (test["dice"].mean() - means).abs().sum()))
    assert np.isnan(es["threshold"])


def test_failures_and_seed_aggregation(store, results):
    fails = collect_failures(store)
    assert fails[["method", "grouping", "error_type"]].values.tolist() == [["groupdro", "sex", "TrainingError"]]
    assert fails["error_message"].iloc[0] == "NaN loss at epoch 3"
    agg = aggregate_seeds(results)
    sel = (agg["dataset"] == "toy") & (agg["strategy"] == "final") & (agg["grouping"] == "sex") & (
        agg["metric"] == "auc_gap")
    row = agg[sel].iloc[0]
    vals = results[(results["dataset"] == "toy") & (results["strategy"] == "final") & (results["grouping"] == "sex")
                   & (results["metric"] == "auc_gap")]["value"]
    assert row["n_seeds"] == 2
    assert row["mean"] == pytest.approx(vals.mean())
    assert row["std"] == pytest.approx(vals.std(ddof=1))


def test_plugin_metric_is_scored_by_explicit_resampling(store, monkeypatch):
    import medfairx.metrics.evaluate as ev
    from medfairx.specs import MetricSpec

    def min_auc(y_true, y_score, *, sensitive_features, threshold=0.5):
        return min(roc_auc_score(y_true[sensitive_features == k], y_score[sensitive_features == k])
                   for k in np.unique(sensitive_features))

    spec = MetricSpec(name="my_min_auc", target=min_auc, task="classification", kind="performance",
                      higher_is_better=True)
    monkeypatch.setattr(ev, "_plugin_metric", lambda name: spec)
    out = evaluate_runs(store, metrics=["my_min_auc", "worst_group_auc"], n_boot=20, strategies=["final"])
    out = out[out["grouping"] == "sex"]
    mine = out[out["metric"] == "my_min_auc"].set_index("seed")["value"]
    ref = out[out["metric"] == "worst_group_auc"].set_index("seed")["value"]
    pd.testing.assert_series_equal(mine, ref, check_names=False, atol=1e-12)
    assert out["ci_low"].notna().all()
