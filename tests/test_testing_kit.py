"""Tests of the conformance kit itself: every check passes on a good toy object and fails,
with a message naming the object and the expectation, on a deliberately broken one.

The toy methods are numpy-only (no torch), so the whole module runs in seconds.
"""

from __future__ import annotations

import html
import math
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from medfairx.contracts import TaskData
from medfairx.errors import ConfigError
from medfairx.methods.base import Method, RunContext
from medfairx.metrics.basic import auc, group_auc
from medfairx.specs import (
    DatasetSpec,
    GroupingSpec,
    LogUniform,
    MethodSpec,
    MethodTags,
    MetricSpec,
    ReporterSpec,
)
from medfairx.testing import (
    DATASET_CHECKS,
    GROUPING_CHECKS,
    METHOD_CHECKS,
    METRIC_CHECKS,
    REPORTER_CHECKS,
    SCRIPT_NAME,
    SUITE_VERSION,
    TOY_CARD,
    TOY_GROUPING,
    CheckReport,
    ConformanceError,
    check_dataset,
    check_grouping,
    check_method,
    check_metric,
    check_plugin,
    check_reporter,
    checks_generator,
    make_toy_fair_dataset,
    make_toy_metadata,
    make_toy_splits,
    parametrize_with_checks,
)
from medfairx.testing.checks_plugin import import_footprint
from medfairx.testing.pytest_plugin import (  # noqa: F401 - fixtures (also served by the pytest11 entry point)
    cpu_run_context,
    plugin_host,
    toy_grouping,
    toy_task_data,
)
from medfairx.testing.pytest_plugin import (
    make_toy_fair_dataset as toy_ds_fixture,  # noqa: F401 - imported to register the fixture
)

# ======================================================================================
# toy methods
# ======================================================================================


def _softmax(z: np.ndarray, axis: int = 1) -> np.ndarray:
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


class NearestCentroid(Method):
    """Classification: nearest class centroid of the flattened image; segmentation: a
    per-pixel intensity threshold. Deterministic, numpy only."""

    name = "toy_nc"
    summary = "numpy nearest centroid"
    tags = MethodTags(tasks=("classification", "segmentation"), spatial_dims=(2, 3))
    search_space = {"temperature": LogUniform(0.1, 10.0)}

    def __init__(self, temperature: float = 1.0) -> None:
        self.temperature = temperature

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {"temperature": 0.5}

    @staticmethod
    def _x(data: TaskData) -> np.ndarray:
        return data.images.reshape(len(data), -1).astype(np.float64) / 255.0

    def fit(self, train: TaskData, val: TaskData, ctx: RunContext) -> NearestCentroid:
        assert train.labels is not None
        x = self._x(train)
        if ctx.task == "classification":
            self.centroids_ = np.stack([x[train.labels == k].mean(0) for k in range(ctx.num_classes)])
        else:
            px = train.images[:, 0].astype(np.float64) / 255.0
            self.centroids_ = np.array([px[train.labels == k].mean() for k in range(ctx.num_classes)])
        self.fitted_ = True
        return self

    def predict_scores(self, data: TaskData, ctx: RunContext) -> np.ndarray:
        self.check_fitted()
        if ctx.task == "classification":
            x = self._x(data)
            d = ((x[:, None, :] - self.centroids_[None]) ** 2).mean(-1)
            return _softmax(-d * 50 / self.temperature)
        px = data.images[:, 0].astype(np.float64) / 255.0
        d = (px[:, None] - self.centroids_.reshape((1, -1) + (1,) * (px.ndim - 1))) ** 2
        return _softmax(-d * 50 / self.temperature)

    def state_dict(self) -> dict[str, Any]:
        return {"centroids": self.centroids_.copy()}

    def load_state_dict(self, state: dict[str, Any], ctx: RunContext) -> NearestCentroid:
        self.centroids_ = np.asarray(state["centroids"])
        self.fitted_ = True
        return self


class GroupAware(NearestCentroid):
    """Honestly tagged: reweights classes per group in fit and shifts by group in predict."""

    name = "toy_group_aware"
    tags = MethodTags(uses_groups_in_fit=True, uses_groups_in_predict=True)

    def fit(self, train: TaskData, val: TaskData, ctx: RunContext) -> GroupAware:
        assert train.groups is not None, "uses_groups_in_fit: the kit must hand groups to fit"
        super().fit(train, val, ctx)
        self.bias_ = np.array([float(np.mean(train.labels[train.groups == g])) for g in range(train.n_groups)])
        return self

    def predict_scores(self, data: TaskData, ctx: RunContext) -> np.ndarray:
        assert data.groups is not None, "uses_groups_in_predict: the kit must hand groups to predict"
        p = super().predict_scores(data, ctx)
        return _softmax(np.log(p + 1e-9) + np.stack([np.zeros(len(data)), self.bias_[data.groups]], 1))

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "bias": self.bias_}

    def load_state_dict(self, state: dict[str, Any], ctx: RunContext) -> GroupAware:
        super().load_state_dict(state, ctx)
        self.bias_ = state["bias"]
        return self


