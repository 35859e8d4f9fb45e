"""End to end: a tiny suite through the runner, the store, resume and failure isolation."""

from __future__ import annotations

import json
import math
import re
import types
from pathlib import Path

import pandas as pd
import pytest
import torch

from medfairx import hookimpl
from medfairx.config import load_catalogue
from medfairx.methods.trainable import TrainableMethod
from medfairx.plugins import make_plugin_host
from medfairx.runner.bench import BenchOptions, run_bench
from medfairx.specs import MethodSpec, MethodTags
from medfairx.store import RunStore, read_data_cards

SUITE = """
version: 1
include: [embedded]
suites:
  tiny:
    datasets: {synthetic_cls: [group, site], synthetic_seg: [group]}
    methods: [erm, groupdro, boom, nanny]
    seeds: [0]
    params: test
    backbones: {classification: tiny_cnn, segmentation: tiny_unet}
    recipe: {epochs: 1, batch_size: 32, max_steps_per_epoch: 2}
"""


class Boom(TrainableMethod):
    """Raises in fit, as a buggy third-party method would."""

    def fit(self, train, val, ctx):  # type: ignore[no-untyped-def]
        raise RuntimeError("deliberate failure inside fit")


class Nanny(TrainableMethod):
    """Produces a NaN loss."""

    def compute_loss(self, outputs, batch, ctx):  # type: ignore[no-untyped-def]
        return outputs.sum() * float("nan")


@hookimpl
def register_methods(register):  # type: ignore[no-untyped-def]
    register(MethodSpec("boom", Boom, MethodTags(), summary="fails", reference="-"))
    register(MethodSpec("nanny", Nanny, MethodTags(), summary="nan", reference="-"))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("bench")
    cfg = root / "datasets.yaml"
    cfg.write_text(SUITE)
    plugin = types.ModuleType("failing_methods")
    plugin.register_methods = register_methods  # type: ignore[attr-defined]
    host = make_plugin_host(extra=(plugin,))
    catalogue = load_catalogue(cfg)
    opts = BenchOptions(suite="tiny", out=root / "runs")
    lines: list[str] = []
    first = run_bench(catalogue, opts, host, lines.append)
    second = run_bench(catalogue, opts, host, lines.append)
    return root, host, catalogue, first, second, lines


def test_runs_are_planned_per_grouping_and_failures_are_isolated(sweep) -> None:  # type: ignore[no-untyped-def]
    root, _, _, first, _, lines = sweep
    store = RunStore(root / "runs" / "tiny")
    recs = {(r["method"], r["dataset"], r["train_grouping"]): r for r in store.records()}
    # erm: once per dataset; groupdro: once per grouping; boom/nanny: classification only
    assert recs[("erm", "synthetic_cls", None)]["groupings"] == ["group", "site"]
    assert {k for k in recs if k[0] == "groupdro"} == {
        ("groupdro", "synthetic_cls", "group"), ("groupdro", "synthetic_cls", "site"), ("groupdro", "synthetic_seg", "group")
    }
    boom = recs[("boom", "synthetic_cls", None)]
    assert boom["status"] == "failed" and "deliberate failure inside fit" in boom["error"]["message"]
    assert "Traceback" in boom["error"]["traceback"]
    nan = recs[("nanny", "synthetic_cls", None)]
    assert nan["status"] == "failed" and nan["error"]["type"] == "TrainingError" and "NaN loss" in nan["error"]["message"]
    assert len(first.failed) == 2 and len(first.done) == len(recs) - 2
    assert any("FAILED: RuntimeError: deliberate failure inside fit" in line for line in lines)


def test_rerun_skips_finished_runs(sweep) -> None:  # type: ignore[no-untyped-def]
    _, _, _, first, second, _ = sweep
    assert sorted(second.skipped) == sorted(first.done)
    assert sorted(second.failed) == sorted(first.failed)  # failed runs are retried
    assert second.done == []


