"""External test sets and leave-one-value-out splits: stored as their own split, predicted without
labels, scored with the validation threshold, shown beside the in-distribution results."""

from __future__ import annotations

import types
from pathlib import Path

import pandas as pd
import pytest
import torch

from medfairx import hookimpl
from medfairx.config import load_catalogue
from medfairx.errors import ConfigError
from medfairx.methods.trainable import TrainableMethod
from medfairx.plugins import make_plugin_host
from medfairx.report.writer import write_report
from medfairx.runner.bench import BenchOptions, run_bench
from medfairx.specs import MethodSpec, MethodTags
from medfairx.store import RunStore

CATALOGUE = """
version: 1
include: [embedded]
datasets:
  synth_other:
    adapter: synthetic
    task: classification
    image_size: 32
    split: {train: 0.6, val: 0.2, test: 0.2, seed: 0}
    options: {seed: 7, n_samples: 300, spatial_dims: 2, channels: 1}
    groupings:
      group: {column: group}
      age: {column: age, bins: [60], labels: ["<=60", ">60"]}
  synth_loso:
    adapter: synthetic
    task: classification
    image_size: 32
    split: {train: 0.6, val: 0.2, test: 0.2, seed: 0}
    options: {seed: 0, n_samples: 400, spatial_dims: 2, channels: 1}
    holdout: {column: site, value: site_c}
    groupings:
      group: {column: group}
suites:
  ext:
    datasets: {synthetic_cls: [group, age]}
    evaluate_on: {synthetic_cls: [synth_other]}
    methods: [spy]
    seeds: [0]
    params: test
    backbones: {classification: tiny_cnn}
    recipe: {epochs: 1, batch_size: 32, max_steps_per_epoch: 2}
  loso:
    datasets: {synth_loso: [group]}
    methods: [erm]
    seeds: [0]
    params: test
    backbones: {classification: tiny_cnn}
    recipe: {epochs: 1, batch_size: 32, max_steps_per_epoch: 2}
  partial:
    datasets: {synthetic_cls: [group]}
    evaluate_on: {synthetic_cls: {synth_other: [age]}}
    methods: [erm, stratified]
    seeds: [0]
    params: test
    backbones: {classification: tiny_cnn}
    recipe: {epochs: 1, batch_size: 32, max_steps_per_epoch: 2}
  frozen:
    datasets: {synthetic_cls: [group], synth_loso: [group]}
    evaluate_on: {synthetic_cls: [synth_other]}
    methods: [erm]
    seeds: [0]
    params: test
    protocol: linear_probe
    encoder: {backbone: tiny_cnn, pretrained: false}
    recipe: {epochs: 1, batch_size: 32, max_steps_per_epoch: 2}
"""

SEEN: list[tuple[int, object]] = []


class Spy(TrainableMethod):
    """ERM that records what every predict call is handed."""

    def predict_scores(self, data, ctx):  # type: ignore[no-untyped-def]
        SEEN.append((len(data.sample_ids), data.labels))
        return super().predict_scores(data, ctx)


@hookimpl
def register_methods(register):  # type: ignore[no-untyped-def]
    register(MethodSpec("spy", Spy, MethodTags(), summary="records predict inputs", reference="-"))


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("external")
    cfg = root / "datasets.yaml"
    cfg.write_text(CATALOGUE)
    plugin = types.ModuleType("spy_methods")
    plugin.register_methods = register_methods  # type: ignore[attr-defined]
    host = make_plugin_host(extra=(plugin,))
    catalogue = load_catalogue(cfg)
    for suite in ("ext", "loso", "partial", "frozen"):
        result = run_bench(catalogue, BenchOptions(suite=suite, out=root / "runs"), host, lambda _: None)
        assert not result.failed
    return root, catalogue


def _only_record(root: Path, suite: str) -> tuple[dict, pd.DataFrame]:
    store = RunStore(root / "runs" / suite)
    (rec,) = list(store.records())
    return rec, pd.read_parquet(store.run_dir(rec["run_id"]) / "predictions.parquet")


