"""The runner owns evaluation: fit never receives test data, and the per-epoch val/test
scores of ``epochs.parquet`` come from the runner's epoch observer (deployed stage only)."""

from __future__ import annotations

import dataclasses
import json
import types
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from medfairx import hookimpl
from medfairx.config import load_catalogue
from medfairx.contracts import TaskData
from medfairx.methods.backbones import build_backbone
from medfairx.methods.base import Method, RunContext
from medfairx.methods.trainable import TrainableMethod, predict_proba, train_model
from medfairx.plugins import make_plugin_host
from medfairx.runner.bench import BenchOptions, run_bench
from medfairx.store import RunStore

SUITE = """
version: 1
include: [embedded]
suites:
  obs:
    datasets: {synthetic_cls: [group]}
    methods: [spy, two_stage, unmarked]
    seeds: [0]
    params: test
    backbones: {classification: tiny_cnn}
    recipe: {epochs: 3, batch_size: 32, max_steps_per_epoch: 1, patience: 0}
"""

#: sample ids of every TaskData reachable from the fields of the ctx that ``Spy.fit`` got
SEEN_IN_FIT: list[set[str]] = []


def _task_data_in(obj: Any, seen: set[int] | None = None) -> list[TaskData]:
    """Every TaskData reachable from ``obj`` through attributes, dataclass fields and containers."""
    seen = set() if seen is None else seen
    if id(obj) in seen or isinstance(obj, (str, bytes, int, float, bool, type(None), np.ndarray, torch.Tensor)):
        return []
    seen.add(id(obj))
    if isinstance(obj, TaskData):
        return [obj]
    if isinstance(obj, dict):
        children: list[Any] = [*obj.keys(), *obj.values()]
    elif isinstance(obj, (list, tuple, set, frozenset)):
        children = list(obj)
    elif dataclasses.is_dataclass(obj) or hasattr(obj, "__dict__"):
        children = list(getattr(obj, "__dict__", {}).values())
    else:
        children = []
    return [d for c in children for d in _task_data_in(c, seen)]


class Spy(TrainableMethod):
    """Records what its ctx holds, then trains as ERM."""

    def fit(self, train: TaskData, val: TaskData, ctx: RunContext) -> Spy:
        SEEN_IN_FIT.append({str(i) for d in _task_data_in(ctx) for i in d.sample_ids})
        return super().fit(train, val, ctx)


class TwoStage(Method):
    """A warm-up stage (3 epochs, not deployed), then the deployed stage (2 epochs)."""

    mark_warmup = True

    def fit(self, train: TaskData, val: TaskData, ctx: RunContext) -> TwoStage:
        torch.manual_seed(ctx.seed)
        self.model_ = build_backbone(ctx.backbone, in_channels=ctx.in_channels, num_classes=ctx.num_classes,
                                     spatial_dims=ctx.spatial_dims)
        warm = {"deployed": False} if self.mark_warmup else {}
        train_model(self.model_, train, val, ctx, name=self.name, stage="warmup", **warm)
        res = train_model(self.model_, train, val, ctx, recipe=ctx.recipe.updated(epochs=2), name=self.name,
                          stage="final")
        self.selected_epoch_, self.epochs_trained_, self.fitted_ = res.selected_epoch, res.epochs_trained, True
        return self

    def predict_scores(self, data: TaskData, ctx: RunContext) -> np.ndarray:
        return predict_proba(self.model_, data.without_labels(), amp=ctx.amp)


class Unmarked(TwoStage):
    """The same, but the warm-up stage is not marked as an intermediate one."""

    mark_warmup = False