def test_predictions_hold_scores_groups_and_attributes(sweep) -> None:  # type: ignore[no-untyped-def]
    root, _, _, _, _, _ = sweep
    store = RunStore(root / "runs" / "tiny")
    for rec in store.records():
        if rec["status"] != "ok":
            assert not (store.run_dir(rec["run_id"]) / "predictions.parquet").exists()
            continue
        pred = pd.read_parquet(store.run_dir(rec["run_id"]) / "predictions.parquet")
        assert set(pred["split"]) == {"val", "test"}
        assert {"sample_id", "patient_id", "group", "site", "age", "hard"} <= set(pred.columns)
        assert all(f"group:{g}" in pred for g in rec["groupings"])
        if rec["task"] == "classification":
            assert pred["score"].between(0, 1).all()
            assert ((pred["score_0"] + pred["score_1"]) - 1).abs().max() < 1e-5
            assert set(pred["y_true"]) <= {0, 1}
        else:
            assert pred["dice"].between(0, 1).all() and pred["iou"].le(pred["dice"] + 1e-12).all()
        assert rec["split_hash"] and rec["dataset_revision"] and rec["versions"]["medfairx"]


def test_val_and_test_predictions_match_the_splits(sweep) -> None:  # type: ignore[no-untyped-def]
    from medfairx.data import load_dataset

    root, _, catalogue, _, _, _ = sweep
    ds = load_dataset(catalogue, "synthetic_cls")
    store = RunStore(root / "runs" / "tiny")
    rec = next(r for r in store.records() if r["method"] == "erm" and r["dataset"] == "synthetic_cls")
    pred = pd.read_parquet(store.run_dir(rec["run_id"]) / "predictions.parquet")
    for split in ("val", "test"):
        assert sorted(pred.loc[pred["split"] == split, "sample_id"]) == sorted(map(str, ds.splits.ids(split)))


def test_report_lists_failed_runs(sweep) -> None:  # type: ignore[no-untyped-def]
    from medfairx.cli.report_cmd import write_report

    root, _, _, _, _, _ = sweep
    index = write_report(root / "runs" / "tiny", root / "leaderboards" / "tiny", suite="tiny", n_boot=50)
    html = index.read_text()
    assert "deliberate failure inside fit" in html and "NaN loss" in html
    assert (root / "leaderboards" / "index.html").exists()
    results = pd.read_csv(root / "leaderboards" / "tiny" / "results.csv")
    auc = results[(results.metric == "auc") & (results.scope == "overall") & (results.method == "erm")]
    assert len(auc) and all(0 <= v <= 1 for v in auc["value"] if not math.isnan(v))
    prov = json.loads((root / "leaderboards" / "tiny" / "provenance.json").read_text())
    assert prov["seeds"] == [0]