# --- deliberately broken variants (one defect each) -----------------------------------------


class ReadsTestLabels(NearestCentroid):
    name = "reads_test_labels"

    def predict_scores(self, data: TaskData, ctx: RunContext) -> np.ndarray:
        p = super().predict_scores(data, ctx)
        if data.labels is not None and data.labels.ndim == 1:
            p = 0.5 * p + 0.5 * np.eye(ctx.num_classes)[data.labels]
        return p


class LeaksAtFit(NearestCentroid):
    name = "leaks_at_fit"

    def fit(self, train: TaskData, val: TaskData, ctx: RunContext) -> LeaksAtFit:
        super().fit(train, val, ctx)
        caught: list[TaskData] = []  # its own predict catches the splits the epoch observer holds
        if ctx.observe_epoch is not None:
            ctx.observe_epoch(self.name, 1, lambda d: caught.append(d) or self.predict_scores(d, ctx))
        test = caught[-1] if caught else None
        if test is not None and test.labels is not None:
            self.temperature_shift_ = float(test.labels.mean())
            self.centroids_ = self.centroids_ * (1 + self.temperature_shift_)
        return self


class UntaggedGroupsInPredict(NearestCentroid):
    name = "untagged_groups_in_predict"

    def predict_scores(self, data: TaskData, ctx: RunContext) -> np.ndarray:
        p = super().predict_scores(data, ctx)
        if data.groups is not None:
            p = _softmax(np.log(p + 1e-9) + np.stack([np.zeros(len(data)), 0.3 * data.groups], 1))
        return p


class UntaggedGroupsInFit(NearestCentroid):
    name = "untagged_groups_in_fit"

    def fit(self, train: TaskData, val: TaskData, ctx: RunContext) -> UntaggedGroupsInFit:
        super().fit(train, val, ctx)
        if train.groups is not None:
            self.centroids_ = self.centroids_ + 0.01 * train.groups.mean()
        return self


class MutatesInputs(NearestCentroid):
    name = "mutates_inputs"

    def fit(self, train: TaskData, val: TaskData, ctx: RunContext) -> MutatesInputs:
        train.images[:, :, 0, 0] = 0  # in place!
        return super().fit(train, val, ctx)


class SetsAttributesInInit(NearestCentroid):
    name = "sets_attributes_in_init"

    def __init__(self, temperature: float = 1.0) -> None:
        self.temperature = temperature
        self.cache_ = {}


class AltersParamInInit(NearestCentroid):
    name = "alters_param_in_init"

    def __init__(self, temperature: float = 1.0) -> None:
        self.temperature = float(temperature) * 2


class GarbageBeforeFit(NearestCentroid):
    name = "garbage_before_fit"

    def predict_scores(self, data: TaskData, ctx: RunContext) -> np.ndarray:
        if not getattr(self, "fitted_", False):
            return np.zeros((len(data), ctx.num_classes))
        return super().predict_scores(data, ctx)


class NonDeterministic(NearestCentroid):
    name = "non_deterministic"

    def fit(self, train: TaskData, val: TaskData, ctx: RunContext) -> NonDeterministic:
        super().fit(train, val, ctx)
        self.centroids_ = self.centroids_ + np.random.default_rng().normal(0, 0.05, self.centroids_.shape)
        return self


class TaggedNonDeterministic(NonDeterministic):
    name = "tagged_non_deterministic"
    tags = MethodTags(tasks=("classification", "segmentation"), spatial_dims=(2, 3), non_deterministic=True)


class LosesState(NearestCentroid):
    name = "loses_state"

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any], ctx: RunContext) -> LosesState:
        self.centroids_ = np.zeros((ctx.num_classes, 1))
        self.fitted_ = True
        return self


class Unnormalised(NearestCentroid):
    name = "unnormalised"

    def predict_scores(self, data: TaskData, ctx: RunContext) -> np.ndarray:
        return super().predict_scores(data, ctx) * 2.0


class IgnoresFeatureScaling(NearestCentroid):
    """Distances on the raw vectors: blind to the runner's standardised-feature statistics."""

    name = "ignores_feature_scaling"

    @staticmethod
    def _x(data: TaskData) -> np.ndarray:
        return data.images.reshape(len(data), -1).astype(np.float64)


class FitReturnsNone(NearestCentroid):
    name = "fit_returns_none"

    def fit(self, train: TaskData, val: TaskData, ctx: RunContext) -> None:  # type: ignore[override]
        super().fit(train, val, ctx)