def test_external_predictions_are_their_own_split(bench) -> None:  # type: ignore[no-untyped-def]
    from medfairx.data import load_dataset

    root, catalogue = bench
    rec, preds = _only_record(root, "ext")
    other = load_dataset(catalogue, "synth_other")
    assert set(preds["split"]) == {"val", "test", "external:synth_other"}
    ext = preds[preds["split"] == "external:synth_other"]
    assert sorted(ext["sample_id"]) == sorted(other.splits.ids("test"))
    assert {"group:group", "group:age"} <= set(ext.columns) and ext["group:group"].notna().all()
    info = rec["external"]["external:synth_other"]
    assert info["revision"] == other.revision and info["split_hash"] == other.splits.hash
    assert info["split"] == "test" and info["n"] == len(ext)


def test_external_labels_are_never_handed_to_predict(bench) -> None:  # type: ignore[no-untyped-def]
    root, _ = bench
    _, preds = _only_record(root, "ext")
    n_ext = int((preds["split"] == "external:synth_other").sum())
    final = SEEN[-3:]  # val, test, then the external set, after fit
    assert [n for n, _ in final][-1] == n_ext
    assert all(labels is None for _, labels in final)


def test_external_scored_with_validation_threshold_and_shown_beside_id(bench) -> None:  # type: ignore[no-untyped-def]
    from medfairx.metrics.evaluate import score_predictions

    root, _ = bench
    out = root / "board"
    write_report(root / "runs" / "ext", out, n_boot=20)
    results = pd.read_csv(out / "results.csv")
    assert set(results["eval_set"]) == {"test", "external:synth_other"}
    ext = results[(results["eval_set"] == "external:synth_other") & (results["grouping"] == "group")]
    _, preds = _only_record(root, "ext")
    frame = preds[preds["split"].isin(["val", "external:synth_other"])]
    ref = score_predictions(frame.replace({"split": {"external:synth_other": "test"}}), task="classification",
                            grouping="group", n_boot=20)
    gap = ref[(ref["metric"] == "auc_gap")]["value"].iloc[0]
    assert ext[ext["metric"] == "auc_gap"]["value"].iloc[0] == pytest.approx(gap)
    assert ext["threshold"].iloc[0] == pytest.approx(ref["threshold"].iloc[0])
    # the page: both values and the gap change, linked from the index
    idg = results[(results["eval_set"] == "test") & (results["grouping"] == "group") & (results["strategy"] == "final")
                  & (results["metric"] == "auc_gap")]["value"].iloc[0]
    page = (out / "external.html").read_text()
    assert f"{idg:.3f}" in page and f"{gap:.3f}" in page and f"{gap - idg:.3f}" in page
    assert 'href="external.html"' in (out / "index.html").read_text()


def test_missing_mapped_grouping_is_a_config_error(tmp_path: Path) -> None:
    bad = CATALOGUE.replace("evaluate_on: {synthetic_cls: [synth_other]}", "evaluate_on: {synthetic_cls: [synth_loso]}")
    (tmp_path / "datasets.yaml").write_text(bad)
    with pytest.raises(ConfigError, match=r"grouping\(s\) 'age' are not defined for external dataset 'synth_loso'"):
        load_catalogue(tmp_path / "datasets.yaml")


def test_leave_one_site_out_trains_on_no_held_out_row(bench) -> None:  # type: ignore[no-untyped-def]
    from medfairx.data import load_dataset

    root, catalogue = bench
    ds = load_dataset(catalogue, "synth_loso")
    held = set(ds.metadata.index[ds.metadata["site"] == "site_c"])
    assert held and set(ds.splits.ids("holdout")) == held
    for split in ("train", "val", "test"):
        assert not held & set(ds.splits.ids(split))
    rec, preds = _only_record(root, "loso")
    name = "external:synth_loso@site=site_c"
    assert rec["split_hash"] == ds.splits.hash
    assert set(preds.loc[preds["split"] == name, "sample_id"]) == held
    assert not held & set(preds.loc[preds["split"].isin(["val", "test"]), "sample_id"])