def test_bench_records_data_cards_and_the_report_reads_them_without_loading_data(sweep, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The data cards describe the data as the sweep found them; the report never re-loads a dataset."""
    from medfairx.data import dataset as dataset_module
    from medfairx.report.writer import write_report

    root, _, catalogue, _, _, _ = sweep
    cards = read_data_cards([root / "runs" / "tiny"])
    assert sorted(cards) == ["synthetic_cls", "synthetic_seg"]
    now = dataset_module.describe_dataset(catalogue, "synthetic_cls")
    recorded = cards["synthetic_cls"]["description"]
    assert recorded["samples"] == now["samples"] and recorded["split_hash"] == now["split_hash"]
    assert recorded["groupings"]["group"]["groups"] == json.loads(json.dumps(now["groupings"]["group"]["groups"]))
    assert list(recorded["splits"]) == list(now["splits"]) and list(recorded["groupings"]) == list(now["groupings"])

    def no_loading(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the report loaded a dataset")

    monkeypatch.setattr(dataset_module, "load_dataset", no_loading)
    out = root / "leaderboards" / "cards"
    write_report(root / "runs" / "tiny", out, suite="tiny", n_boot=20, reporters=["html"])
    page = (out / "data-synthetic_cls.html").read_text()
    assert f"{now['samples']}" in page and now["split_hash"] in page and "could not be described" not in page


def test_a_grouping_added_later_is_scored_without_retraining(sweep) -> None:  # type: ignore[no-untyped-def]
    from medfairx.data import load_dataset

    root, host, _, _, _, _ = sweep
    cfg = root / "datasets_more.yaml"
    cfg.write_text(SUITE.replace("synthetic_cls: [group, site]", "synthetic_cls: [group, site, age]"))
    catalogue = load_catalogue(cfg)
    lines: list[str] = []
    result = run_bench(catalogue, BenchOptions(suite="tiny", out=root / "runs", methods=["erm"]), host, lines.append)
    assert result.done == [] and result.failed == []
    store = RunStore(root / "runs" / "tiny")
    rec = next(r for r in store.records() if r["method"] == "erm" and r["dataset"] == "synthetic_cls")
    assert rec["groupings"] == ["group", "site", "age"]
    pred = pd.read_parquet(store.run_dir(rec["run_id"]) / "predictions.parquet")
    labels = pd.concat([load_dataset(catalogue, "synthetic_cls").group_labels(s) for s in ("val", "test")])
    assert pred["group:age"].tolist() == labels.loc[pred["sample_id"], "age"].tolist()
    assert any("rescored" in line for line in lines)


def test_precision_and_compile_are_recorded_but_not_part_of_the_run_id(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from medfairx.cli.bench_cmd import bench

    cfg = tmp_path / "datasets.yaml"
    cfg.write_text(SUITE.replace("[erm, groupdro, boom, nanny]", "[erm]").replace(", synthetic_seg: [group]", ""))
    args = ["--config", str(cfg), "--suite", "tiny", "--out", str(tmp_path / "runs"), "--no-report"]
    first = CliRunner().invoke(bench, [*args, "--precision", "fp32"])
    assert first.exit_code == 0, first.output
    store = RunStore(tmp_path / "runs" / "tiny")
    (rec,) = store.records()
    assert rec["amp"] is False and rec["compile"] is False
    # the same run with other execution settings is the same model: reused, not retrained
    again = CliRunner().invoke(bench, [*args, "--precision", "auto"])
    assert again.exit_code == 0, again.output
    assert "0 ran, 1 reused" in again.output
    (rec2,) = RunStore(tmp_path / "runs" / "tiny").records()
    assert rec2["run_id"] == rec["run_id"] and rec2["amp"] is False


def test_an_unknown_precision_is_refused_with_the_choices(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from medfairx.cli.bench_cmd import bench

    res = CliRunner().invoke(bench, ["--precision", "fp8", "--out", str(tmp_path)])
    assert res.exit_code == 2
    assert "fp8" in res.output and "auto" in res.output and "fp32" in res.output


class Chatty(TrainableMethod):
    """Warns on every loss computation, as a noisy numerical routine would."""

    def compute_loss(self, outputs, batch, ctx):  # type: ignore[no-untyped-def]
        import warnings

        warnings.warn("solver did not converge", UserWarning, stacklevel=1)
        return super().compute_loss(outputs, batch, ctx)


@hookimpl
def register_chatty(register):  # type: ignore[no-untyped-def]
    register(MethodSpec("chatty", Chatty, MethodTags(), summary="warns", reference="-"))


def test_warnings_of_a_run_go_to_its_log_once_with_a_count(tmp_path: Path) -> None:
    import warnings

    cfg = tmp_path / "datasets.yaml"
    cfg.write_text(SUITE.replace("[erm, groupdro, boom, nanny]", "[chatty]").replace(", synthetic_seg: [group]", ""))
    plugin = types.ModuleType("chatty_methods")
    plugin.register_methods = register_chatty  # type: ignore[attr-defined]
    host = make_plugin_host(extra=(plugin,))
    lines: list[str] = []
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        run_bench(load_catalogue(cfg), BenchOptions(suite="tiny", out=tmp_path / "runs"), host, lines.append)
    assert not [w for w in escaped if "did not converge" in str(w.message)]
    (rec,) = RunStore(tmp_path / "runs" / "tiny").records()
    assert rec["status"] == "ok"
    (w,) = [w for w in rec["warnings"] if w["message"] == "solver did not converge"]
    assert w["category"] == "UserWarning" and w["count"] == 2  # 1 epoch x max_steps_per_epoch 2
    log = (tmp_path / "runs" / "tiny" / rec["run_id"] / "log.txt").read_text()
    assert log.count("solver did not converge") == 1 and "warning (x2): UserWarning" in log


class NanScores(TrainableMethod):
    """Trains normally but predicts NaN for every sample, as a diverged model would."""

    def predict_scores(self, data, ctx):  # type: ignore[no-untyped-def]
        import numpy as np

        return np.full_like(super().predict_scores(data, ctx), np.nan)


@hookimpl
def register_nan_scores(register):  # type: ignore[no-untyped-def]
    register(MethodSpec("nanscores", NanScores, MethodTags(), summary="predicts NaN", reference="-"))


def test_a_method_predicting_nan_scores_is_a_failed_run_and_not_on_the_leaderboard(tmp_path: Path) -> None:
    from medfairx.cli.report_cmd import write_report

    cfg = tmp_path / "datasets.yaml"
    cfg.write_text(SUITE.replace("[erm, groupdro, boom, nanny]", "[erm, nanscores]").replace(", synthetic_seg: [group]", ""))
    plugin = types.ModuleType("nan_score_methods")
    plugin.register_methods = register_nan_scores  # type: ignore[attr-defined]
    host = make_plugin_host(extra=(plugin,))
    lines: list[str] = []
    result = run_bench(load_catalogue(cfg), BenchOptions(suite="tiny", out=tmp_path / "runs"), host, lines.append)
    recs = {r["method"]: r for r in RunStore(tmp_path / "runs" / "tiny").records()}
    bad = recs["nanscores"]
    assert bad["status"] == "failed" and recs["erm"]["status"] == "ok" and len(result.failed) == 1
    assert bad["error"]["type"] == "TrainingError"
    assert re.search(r"'nanscores' returned (\d+) non-finite scores \(NaN or inf\) of \1 on split 'val'",
                     bad["error"]["message"])
    index = write_report(tmp_path / "runs" / "tiny", tmp_path / "lb" / "tiny", suite="tiny", n_boot=0)
    results = pd.read_csv(tmp_path / "lb" / "tiny" / "results.csv")
    assert set(results["method"]) == {"erm"}  # never ranked, so never ranked first
    assert "non-finite scores" in index.read_text()


ONE_GROUP_SUITE = """
version: 1
datasets:
  tiny1:
    adapter: synthetic
    task: classification
    image_size: 16
    split: {train: 0.6, val: 0.2, test: 0.2, seed: 0}
    options: {seed: 0, n_samples: 200, spatial_dims: 2, channels: 1}
    groupings:
      group: {column: group}
      majority_only: {column: group, map: {majority: majority, minority: null}}
suites:
  tiny:
    datasets: {tiny1: [group, majority_only]}
    methods: [erm]
    seeds: [0]
    params: test
    backbones: {classification: tiny_cnn}
    recipe: {epochs: 1, batch_size: 32, max_steps_per_epoch: 2}
"""


def test_bench_does_not_plan_a_grouping_left_with_one_group_and_prints_why(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from medfairx.cli.bench_cmd import bench
    from medfairx.cli.datasets_cmd import datasets

    cfg = tmp_path / "datasets.yaml"
    cfg.write_text(ONE_GROUP_SUITE)
    res = CliRunner().invoke(bench, ["--config", str(cfg), "--suite", "tiny", "--out", str(tmp_path / "runs"), "--no-report"])
    assert res.exit_code == 0, res.output
    why = "grouping 'majority_only' has 1 group(s) after exclusions; it needs 2"
    assert f"not planned: dataset 'tiny1': {why}" in res.output
    (rec,) = RunStore(tmp_path / "runs" / "tiny").records()
    assert rec["status"] == "ok" and rec["groupings"] == ["group"]
    check = CliRunner().invoke(datasets, ["check", "tiny1", "--config", str(cfg)])
    assert check.exit_code == 1 and why in check.output  # the same rule as `datasets check`