class CrashesOnTinyGroup(NearestCentroid):
    name = "crashes_on_tiny_group"
    tags = MethodTags(uses_groups_in_fit=True)

    def fit(self, train: TaskData, val: TaskData, ctx: RunContext) -> CrashesOnTinyGroup:
        super().fit(train, val, ctx)
        for g in range(val.n_groups):
            m = val.groups == g
            if len(np.unique(val.labels[m])) < 2:
                raise ValueError(f"group {g} has one class")
        return self


class NeedsCuda(NearestCentroid):
    name = "needs_cuda"

    def fit(self, train: TaskData, val: TaskData, ctx: RunContext) -> NeedsCuda:
        if ctx.device != "cuda":
            raise RuntimeError("this method only runs on CUDA")
        return super().fit(train, val, ctx)


class TaggedNeedsGpu(NeedsCuda):
    name = "tagged_needs_gpu"
    tags = MethodTags(needs_gpu=True)


class BadName(NearestCentroid):
    name = "Bad-Name"


class UnknownTestParam(NearestCentroid):
    name = "unknown_test_param"

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {"temprature": 0.5}


def _report(obj: Any, **kw: Any) -> CheckReport:
    return check_method(obj, on_fail="report", **kw)


# ======================================================================================
# method checks
# ======================================================================================


def test_good_method_passes_every_check_at_full_level() -> None:
    report = check_method(NearestCentroid, level="full")  # raises on any failure
    assert report.passed
    assert {r.check for r in report} == {c.name for c in METHOD_CHECKS}
    assert all(r.status == "passed" for r in report), report.to_text()
    assert report.suite_version == SUITE_VERSION


def test_group_aware_method_gets_groups_as_tagged() -> None:
    assert check_method(GroupAware, level="full").passed


def test_api_level_skips_full_checks() -> None:
    checks = {r.check for r in check_method(NearestCentroid)}
    assert "check_seed_determinism" not in checks and "check_state_dict_roundtrip" not in checks


BROKEN: list[tuple[type[Method], str, str]] = [
    (ReadsTestLabels, "check_does_not_read_test_labels", "labels of the predicted data"),
    (LeaksAtFit, "check_does_not_read_test_labels", "test split held by ctx.observe_epoch"),
    (UntaggedGroupsInPredict, "check_group_usage_matches_tags", "uses_groups_in_predict=False"),
    (UntaggedGroupsInFit, "check_group_usage_matches_tags", "uses_groups_in_fit=False"),
    (MutatesInputs, "check_inputs_not_mutated", "train.images"),
    (SetsAttributesInInit, "check_init_stores_only", "cache_"),
    (AltersParamInInit, "check_init_stores_only", "temperature"),
    (GarbageBeforeFit, "check_predict_before_fit_raises", "NotFittedError"),
    (NonDeterministic, "check_seed_determinism", "non_deterministic=True"),
    (LosesState, "check_state_dict_roundtrip", "state_dict"),
    (Unnormalised, "check_predict_scores_shape_dtype", "[0, 1]"),
    (FitReturnsNone, "check_fit_returns_self", "expected self"),
    (IgnoresFeatureScaling, "check_runs_on_frozen_features", "multiplied by 1e-6"),
    (CrashesOnTinyGroup, "check_handles_tiny_group", "one sample"),
    (NeedsCuda, "check_cpu_only", "CUDA"),
    (BadName, "check_name_is_valid", "must match"),
    (UnknownTestParam, "check_test_params_construct", "temprature"),
]


@pytest.mark.parametrize(("cls", "check", "expectation"), BROKEN, ids=[b[0].name.lower().replace("-", "_") for b in BROKEN])
def test_broken_method_fails_its_check_with_a_clear_message(cls: type[Method], check: str, expectation: str) -> None:
    report = _report(cls, level="full")
    result = report.result(check)
    assert result.status == "failed", report.to_text()
    assert repr(cls.name) in result.message  # names the object
    assert expectation in result.message  # states the expectation
    assert not report.passed


def test_on_fail_raise_lists_every_failure() -> None:
    with pytest.raises(ConformanceError, match="check_does_not_read_test_labels") as info:
        check_method(ReadsTestLabels)
    assert not info.value.report.passed


def test_tags_gate_checks_not_names() -> None:
    nd = _report(TaggedNonDeterministic, level="full")
    assert nd.status_of("check_seed_determinism") == "skipped"
    assert "non_deterministic" in nd.result("check_seed_determinism").message
    gpu = _report(TaggedNeedsGpu)
    assert gpu.status_of("check_cpu_only") == "skipped"


def test_spec_tags_must_match_class_tags() -> None:
    spec = MethodSpec("toy_nc", NearestCentroid, tags=MethodTags(uses_groups_in_fit=True))
    r = _report(spec).result("check_tags_match_class")
    assert r.status == "failed" and "toy_nc" in r.message and "tags" in r.message


