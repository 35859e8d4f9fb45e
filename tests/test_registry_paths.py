"""The registries are the only execution path: what a third-party plugin registers is used.

A plugin written here registers a metric, a selection strategy, a reporter, a claim and a
backbone; ``medfairx bench`` (which writes the report at the end) and ``medfairx report``
must score the metric, select with the strategy, run the reporter, check the claim on the
page and build the backbone from the registry.
"""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from medfairx import hookimpl
from medfairx.cli import cli
from medfairx.plugins import make_plugin_host, set_host
from medfairx.specs import (
    BackboneSpec,
    ClaimComparison,
    ClaimSpec,
    MetricSpec,
    ReporterSpec,
    SelectionStrategySpec,
)

SUITE = """
version: 1
include: [embedded]
suites:
  tiny:
    datasets: {synthetic_cls: [group]}
    methods: [erm]
    seeds: [0]
    params: test
    backbones: {classification: tiny_cnn}
    recipe: {epochs: 2, batch_size: 32, max_steps_per_epoch: 2}
"""
CLAIM_TEXT = "ERM's overall AUC is not lower than its own (a claim registered by a third-party plugin)."


def mean_score(y_true, y_score, *, sensitive_features, threshold=0.5):  # type: ignore[no-untyped-def]
    """The toy metric: mean predicted P(positive)."""
    return float(np.mean(y_score))


def first_epoch(history, *, task, group_column):  # type: ignore[no-untyped-def]
    """The toy strategy: the first validated epoch."""
    return int(history["epoch"].min())


def rows_reporter(results, out_dir):  # type: ignore[no-untyped-def]
    """The toy reporter (takes no context keywords): row counts per metric and strategy."""
    path = Path(out_dir) / "toy_rows.json"
    path.write_text(json.dumps({"metrics": results["metric"].value_counts().to_dict(),
                                "strategies": sorted(set(results["strategy"]))}))
    return [path]


@hookimpl
def register_metrics(register):  # type: ignore[no-untyped-def]
    register(MetricSpec("toy_mean_score", mean_score, task="classification", kind="descriptive",
                        higher_is_better=True, summary="mean P(positive)"))


@hookimpl
def register_selection_strategies(register):  # type: ignore[no-untyped-def]
    register(SelectionStrategySpec("toy_first", first_epoch, summary="first epoch"))


@hookimpl
def register_reporters(register):  # type: ignore[no-untyped-def]
    register(ReporterSpec("toy_rows", rows_reporter, formats=("json",)))


@hookimpl
def register_claims(register):  # type: ignore[no-untyped-def]
    register(ClaimSpec("toy_claim", "erm", CLAIM_TEXT, (ClaimComparison("auc", "overall", "erm", "not_down"),),
                       title="Toy claim"))


def _plugin() -> types.ModuleType:
    mod = types.ModuleType("toy_third_party")
    for hook in (register_metrics, register_selection_strategies, register_reporters, register_claims):
        setattr(mod, hook.__name__, hook)
    return mod


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("registry_paths")
    (root / "datasets.yaml").write_text(SUITE)
    set_host(make_plugin_host(extra=(_plugin(),)))
    try:
        res = CliRunner().invoke(cli, ["bench", "--config", str(root / "datasets.yaml"), "--suite", "tiny",
                                       "--out", str(root / "runs"), "--report-dir", str(root / "lb" / "tiny"), "-q"])
        assert res.exit_code == 0, res.output
        yield root
    finally:
        set_host(None)


def test_bench_scores_the_plugin_metric(bench: Path) -> None:
    results = pd.read_csv(bench / "lb" / "tiny" / "results.csv")
    mine = results[(results["metric"] == "toy_mean_score") & (results["strategy"] == "final")]
    assert len(mine) == 1
    pred = next((bench / "runs" / "tiny").glob("*/predictions.parquet"))
    test = pd.read_parquet(pred)
    test = test[(test["split"] == "test") & test["group:group"].notna()]
    assert mine["value"].iloc[0] == pytest.approx(test["score"].to_numpy(np.float64).mean(), abs=1e-9)
    assert "auc" in set(results["metric"])  # the built-in metrics still come from the registry


def test_bench_selects_with_the_plugin_strategy(bench: Path) -> None:
    results = pd.read_csv(bench / "lb" / "tiny" / "results.csv")
    assert {"toy_first", "final", "overall", "dto"} <= set(results["strategy"])
    epochs = pd.read_parquet(next((bench / "runs" / "tiny").glob("*/epochs.parquet")))
    first = epochs[(epochs["epoch"] == epochs["epoch"].min()) & (epochs["split"] == "test")]
    first = first[first["group:group"].notna()]
    mine = results[(results["metric"] == "toy_mean_score") & (results["strategy"] == "toy_first")]
    assert mine["value"].iloc[0] == pytest.approx(first["score"].to_numpy(np.float64).mean(), abs=1e-9)
    html = (bench / "lb" / "tiny" / "index.html").read_text()
    assert 'id="s-toy_first"' in html


def test_bench_runs_the_plugin_reporter(bench: Path) -> None:
    rows = json.loads((bench / "lb" / "tiny" / "toy_rows.json").read_text())
    assert "toy_first" in rows["strategies"] and rows["metrics"]["toy_mean_score"] >= 2
    assert (bench / "lb" / "tiny" / "index.html").is_file()  # html and csv still ran


def test_plugin_claim_is_on_the_page(bench: Path) -> None:
    html = (bench / "lb" / "tiny" / "index.html").read_text()
    assert 'id="claim-toy_claim"' in html and CLAIM_TEXT.replace("'", "&#39;") in html and "Toy claim" in html
    assert 'id="claim-fairdi"' in html  # the first-party claims come from their plugins' registrations


def test_report_filters(bench: Path) -> None:
    set_host(make_plugin_host(extra=(_plugin(),)))
    try:
        out = bench / "lb" / "filtered"
        res = CliRunner().invoke(cli, ["report", str(bench / "runs" / "tiny"), "-o", str(out), "--n-boot", "20",
                                       "--metrics", "toy_*,auc", "--strategies", "toy_first",
                                       "--strategies", "final", "--reporters", "toy_rows"])
        assert res.exit_code == 0, res.output
        rows = json.loads((out / "toy_rows.json").read_text())
        assert set(rows["metrics"]) == {"toy_mean_score", "auc"} and rows["strategies"] == ["final", "toy_first"]
        assert not (out / "index.html").exists()
        bad = CliRunner().invoke(cli, ["report", str(bench / "runs" / "tiny"), "-o", str(out), "--strategies", "nope*"])
        assert bad.exit_code != 0
        assert "--strategies 'nope*' matches no registered selection strategy" in bad.output
    finally:
        set_host(None)


def test_backbones_come_from_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    from medfairx.methods.backbones import find_backbone_spec

    mine = BackboneSpec("tiny_cnn", "json:loads", summary="a plugin's tiny_cnn")

    @hookimpl
    def register_backbones(register):  # type: ignore[no-untyped-def]
        register(mine)

    mod = types.ModuleType("toy_backbones")
    mod.register_backbones = register_backbones  # type: ignore[attr-defined]
    monkeypatch.setenv("MEDFAIRX_PREFER_PLUGINS", "toy_backbones")
    set_host(make_plugin_host(entrypoints=False, extra=(mod,)))
    try:
        assert find_backbone_spec("tiny_cnn") is mine
    finally:
        set_host(None)