@hookimpl
def register_methods(register):  # type: ignore[no-untyped-def]
    from medfairx.specs import MethodSpec, MethodTags

    for name, cls in (("spy", Spy), ("two_stage", TwoStage), ("unmarked", Unmarked)):
        register(MethodSpec(name, cls, MethodTags(), summary=name, reference="-"))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("observer")
    (root / "datasets.yaml").write_text(SUITE)
    plugin = types.ModuleType("observed_methods")
    plugin.register_methods = register_methods  # type: ignore[attr-defined]
    catalogue = load_catalogue(root / "datasets.yaml")
    SEEN_IN_FIT.clear()
    run_bench(catalogue, BenchOptions(suite="obs", out=root / "runs"), make_plugin_host(extra=(plugin,)),
              lambda line: None)
    store = RunStore(root / "runs" / "obs")
    return catalogue, store, {r["method"]: r for r in store.records()}


def _frames(store: RunStore, rec: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    d = store.run_dir(rec["run_id"])
    return pd.read_parquet(d / "predictions.parquet"), pd.read_parquet(d / "epochs.parquet")


def test_fit_context_holds_no_test_data(sweep) -> None:  # type: ignore[no-untyped-def]
    from medfairx.data import load_dataset

    catalogue, _, recs = sweep
    assert recs["spy"]["status"] == "ok" and len(SEEN_IN_FIT) == 1
    test_ids = set(map(str, load_dataset(catalogue, "synthetic_cls").splits.ids("test")))
    assert test_ids and not SEEN_IN_FIT[0] & test_ids
    assert "eval_sets" not in {f.name for f in dataclasses.fields(RunContext)}


def test_epochs_parquet_holds_the_observed_val_and_test_scores(sweep) -> None:  # type: ignore[no-untyped-def]
    _, store, recs = sweep
    rec = recs["spy"]
    pred, epochs = _frames(store, rec)
    assert sorted(set(epochs["epoch"])) == [1, 2, 3]
    for e, hist in zip((1, 2, 3), rec["history"], strict=False):
        at = epochs[epochs["epoch"] == e]
        assert sorted(set(at["split"])) == ["test", "val"]
        assert (at["split"] == "test").sum() == (pred["split"] == "test").sum()
        val = at[at["split"] == "val"]  # the validation metric the trainer logged, from the stored scores
        assert hist["val_auc"] == pytest.approx(roc_auc_score(val["y_true"], val["score"]), abs=1e-6)
        assert not any(isinstance(v, list) and len(v) > 10 for v in hist.values())  # no arrays in history
    # the final model is the selected epoch's: its stored test scores are that epoch's observed ones
    chosen = epochs[(epochs["epoch"] == rec["selected_epoch"]) & (epochs["split"] == "test")]
    final = pred[pred["split"] == "test"]
    assert list(chosen["sample_id"]) == list(final["sample_id"])
    assert np.allclose(chosen["score"].to_numpy(), final["score"].to_numpy(), atol=1e-6)


def test_only_the_deployed_stage_is_recorded(sweep) -> None:  # type: ignore[no-untyped-def]
    _, store, recs = sweep
    rec = recs["two_stage"]
    assert rec["status"] == "ok"
    assert [h["stage"] for h in rec["history"]] == ["warmup"] * 3 + ["final"] * 2
    pred, epochs = _frames(store, rec)
    assert sorted(set(epochs["epoch"])) == [1, 2]  # the warm-up's 3 epochs are not there
    assert len(epochs) == 2 * len(pred)
    final_val = epochs[epochs["split"] == "val"]
    for e, hist in zip((1, 2), rec["history"][3:], strict=False):
        at = final_val[final_val["epoch"] == e]
        assert hist["val_auc"] == pytest.approx(roc_auc_score(at["y_true"], at["score"]), abs=1e-6)


def test_a_second_observed_stage_fails_the_run_with_what_to_do(sweep) -> None:  # type: ignore[no-untyped-def]
    _, store, recs = sweep
    rec = recs["unmarked"]
    assert rec["status"] == "failed" and rec["error"]["type"] == "TrainingError"
    assert "'final' after those of stage 'warmup'" in rec["error"]["message"]
    assert "deployed=False" in rec["error"]["message"]
    assert not (store.run_dir(rec["run_id"]) / "epochs.parquet").exists()
    assert json.loads((store.run_dir(rec["run_id"]) / "run.json").read_text())["status"] == "failed"