def test_spec_name_must_match_class_name() -> None:
    spec = replace(MethodSpec.from_class(NearestCentroid), name="other_name")
    r = _report(spec).result("check_name_is_valid")
    assert r.status == "failed" and "'other_name'" in r.message


def test_expected_failed_checks_become_xfail_and_xpass() -> None:
    report = check_method(
        ReadsTestLabels,
        expected_failed_checks={"check_does_not_read_test_labels": "demo of a known leak", "check_cpu_only": "demo"},
    )
    assert report.passed
    assert report.status_of("check_does_not_read_test_labels") == "xfail"
    assert "demo of a known leak" in report.result("check_does_not_read_test_labels").message
    assert report.status_of("check_cpu_only") == "xpass"


def test_expected_failed_checks_must_name_real_checks_and_give_reasons() -> None:
    with pytest.raises(ConfigError, match="check_does_not_exist"):
        check_method(NearestCentroid, expected_failed_checks={"check_does_not_exist": "typo"})
    with pytest.raises(ConfigError, match="reason"):
        check_method(NearestCentroid, expected_failed_checks={"check_cpu_only": " "})


def test_method_instance_uses_its_params() -> None:
    assert check_method(NearestCentroid(temperature=2.0)).passed


def test_unknown_level_and_object_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="level"):
        check_method(NearestCentroid, level="everything")
    with pytest.raises(ConfigError, match="Method"):
        check_method(object)


# --- report ------------------------------------------------------------------------------


def test_report_exports() -> None:
    report = _report(ReadsTestLabels)
    frame = report.to_frame()
    assert list(frame.columns) == ["plugin", "kind", "item", "check", "status", "message", "seconds"]
    assert set(frame["status"]) >= {"passed", "failed"}
    md = report.to_markdown()
    assert md.startswith("| plugin | item | check | status |") and "check_does_not_read_test_labels" in md
    data = report.to_dict()
    assert data["passed"] is False and data["counts"]["failed"] >= 1
    assert "failed" in report.to_text()


def test_markdown_escapes_pipes_and_html() -> None:
    from medfairx.testing import CheckResult

    md = CheckReport([CheckResult("x", "check_y", "failed", "a|b <script>")]).to_markdown()
    assert "a\\|b &lt;script&gt;" in md


# --- pytest integration ---------------------------------------------------------------------


@parametrize_with_checks([NearestCentroid, GroupAware], expected_failed_checks=None)
def test_parametrize_with_checks_demo(method: Any, check: Any) -> None:
    check(method)


@parametrize_with_checks([ReadsTestLabels], expected_failed_checks={"check_does_not_read_test_labels": "known leak (demo)"})
def test_parametrize_with_checks_strict_xfail(method: Any, check: Any) -> None:
    check(method)


def test_checks_generator_yields_named_checks() -> None:
    names = [fn.__name__ for _, fn in checks_generator(NearestCentroid)]
    assert names == [c.name for c in METHOD_CHECKS if c.level == "api"]
    full = [fn.__name__ for _, fn in checks_generator(NearestCentroid, level="full")]
    assert full == [c.name for c in METHOD_CHECKS]


def test_parametrize_ids_are_name_dash_check() -> None:
    mark = parametrize_with_checks([NearestCentroid])
    ids = mark.kwargs["ids"]
    assert "toy_nc-check_predict_before_fit_raises" in ids


def test_generated_check_raises_on_failure() -> None:
    fns = dict((fn.__name__, fn) for _, fn in checks_generator(ReadsTestLabels))
    with pytest.raises(AssertionError, match="reads_test_labels"):
        fns["check_does_not_read_test_labels"](ReadsTestLabels)


# --- fixtures ------------------------------------------------------------------------------


def test_fixtures(cpu_run_context: RunContext, toy_task_data: dict[str, TaskData], toy_ds_fixture: Any) -> None:  # noqa: F811 - fixtures
    assert cpu_run_context.device == "cpu" and cpu_run_context.recipe.epochs == 2
    assert set(toy_task_data) == {"train", "val", "test"}
    ds = toy_ds_fixture(n=32)
    assert len(ds.metadata) == 32


def test_plugin_host_fixture_is_fresh_and_restored(plugin_host: Any, toy_grouping: GroupingSpec) -> None:  # noqa: F811 - fixtures
    from medfairx.plugins import get_host

    assert get_host() is plugin_host
    assert all(p.builtin for p in plugin_host.plugins.values())
    assert check_grouping(toy_grouping).passed


