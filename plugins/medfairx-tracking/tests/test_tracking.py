"""The tracking plugin against the real local MLflow store and TensorBoard's event reader."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

import medfairx_tracking
from medfairx.config import load_catalogue
from medfairx.plugins import make_plugin_host
from medfairx.runner.bench import BenchOptions, run_bench
from medfairx_tracking.base import TrackingWarning, metric_key

SUITE = """
version: 1
include: [embedded]
suites:
  tiny:
    datasets: {synthetic_cls: [group, site]}
    methods: [erm, groupdro]
    seeds: [0]
    params: test
    backbones: {classification: tiny_cnn}
    recipe: {epochs: 2, batch_size: 32, max_steps_per_epoch: 2}
"""


def _bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loggers: str) -> tuple[Path, list[str], list]:
    torch.set_num_threads(1)
    monkeypatch.setenv("MEDFAIRX_TRACKING", loggers)
    medfairx_tracking._instances.clear()  # a fresh logger per test, as in a fresh process
    cfg = tmp_path / "datasets.yaml"
    cfg.write_text(SUITE)
    lines: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_bench(load_catalogue(cfg), BenchOptions(suite="tiny", out=tmp_path / "runs"),
                           make_plugin_host(), lines.append)
    assert not result.failed, result.failed
    return tmp_path / "runs" / "tiny", lines, [w for w in caught if issubclass(w.category, TrackingWarning)]


def test_bench_leaves_mlflow_runs_and_tensorboard_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    store, _, tracking_warnings = _bench(tmp_path, monkeypatch, "mlflow,tensorboard")
    assert tracking_warnings == []
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{store.resolve() / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["medfairx/tiny"])
    assert len(runs) == 3  # erm once, groupdro once per grouping
    assert set(runs["params.method"]) == {"erm", "groupdro"}
    assert set(runs["params.recipe.epochs"]) == {"2"}
    assert (runs["status"] == "FINISHED").all()
    client = MlflowClient(tracking_uri=uri)
    erm = runs[runs["params.method"] == "erm"].iloc[0]
    history = client.get_metric_history(erm["run_id"], "val_auc")
    assert [m.step for m in history] == [1, 2]
    per_group = [c for c in runs.columns if c.startswith("metrics.test.group.") and c.count(".") >= 4]
    assert per_group, "per-group test metrics"
    assert any(c.startswith("metrics.test.site.") for c in runs.columns)
    artifacts = {a.path for a in client.list_artifacts(erm["run_id"])}
    assert {"run.json", "predictions.parquet"} <= artifacts
    assert not (Path.cwd() / "mlruns").exists() and (store.parent / "tiny.mlflow-artifacts").is_dir()
    from medfairx.store import iter_runs

    assert len(list(iter_runs(store))) == 3  # no artefact copy of run.json inside the store

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(store / "tensorboard" / erm["params.run_id"]))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert [e.step for e in acc.Scalars("val_auc")] == [1, 2]
    assert any(t.startswith("test/group/") for t in tags)


def test_unreachable_server_warns_once_and_the_bench_finishes(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    store, _, tracking_warnings = _bench(tmp_path, monkeypatch, "mlflow,tensorboard")  # the default loggers
    assert len(tracking_warnings) == 1, [str(w.message) for w in tracking_warnings]
    assert "mlflow logger failed" in str(tracking_warnings[0].message)
    from medfairx.store import RunStore

    assert [r["status"] for r in RunStore(store).records()] == ["ok"] * 3


def test_metric_keys_are_valid_mlflow_names() -> None:
    assert metric_key("test", "age", "auc", "<=60") == "test.age.auc.le60"
    assert metric_key("val_group_auc", "a/b (c)") == "val_group_auc.a/b _c_"


def test_a_failing_write_warns_once_and_never_raises() -> None:
    from medfairx_tracking.base import Logger

    class DiskFull(Logger):
        name = "diskfull"
        calls = 0

        def start(self, run, run_dir):  # type: ignore[no-untyped-def]
            DiskFull.calls += 1
            raise OSError(28, "No space left on device\nsecond line")

    logger = DiskFull()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            logger.guarded("start", None, Path("."))
    assert DiskFull.calls == 1 and len(caught) == 1
    assert issubclass(caught[0].category, TrackingWarning)
    assert "No space left on device)" in str(caught[0].message) and "second line" not in str(caught[0].message)


def test_a_search_logs_in_its_suites_database(tmp_path: Path) -> None:
    from medfairx_tracking.mlflow_logger import tracking_store

    suite = tmp_path / "runs" / "tiny"
    assert tracking_store(suite / "erm-x-all-s0-abc") == (suite, "")
    assert tracking_store(suite / "search" / "trials" / "erm-x-all-s7-abc") == (suite, "search/trials")
    assert tracking_store(suite / "search" / "tuned" / "erm-x-all-s0-def") == (suite, "search/tuned")
    assert tracking_store(tmp_path / "search" / "other" / "r") == (tmp_path / "search" / "other", "")