def _frozen_predictions(root: Path, dataset: str) -> tuple[dict, pd.DataFrame]:
    store = RunStore(root / "runs" / "frozen")
    (rec,) = [r for r in store.records() if r["dataset"] == dataset]
    return rec, pd.read_parquet(store.run_dir(rec["run_id"]) / "predictions.parquet")


def test_frozen_protocol_scores_external_and_held_out_rows_on_their_features(bench) -> None:  # type: ignore[no-untyped-def]
    import h5py

    from medfairx.data import load_dataset

    root, catalogue = bench
    rec, preds = _frozen_predictions(root, "synthetic_cls")
    assert rec["status"] == "ok" and rec["protocol"]["name"] == "linear_probe" and rec["backbone"] == "linear"
    info = rec["external"]["external:synth_other"]
    other = load_dataset(catalogue, "synth_other")
    ext = preds[preds["split"] == "external:synth_other"]
    assert sorted(ext["sample_id"]) == sorted(other.splits.ids("test")) and ext["score"].notna().all()
    # the external set was embedded by the suite's encoder, in a file of its own, named in run.json
    (path,) = (Path(catalogue.cache_path) / "embeddings").glob(f"synth_other-{info['embeddings']}.h5")
    with h5py.File(path, "r") as f:
        assert '"name": "tiny_cnn"' in f.attrs["encoder"] and f["features"].shape[1] == rec["protocol"]["feature_dim"]
    rec, preds = _frozen_predictions(root, "synth_loso")
    held = load_dataset(catalogue, "synth_loso").splits.ids("holdout")
    assert sorted(preds.loc[preds["split"] == "external:synth_loso@site=site_c", "sample_id"]) == sorted(held)


def test_frozen_external_sets_score_the_same_in_a_worker_process(bench) -> None:  # type: ignore[no-untyped-def]
    root, catalogue = bench
    result = run_bench(catalogue, BenchOptions(suite="frozen", out=root / "runs_jobs", jobs=2, datasets=["synthetic_cls"]),
                       make_plugin_host(), lambda _: None)
    assert not result.failed and len(result.done) == 1
    _, here = _frozen_predictions(root, "synthetic_cls")
    (rec,) = list(RunStore(root / "runs_jobs" / "frozen").records())
    there = pd.read_parquet(RunStore(root / "runs_jobs" / "frozen").run_dir(rec["run_id"]) / "predictions.parquet")
    cols = ["split", "sample_id", "score"]
    pd.testing.assert_frame_equal(here[cols].sort_values(cols[:2]).reset_index(drop=True),
                                  there[cols].sort_values(cols[:2]).reset_index(drop=True), atol=1e-6)


def test_a_set_without_the_grouping_a_method_predicts_with_is_undefined_with_its_reason(bench) -> None:  # type: ignore[no-untyped-def]
    """Group-specific models cannot score a set that lacks their grouping: the run keeps everything else."""
    root, _ = bench
    store = RunStore(root / "runs" / "partial")
    records = {r["method"]: r for r in store.records()}
    assert {r["status"] for r in records.values()} == {"ok"}
    reason = records["stratified"]["external"]["external:synth_other"]["not_scored"]
    assert "'group'" in reason and "synth_other" in reason
    assert "not_scored" not in records["erm"]["external"]["external:synth_other"]
    preds = pd.read_parquet(store.run_dir(records["stratified"]["run_id"]) / "predictions.parquet")
    assert set(preds["split"]) == {"val", "test"}  # its own test predictions are kept
    out = root / "partial_board"
    write_report(root / "runs" / "partial", out, n_boot=20)
    results = pd.read_csv(out / "results.csv")
    ext = results[results["eval_set"] == "external:synth_other"]
    mine = ext[ext["method"] == "stratified"]
    assert set(mine["metric"]) == {"auc", "auc_gap"} and mine["value"].isna().all()
    assert mine["note"].str.startswith("not scored: ").all()
    assert ext[(ext["method"] == "erm") & (ext["metric"] == "auc")]["value"].notna().all()
    page = (out / "external.html").read_text()
    assert "undefined (not scored: stratified predicts with its" in page