def test_toy_data_is_deterministic_and_learnable() -> None:
    a, b = make_toy_splits(seed=3), make_toy_splits(seed=3)
    assert np.array_equal(a["train"].images, b["train"].images)
    assert set(a["train"].sample_ids).isdisjoint(a["test"].sample_ids)
    m = NearestCentroid().fit(a["train"], a["val"], _ctx())
    scores = m.predict_scores(a["test"].without_labels(), _ctx())
    assert auc(a["test"].labels, scores[:, 1]) > 0.9
    for g in range(a["train"].n_groups):  # every group has both classes
        assert set(a["train"].labels[a["train"].groups == g]) == {0, 1}


def _ctx() -> RunContext:
    from medfairx.testing import make_cpu_run_context

    return make_cpu_run_context()


def test_pytest_plugin_module_imports_lazily() -> None:
    assert import_footprint("medfairx.testing.pytest_plugin", heavy=("torch", "numpy", "pandas", "medfairx.testing.toy")) == []


# ======================================================================================
# dataset checks
# ======================================================================================


def _toy_spec(card: Any = TOY_CARD) -> DatasetSpec:
    return DatasetSpec("toy", target=lambda cfg=None: make_toy_fair_dataset(), card=card)


def test_good_dataset_passes() -> None:
    report = check_dataset(_toy_spec(), dataset_factory=make_toy_fair_dataset)
    assert {r.check for r in report} == {c.name for c in DATASET_CHECKS}
    assert all(r.status in ("passed", "skipped") for r in report), report.to_text()
    assert report.status_of("check_splits_patient_disjoint") == "passed"


def test_dataset_without_data_checks_card_only() -> None:
    report = check_dataset(_toy_spec())
    assert report.status_of("check_card_complete") == "passed"
    assert report.status_of("check_splits_patient_disjoint") == "skipped"
    assert "catalogue" in report.result("check_splits_patient_disjoint").message


def _broken_dataset(kind: str) -> Any:
    ds = make_toy_fair_dataset()
    meta = ds.metadata
    if kind == "duplicate_index":
        ds.metadata = meta.rename(index={meta.index[1]: meta.index[0]})
    elif kind == "label_out_of_range":
        ds.metadata = meta.assign(label=np.where(np.arange(len(meta)) == 0, 7, meta["label"]))
    elif kind == "missing_attribute":
        ds.metadata = meta.drop(columns=["race"])
    elif kind == "patient_leak":
        ds.splits.split_ids["test"] = ds.splits.split_ids["test"] + [ds.splits.split_ids["train"][0]]
        ds.splits.split_ids["train"] = ds.splits.split_ids["train"][1:]
        # the moved sample's patient still has its other image in train
        pid = meta.loc[ds.splits.split_ids["test"][-1], "patient_id"]
        assert pid in set(meta.loc[ds.splits.split_ids["train"], "patient_id"])
    elif kind == "wrong_channels":
        ds.shape = (3, 16, 16)
    return ds


def _random_split_factory() -> Any:
    ds = make_toy_fair_dataset()
    ids = sorted(ds.metadata.index)
    rng = np.random.default_rng()  # unseeded: a different split on every load
    perm = list(rng.permutation(ids))
    pats = ds.metadata.loc[perm, "patient_id"]
    order = list(dict.fromkeys(pats))
    cut = {p: i for i, p in enumerate(order)}
    n = len(order)
    ds.splits.split_ids = {
        "train": sorted(i for i in ids if cut[ds.metadata.loc[i, "patient_id"]] < 0.6 * n),
        "val": sorted(i for i in ids if 0.6 * n <= cut[ds.metadata.loc[i, "patient_id"]] < 0.8 * n),
        "test": sorted(i for i in ids if cut[ds.metadata.loc[i, "patient_id"]] >= 0.8 * n),
    }
    return ds


@pytest.mark.parametrize(
    ("kind", "check", "expectation"),
    [
        ("duplicate_index", "check_metadata_index_unique", "duplicated"),
        ("label_out_of_range", "check_labels_in_range", "range(num_classes=2)"),
        ("missing_attribute", "check_attributes_present", "race"),
        ("patient_leak", "check_splits_patient_disjoint", "patient-disjoint"),
        ("wrong_channels", "check_task_data_matches_card", "in_channels=1"),
    ],
)
def test_broken_dataset_fails(kind: str, check: str, expectation: str) -> None:
    report = check_dataset(_toy_spec(), dataset_factory=lambda: _broken_dataset(kind), on_fail="report")
    r = report.result(check)
    assert r.status == "failed", report.to_text()
    assert "dataset 'toy'" in r.message and expectation in r.message


def test_nondeterministic_split_fails() -> None:
    r = check_dataset(_toy_spec(), dataset_factory=_random_split_factory, on_fail="report").result("check_splits_deterministic")
    assert r.status == "failed" and "seed" in r.message


def test_incomplete_card_fails() -> None:
    r = check_dataset(_toy_spec(replace(TOY_CARD, license="", citation="")), on_fail="report").result("check_card_complete")
    assert r.status == "failed" and "license" in r.message and "citation" in r.message and "'toy'" in r.message


# ======================================================================================
# grouping checks
# ======================================================================================


def _g(fn: Any, columns: tuple[str, ...] = ("sex",), name: str = "toy_g") -> GroupingSpec:
    return GroupingSpec(name=name, target=fn, columns=columns)


def test_good_grouping_passes() -> None:
    report = check_grouping(TOY_GROUPING)
    assert {r.check for r in report} == {c.name for c in GROUPING_CHECKS}
    assert all(r.status == "passed" for r in report), report.to_text()


def _mutating(meta: pd.DataFrame) -> pd.Series:
    meta["sex"] = meta["sex"].str.lower()
    return pd.Series(pd.Categorical(meta["sex"]), index=meta.index)


BROKEN_GROUPINGS = [
    (_g(lambda m: m["sex"].astype(object)), "check_grouping_categorical_aligned", "Categorical"),
    (_g(lambda m: pd.Series(pd.Categorical(m["sex"]))), "check_grouping_categorical_aligned", "index"),
    (_g(lambda m: pd.Series(pd.Categorical(np.random.default_rng().choice(["a", "b"], len(m))), index=m.index)),
     "check_grouping_deterministic", "different groups"),
    (_g(lambda m: pd.Series(pd.Categorical(["all"] * len(m)), index=m.index)), "check_grouping_has_two_groups", "at least 2"),
    (_g(_mutating), "check_grouping_input_not_mutated", "in place"),
    (_g(lambda m: pd.Series(pd.Categorical(m["race"]), index=m.index)), "check_grouping_declares_columns", "declared columns"),
    (_g(lambda m: pd.Series(pd.Categorical(m["sex"]), index=m.index), columns=()), "check_grouping_missing_column_error",
     "declares no columns"),
]


@pytest.mark.parametrize(("spec", "check", "expectation"), BROKEN_GROUPINGS, ids=[b[1] + str(i) for i, b in enumerate(BROKEN_GROUPINGS)])
def test_broken_grouping_fails(spec: GroupingSpec, check: str, expectation: str) -> None:
    r = check_grouping(spec, on_fail="report").result(check)
    assert r.status == "failed" and "grouping 'toy_g'" in r.message and expectation in r.message, r


def test_missing_column_error_lists_columns() -> None:
    meta = make_toy_metadata(20)
    with pytest.raises(ConfigError, match="patient_id"):
        TOY_GROUPING.assign(meta.drop(columns=["sex"]))


def test_grouping_on_unknown_columns_is_skipped_not_failed() -> None:
    report = check_grouping(_g(lambda m: m["zzz"], columns=("zzz",)))
    assert report.status_of("check_grouping_deterministic") == "skipped"
    assert "zzz" in report.result("check_grouping_deterministic").message


# ======================================================================================
# metric checks
# ======================================================================================


def _auc(y_true: Any, y_score: Any, *, sensitive_features: Any) -> float:
    return auc(np.asarray(y_true), np.asarray(y_score))


def _auc_gap(y_true: Any, y_score: Any, *, sensitive_features: Any) -> float:
    codes = pd.factorize(pd.Series(sensitive_features), sort=True)[0]
    vals = [v for v in group_auc(np.asarray(y_true), np.asarray(y_score), codes).values() if not math.isnan(v)]
    return float(max(vals) - min(vals)) if len(vals) >= 2 else float("nan")


def _es_auc(y_true: Any, y_score: Any, *, sensitive_features: Any) -> float:
    codes = pd.factorize(pd.Series(sensitive_features), sort=True)[0]
    overall = auc(np.asarray(y_true), np.asarray(y_score))
    per = [v for v in group_auc(np.asarray(y_true), np.asarray(y_score), codes).values() if not math.isnan(v)]
    return float(overall / (1 + sum(abs(overall - v) for v in per)))


def _mean_dice(y_true: Any, y_score: Any, *, sensitive_features: Any) -> float:
    return float(np.mean(y_score))


def _m(fn: Any, *, kind: str = "performance", hib: bool = True, task: str = "classification", name: str = "toy_m") -> MetricSpec:
    return MetricSpec(name=name, target=fn, task=task, kind=kind, higher_is_better=hib)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "spec",
    [_m(_auc), _m(_auc_gap, kind="fairness", hib=False), _m(_es_auc, kind="fairness"), _m(_mean_dice, task="segmentation")],
    ids=["auc", "auc_gap", "es_auc", "dice"],
)
def test_good_metrics_pass(spec: MetricSpec) -> None:
    report = check_metric(spec)
    assert {r.check for r in report} == {c.name for c in METRIC_CHECKS}
    assert report.passed, report.to_text()


def _first_group_auc(y_true: Any, y_score: Any, *, sensitive_features: Any) -> float:
    g = np.asarray(sensitive_features, dtype=object)
    m = g == sorted(set(g))[0]  # depends on which label sorts first
    return auc(np.asarray(y_true)[m], np.asarray(y_score)[m])


def _raises_on_single_class(y_true: Any, y_score: Any, *, sensitive_features: Any) -> float:
    codes = pd.factorize(pd.Series(sensitive_features), sort=True)[0]
    for g in np.unique(codes):
        if len(np.unique(np.asarray(y_true)[codes == g])) < 2:
            raise ValueError("single class")
    return _auc(y_true, y_score, sensitive_features=sensitive_features)


def _silent_nan(y_true: Any, y_score: Any, *, sensitive_features: Any) -> float:
    g, y = np.asarray(sensitive_features, dtype=object), np.asarray(y_true)
    if any(len(np.unique(y[g == k])) < 2 for k in set(g)):
        return float("nan")  # undefined, but no warning
    return _auc(y_true, y_score, sensitive_features=sensitive_features)


BROKEN_METRICS = [
    (_m(lambda y, s, *, sensitive_features: np.array([0.5])), "check_metric_returns_float", "expected a float"),
    (_m(_auc, hib=False), "check_metric_perfect_is_best", "higher_is_better=False"),
    (_m(_first_group_auc), "check_metric_group_renaming_invariant", "renamed"),
    (_m(_raises_on_single_class), "check_metric_degenerate_group_nan", "single class"),
    (_m(_silent_nan), "check_metric_degenerate_group_nan", "without a warning"),
    (_m(lambda y, s, *, sensitive_features: 0.5, kind="fairness", hib=False), "check_metric_fairness_parity", "parity value 0"),
    (_m(lambda y, s, *, sensitive_features: 0.5, kind="fairness", hib=True), "check_metric_fairness_parity", "strictly fairer"),
    (_m(_auc, kind="accuracy"), "check_metric_spec_valid", "kind"),
]


@pytest.mark.parametrize(("spec", "check", "expectation"), BROKEN_METRICS, ids=[f"{b[1]}{i}" for i, b in enumerate(BROKEN_METRICS)])
def test_broken_metric_fails(spec: MetricSpec, check: str, expectation: str) -> None:
    r = check_metric(spec, on_fail="report").result(check)
    assert r.status == "failed" and "metric 'toy_m'" in r.message and expectation in r.message, r


# ======================================================================================
# reporter checks
# ======================================================================================


def _html_reporter(results: pd.DataFrame, out_dir: Path, **kw: Any) -> list[Path]:
    rows = "".join(f"<tr><td>{html.escape(str(m))}</td></tr>" for m in sorted(results["method"].unique()))
    page = out_dir / "index.html"
    page.write_text(f"<html><body><table>{rows}</table></body></html>")
    csv = out_dir / "results.csv"
    results.to_csv(csv, index=False)
    return [page, csv]


def _unescaped_reporter(results: pd.DataFrame, out_dir: Path, **kw: Any) -> list[Path]:
    page = out_dir / "index.html"
    page.write_text("<html>" + "".join(f"<p>{m}</p>" for m in results["method"].unique()) + "</html>")
    return [page]


def _str_paths_reporter(results: pd.DataFrame, out_dir: Path, **kw: Any) -> list[Any]:
    return [str(p) for p in _html_reporter(results, out_dir)]


def _mutating_reporter(results: pd.DataFrame, out_dir: Path, **kw: Any) -> list[Path]:
    results["value"] = results["value"].round(1)
    return _html_reporter(results, out_dir)


def _r(fn: Any, formats: tuple[str, ...] = ("html", "csv")) -> ReporterSpec:
    return ReporterSpec(name="toy_r", target=fn, formats=formats)


def test_good_reporter_passes() -> None:
    report = check_reporter(_r(_html_reporter))
    assert {r.check for r in report} == {c.name for c in REPORTER_CHECKS}
    assert all(r.status == "passed" for r in report), report.to_text()


@pytest.mark.parametrize(
    ("spec", "check", "expectation"),
    [
        (_r(_unescaped_reporter, ("html",)), "check_reporter_escapes_html", "unescaped"),
        (_r(_str_paths_reporter), "check_reporter_renders", "pathlib.Path"),
        (_r(_unescaped_reporter), "check_reporter_formats_declared", "csv"),
        (_r(_mutating_reporter), "check_reporter_input_not_mutated", "modified"),
        (_r(lambda results, out_dir: 1 / 0), "check_reporter_renders", "ZeroDivisionError"),
    ],
    ids=["escape", "paths", "formats", "mutates", "raises"],
)
def test_broken_reporter_fails(spec: ReporterSpec, check: str, expectation: str) -> None:
    r = check_reporter(spec, on_fail="report").result(check)
    assert r.status == "failed" and "reporter 'toy_r'" in r.message and expectation in r.message, r


def test_toy_results_contain_the_hostile_name() -> None:
    from medfairx.testing import make_toy_results

    assert SCRIPT_NAME in set(make_toy_results()["method"])


# ======================================================================================
# plugin checks (module objects; entry points are covered by test_third_party_plugin.py)
# ======================================================================================

GOOD_PLUGIN = '''
from medfairx import MetricSpec, hookimpl


@hookimpl
def register_metrics(register):
    register(MetricSpec("kitplug_auc", "{mod}_impl:auc", task="classification", kind="performance",
                        higher_is_better=True))
'''

GOOD_IMPL = '''
import numpy as np
from medfairx.metrics.basic import auc as _auc


def auc(y_true, y_score, *, sensitive_features):
    return _auc(np.asarray(y_true), np.asarray(y_score))
'''

TYPO_PLUGIN = '''
from medfairx import hookimpl


@hookimpl
def register_metrcis(register):
    pass
'''

HEAVY_PLUGIN = '''
import torch  # heavy at import time: what the kit must flag
from medfairx import hookimpl


@hookimpl
def register_metrics(register):
    pass
'''


def _write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, text: str) -> Any:
    import importlib

    (tmp_path / f"{name}.py").write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    return importlib.import_module(name)


def test_check_plugin_on_a_good_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_module(tmp_path, monkeypatch, "kitplug_good_impl", GOOD_IMPL)
    mod = _write_module(tmp_path, monkeypatch, "kitplug_good", GOOD_PLUGIN.replace("{mod}", "kitplug_good"))
    report = check_plugin(mod)
    assert report.passed, report.to_text()
    items = set(report.to_frame()["item"])
    assert items == {"plugin:kitplug_good", "metrics:kitplug_auc"}
    assert report.status_of("check_entrypoint_import_is_light") == "passed"
    assert report.status_of("check_metric_perfect_is_best", "metrics:kitplug_auc") == "passed"
    # same result by importable module name
    assert check_plugin("kitplug_good").passed


def test_check_plugin_flags_misspelled_hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDFAIRX_STRICT_PLUGINS", raising=False)
    mod = _write_module(tmp_path, monkeypatch, "kitplug_typo", TYPO_PLUGIN)
    report = check_plugin(mod)
    assert not report.passed
    r = report.result("check_hookimpls_match_hookspecs")
    assert r.status == "failed" and "register_metrcis" in r.message and "kitplug_typo" in r.message
    assert report.status_of("check_plugin_loaded") == "failed"


@pytest.mark.skipif("torch" not in sys.modules and __import__("importlib.util").util.find_spec("torch") is None,
                    reason="torch not installed")
def test_check_plugin_flags_heavy_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mod = _write_module(tmp_path, monkeypatch, "kitplug_heavy", HEAVY_PLUGIN)
    r = check_plugin(mod).result("check_entrypoint_import_is_light")
    assert r.status == "failed" and "torch" in r.message and "kitplug_heavy" in r.message


def test_check_plugin_expected_failures_declared_by_the_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = TYPO_PLUGIN + (
        '\nMEDFAIRX_EXPECTED_FAILED_CHECKS = {"plugin:kitplug_typo2": {'
        '"check_hookimpls_match_hookspecs": "demo", "check_plugin_loaded": "demo"}}\n'
    )
    mod = _write_module(tmp_path, monkeypatch, "kitplug_typo2", text)
    report = check_plugin(mod)
    assert report.passed and report.status_of("check_hookimpls_match_hookspecs") == "xfail"


def test_check_plugin_unknown_name_lists_plugins() -> None:
    with pytest.raises(ConfigError, match="No plugin called"):
        check_plugin("no_such_plugin_xyz")


def test_kit_feeds_distance_columns_their_own_perfect_value() -> None:
    """HD95 is 0 for a perfect prediction: the kit must not feed it Dice-like values."""
    import dataclasses

    from medfairx.plugins import get_host

    spec = get_host().registry("metrics").get("hd95")
    ok = check_metric(spec, on_fail="report").result("check_metric_perfect_is_best")
    assert ok.status == "passed", ok.message
    flipped = dataclasses.replace(spec, name="hd95_flipped", higher_is_better=True)
    bad = check_metric(flipped, on_fail="report").result("check_metric_perfect_is_best")
    assert bad.status == "failed" and "higher_is_better=True" in bad.message


def test_descriptive_metrics_have_no_best_value_to_check() -> None:
    from medfairx.plugins import get_host

    spec = get_host().registry("metrics").get("boundary_error_share")
    assert spec.kind == "descriptive"
    r = check_metric(spec, on_fail="report")
    assert r.result("check_metric_perfect_is_best").status == "skipped"
    assert r.result("check_metric_spec_valid").status == "passed"
