"""Conformance checks for methods (sklearn's ``check_estimator``, for :class:`Method`).

Every check takes a :class:`MethodSubject` and runs on tiny synthetic CPU data, once per
task / dimensionality the method's :class:`MethodTags` declare (3D only at level ``full``).
Capabilities come from the tags only; there is no special case for any method name.
"""

from __future__ import annotations

import copy
import inspect
import io
import pickle
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np

from medfairx.contracts import TaskData
from medfairx.errors import ConfigError, NotFittedError
from medfairx.methods.base import Method, RunContext, count_non_finite
from medfairx.specs import NAME_RE, MethodSpec, MethodTags, Task
from medfairx.testing._run import Check, OnFail, fail, run_checks, validate_level
from medfairx.testing.report import CheckFailure, CheckReport, SkipCheck
from medfairx.testing.toy import make_cpu_run_context, make_toy_splits

if TYPE_CHECKING:
    from medfairx.data.prompts import PromptConfig


class _Prompted(Protocol):
    """A method that derives its prompts (tag ``needs_prompts``)."""

    def prompt_config(self) -> PromptConfig: ...


NUM_CLASSES = 2
ATOL = 1e-6


@dataclass
class MethodSubject:
    """A method under test: its spec, class, construction parameters and level."""

    spec: MethodSpec
    cls: type[Method]
    params: dict[str, Any]
    level: str = "api"

    @property
    def name(self) -> str:
        """Registry name."""
        return self.spec.name

    @property
    def tags(self) -> MethodTags:
        """The registered tags (what the framework and the leaderboard believe)."""
        return self.spec.tags

    @property
    def label(self) -> str:
        """How messages name the method."""
        return f"method {self.name!r} ({self.cls.__module__}.{self.cls.__qualname__})"

    def __str__(self) -> str:
        return self.label

    def new(self) -> Method:
        """A fresh, unfitted instance."""
        return self.cls(**copy.deepcopy(self.params))

    def variants(self) -> list[tuple[Task, int]]:
        """(task, spatial_dims) combinations to test: the smallest declared dimensionality,
        plus every other declared one (2 or 3) at level ``full``."""
        dims = sorted(d for d in self.tags.spatial_dims if d in (2, 3)) or [2]
        if self.level == "api":
            dims = dims[:1]
        return [(task, d) for task in self.tags.tasks for d in dims]

    @property
    def features_only(self) -> bool:
        """The method runs on frozen-encoder feature vectors only (``tags.inputs``): every
        check then hands it :func:`toy_features` and a ``linear`` head."""
        return "images" not in self.tags.inputs

    def data(self, task: Task, dims: int, seed: int = 0) -> dict[str, TaskData]:
        """Fresh train / val / test toy splits (3 groups, or 2 unless the ``multi_group`` tag)."""
        n_groups = 3 if self.tags.multi_group else 2
        splits = make_toy_splits(task, spatial_dims=dims, num_classes=NUM_CLASSES, n_groups=n_groups, seed=seed)
        if self.features_only:
            return {k: toy_features(d) for k, d in splits.items()}
        if self.tags.needs_prompts:  # prompts from the ground truth, as the runner derives them
            from medfairx.data.prompts import attach_prompts

            config = cast(_Prompted, self.new()).prompt_config()  # needs_prompts promises prompt_config()
            splits = {k: attach_prompts(d, d, config, seed=seed) for k, d in splits.items()}
        return splits

    def ctx(self, task: Task, dims: int, **changes: Any) -> RunContext:
        """A fresh seeded CPU context."""
        if self.features_only:
            changes = {**FEATURE_CONTEXT, **changes}
        return make_cpu_run_context(task, num_classes=NUM_CLASSES, spatial_dims=dims, **changes)

    def fit_inputs(self, train: TaskData, val: TaskData) -> tuple[TaskData, TaskData]:
        """What the framework hands to ``fit``: groups only if ``uses_groups_in_fit``."""
        if self.tags.uses_groups_in_fit:
            return train, val
        return train.without_groups(), val.without_groups()

    def predict_input(self, data: TaskData) -> TaskData:
        """What the framework hands to ``predict_scores``: labels masked; groups only if
        ``uses_groups_in_predict``."""
        data = data.without_labels()
        return data if self.tags.uses_groups_in_predict else data.without_groups()

    def fit(self, splits: dict[str, TaskData], ctx: RunContext, method: Method | None = None) -> Method:
        """Fit a fresh instance (or ``method``) the way the framework would."""
        m = method if method is not None else self.new()
        m.fit(*self.fit_inputs(splits["train"], splits["val"]), ctx)
        return m

    def predict(self, m: Method, data: TaskData, ctx: RunContext, *, raw: bool = False) -> np.ndarray:
        """``predict_scores`` as a numpy array (``raw``: pass ``data`` unchanged)."""
        return _as_array(m.predict_scores(data if raw else self.predict_input(data), ctx))

    def fit_predict(self, task: Task, dims: int, **ctx_changes: Any) -> np.ndarray:
        """Fit on fresh toy data and predict the test split."""
        splits = self.data(task, dims)
        ctx = self.ctx(task, dims, **ctx_changes)
        return self.predict(self.fit(splits, ctx), splits["test"], ctx)


#: What the runner's context looks like under a frozen protocol on :func:`toy_features`.
FEATURE_CONTEXT: dict[str, Any] = {"backbone": "linear", "in_channels": 16, "image_size": ()}


def toy_features(data: TaskData) -> TaskData:
    """``data`` as a frozen protocol hands it to methods: ``(N, 16)`` float32 vectors (4 x 4
    average-pooled pixels of the first channel, scaled), labels and groups unchanged."""
    x = np.asarray(data.images, dtype=np.float32)[:, 0]
    n, h, w = x.shape[:3]
    pooled = x[:, : h - h % 4, : w - w % 4].reshape(n, 4, (h - h % 4) // 4, 4, (w - w % 4) // 4).mean(axis=(2, 4))
    return replace(data, images=((pooled.reshape(n, 16) - 60.0) / 40.0).astype(np.float32))


def check_runs_on_frozen_features(s: MethodSubject) -> None:
    """Under a frozen protocol (``linear_probe`` / ``knn``) the method fits on ``(N, D)`` feature
    vectors with a ``linear`` head, with augmentation on as the runner trains, and predicts
    valid scores (image augmentations must leave vectors alone). Skipped for methods whose
    ``tags.inputs`` exclude features (they are not planned there) or without classification."""
    if "features" not in s.tags.inputs or "classification" not in s.tags.tasks:
        raise SkipCheck(f"skipped: tags.inputs={list(s.tags.inputs)}, tasks={list(s.tags.tasks)}")
    splits = s.data("classification", 2)
    if not s.features_only:
        splits = {k: toy_features(d) for k, d in splits.items()}
    ctx = make_cpu_run_context("classification", num_classes=NUM_CLASSES, spatial_dims=2, **FEATURE_CONTEXT)
    ctx.recipe = ctx.recipe.updated(augment=True)  # as the runner trains: augmentation on, which must skip vectors
    try:
        scores = s.predict(s.fit(splits, ctx), splits["test"], ctx)
    except Exception as exc:
        raise CheckFailure(
            f"{s.label}: fit/predict on frozen-encoder features (N, 16) with a linear head failed: "
            f"{type(exc).__name__}: {exc}. Support (N, D) inputs, or tag inputs=('images',) if the method needs pixels."
        ) from exc
    _validate_scores(s, "classification", 2, scores, len(splits["test"]))
    _check_standardized_features(s, splits)


#: How far apart a method's scores may be on features and on the same features times 1e-6,
#: both standardised (float32 rounding differs; training is otherwise the same).
SCALE_TOLERANCE = 1e-3


def _check_standardized_features(s: MethodSubject, splits: dict[str, TaskData]) -> None:
    """Under ``standardize_features`` the runner gives the head the training split's
    statistics (``ctx.backbone_kwargs``); a method must build its networks with them (or
    scale its vectors with ``medfairx.methods.standardized``), so its scores do not depend on
    the features' scale."""
    from medfairx.methods.encoders import feature_statistics

    scores = []
    for scale in (1.0, 1e-6):
        scaled = {k: replace(d, images=(np.asarray(d.images, np.float64) * scale).astype(np.float32))
                  for k, d in splits.items()}
        ctx = make_cpu_run_context("classification", num_classes=NUM_CLASSES, spatial_dims=2, **FEATURE_CONTEXT)
        ctx.backbone_kwargs = feature_statistics({"standardize": True}, scaled["train"].images)
        scores.append(s.predict(s.fit(scaled, ctx), scaled["test"], ctx))
    gap = float(np.max(np.abs(scores[0] - scores[1])))
    if not gap <= SCALE_TOLERANCE:
        raise CheckFailure(
            f"{s.label}: with standardised features its test scores change by up to {gap:.3g} when the features are "
            "multiplied by 1e-6. Build networks with build_backbone(..., **ctx.backbone_kwargs) (the head's "
            "Standardize layer), or scale vectors used without a network with medfairx.methods.standardized."
        )


def _as_array(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor: do not import torch just to check
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _where(task: str, dims: int) -> str:
    return f"[{task} {dims}D]"


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, atol=ATOL, rtol=0, equal_nan=True))


def _max_diff(a: np.ndarray, b: np.ndarray) -> str:
    if a.shape != b.shape:
        return f"shapes {a.shape} vs {b.shape}"
    return f"max |difference| {float(np.nanmax(np.abs(a.astype(float) - b.astype(float)))):.3g}"


def _equal_values(a: Any, b: Any) -> bool:
    if a is b:
        return True
    try:
        eq = a == b
        return bool(eq if not isinstance(eq, np.ndarray) else eq.all())
    except Exception:  # noqa: BLE001 - objects without a usable __eq__
        return False


# --- resolving what to check ----------------------------------------------------------


def method_subject(obj: Any, level: str = "api") -> MethodSubject:
    """Build a :class:`MethodSubject` from a registry name, a :class:`MethodSpec`, a
    :class:`Method` subclass or an instance (whose ``get_params()`` are used)."""
    validate_level(level)
    params: dict[str, Any] | None = None
    if isinstance(obj, str):
        from medfairx.plugins import get_host

        obj = get_host().registry("methods").get(obj)
    if isinstance(obj, Method):
        params = obj.get_params()
        obj = type(obj)
    if isinstance(obj, MethodSpec):
        spec = obj
        cls = spec.load()
    elif isinstance(obj, type) and issubclass(obj, Method):
        cls = obj
        spec = MethodSpec.from_class(cls)
    else:
        raise ConfigError(f"check_method needs a Method subclass, instance, MethodSpec or name; got {obj!r}.")
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise ConfigError(f"Method spec {spec.name!r} targets {cls!r}, which is not a medfairx Method subclass.")
    if params is None:
        params = dict(cls.test_params() or {}) if callable(getattr(cls, "test_params", None)) else {}
    return MethodSubject(spec, cls, params, level)


# --- checks ---------------------------------------------------------------------------


def check_name_is_valid(s: MethodSubject) -> None:
    """The registered name is a slug and equals the class's ``name`` attribute."""
    fail(bool(NAME_RE.match(s.name)), f"{s.label}: name {s.name!r} must match {NAME_RE.pattern}.")
    cls_name = getattr(s.cls, "name", "")
    fail(
        cls_name == s.name,
        f"{s.label}: class attribute name={cls_name!r} differs from the registered name {s.name!r}; "
        "set `name` on the class to the registered name.",
    )


def check_tags_match_class(s: MethodSubject) -> None:
    """The registered tags equal the class's ``tags`` (lazy specs repeat them)."""
    cls_tags = getattr(s.cls, "tags", None)
    fail(
        isinstance(cls_tags, MethodTags),
        f"{s.label}: class attribute `tags` must be a MethodTags, got {type(cls_tags).__name__}.",
    )
    fail(
        cls_tags == s.tags,
        f"{s.label}: registered tags {s.tags} differ from the class's tags {cls_tags}; "
        "keep the MethodSpec's tags in sync with the class.",
    )


def check_test_params_construct(s: MethodSubject) -> None:
    """``test_params()`` returns a dict of known ``__init__`` arguments that builds an instance."""
    tp = s.cls.test_params()
    fail(isinstance(tp, dict), f"{s.label}: test_params() must return a dict, got {type(tp).__name__}.")
    sig = inspect.signature(s.cls.__init__)
    has_var_kw = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    unknown = sorted(set(tp) - set(s.cls.param_names()))
    fail(
        has_var_kw or not unknown,
        f"{s.label}: test_params() has key(s) {unknown} that __init__ does not accept "
        f"(parameters: {s.cls.param_names()}).",
    )
    try:
        s.cls(**tp)
    except Exception as exc:
        raise CheckFailure(f"{s.label}: {s.cls.__name__}(**test_params()) raised {type(exc).__name__}: {exc}") from exc


def check_init_stores_only(s: MethodSubject) -> None:
    """``__init__`` stores its hyper-parameters unchanged and sets nothing else, and
    ``cls(**m.get_params())`` round-trips (sklearn's ``check_no_attributes_set_in_init``)."""
    m = s.cls(**s.params)
    names = set(s.cls.param_names())
    extra = sorted(set(vars(m)) - names)
    fail(
        not extra,
        f"{s.label}: __init__ set attribute(s) {extra} that are not hyper-parameters {sorted(names)}; "
        "__init__ must only store its arguments (create everything else in fit).",
    )
    missing = sorted(n for n in names if not hasattr(m, n))
    fail(not missing, f"{s.label}: __init__ does not store parameter(s) {missing} as attributes of the same name.")
    changed = sorted(k for k, v in s.params.items() if k in names and not _equal_values(getattr(m, k), v))
    fail(not changed, f"{s.label}: __init__ changed the value of parameter(s) {changed}; store them unchanged.")
    params = m.get_params()
    again = s.cls(**params).get_params()
    diff = sorted(k for k in set(params) | set(again) if not _equal_values(params.get(k), again.get(k)))
    fail(not diff, f"{s.label}: cls(**m.get_params()).get_params() differs from m.get_params() for {diff}.")


def check_fit_returns_self(s: MethodSubject) -> None:
    """``fit`` returns the instance it was called on."""
    for task, dims in s.variants():
        splits, ctx, m = s.data(task, dims), s.ctx(task, dims), s.new()
        out = m.fit(*s.fit_inputs(splits["train"], splits["val"]), ctx)
        fail(out is m, f"{s.label} {_where(task, dims)}: fit() returned {type(out).__name__}, expected self.")


def check_predict_before_fit_raises(s: MethodSubject) -> None:
    """``predict_scores`` on an unfitted instance raises NotFittedError mentioning ``fit``."""
    for task, dims in s.variants():
        splits, ctx = s.data(task, dims), s.ctx(task, dims)
        try:
            out = s.new().predict_scores(s.predict_input(splits["test"]), ctx)
        except NotFittedError as exc:
            fail("fit" in str(exc), f"{s.label}: the NotFittedError message {str(exc)!r} should tell the user to call fit().")
            continue
        except Exception as exc:
            raise CheckFailure(
                f"{s.label} {_where(task, dims)}: predict_scores before fit raised {type(exc).__name__}: {exc}; "
                "expected medfairx.NotFittedError (call self.check_fitted() first)."
            ) from exc
        raise CheckFailure(
            f"{s.label} {_where(task, dims)}: predict_scores before fit returned {type(out).__name__} "
            "instead of raising medfairx.NotFittedError (call self.check_fitted() first)."
        )


def _validate_scores(s: MethodSubject, task: Task, dims: int, scores: np.ndarray, n: int) -> None:
    where = f"{s.label} {_where(task, dims)}"
    spatial = make_cpu_run_context(task, spatial_dims=dims).image_size
    expected = (n, NUM_CLASSES) if task == "classification" else (n, NUM_CLASSES, *spatial)
    fail(scores.shape == expected, f"{where}: predict_scores returned shape {scores.shape}; expected {expected}.")
    fail(np.issubdtype(scores.dtype, np.floating), f"{where}: predict_scores returned dtype {scores.dtype}; expected a float dtype.")
    bad = count_non_finite(scores)
    fail(bad == 0, f"{where}: predict_scores returned {bad} non-finite values (NaN or inf) of {scores.size}.")
    fail(bool((scores >= -ATOL).all() and (scores <= 1 + ATOL).all()), f"{where}: probabilities must lie in [0, 1].")
    sums = scores.sum(axis=1)
    fail(
        bool(np.allclose(sums, 1.0, atol=1e-4)),
        f"{where}: class probabilities must sum to 1 over axis 1; sums range {float(sums.min()):.4g}..{float(sums.max()):.4g}.",
    )


def check_predict_scores_shape_dtype(s: MethodSubject) -> None:
    """Scores are ``(N, C)`` (or ``(N, C, *spatial)``), float, finite, and sum to 1 over classes."""
    for task, dims in s.variants():
        splits, ctx = s.data(task, dims), s.ctx(task, dims)
        m = s.fit(splits, ctx)
        _validate_scores(s, task, dims, s.predict(m, splits["test"], ctx), len(splits["test"]))


def _scrambled_labels(data: TaskData, seed: int = 1) -> TaskData:
    assert data.labels is not None
    rng = np.random.default_rng(seed)
    labels = data.labels.copy()
    if labels.ndim == 1:
        labels = (NUM_CLASSES - 1) - labels  # every test label flipped
    else:
        labels = rng.integers(0, NUM_CLASSES, labels.shape).astype(labels.dtype)
    return replace(data, labels=labels)


def _observe(s: MethodSubject, ctx: RunContext, task: Task, sets: dict[str, TaskData]) -> list[Any]:
    """Install the runner's epoch observer over ``sets`` on ``ctx`` where the runner would
    (classification, ``epochs_are_checkpoints``); return the list it appends its records to."""
    if task != "classification" or not s.cls.epochs_are_checkpoints:
        return []
    from medfairx.runner.epochs import epoch_recorder

    observe, records = epoch_recorder(sets, method=s.name)
    ctx.observe_epoch = observe
    return records


def _observed(records: list[Any]) -> np.ndarray:
    """The recorded per-epoch scores as one flat array (epoch, then split order)."""
    parts = [np.asarray(r.scores[k], dtype=np.float64).ravel() for r in records for k in r.scores]
    return np.concatenate(parts) if parts else np.zeros(0)


def check_does_not_read_test_labels(s: MethodSubject) -> None:
    """Labels of the predicted data never matter: masked vs unmasked labels at predict time
    give identical scores, and a fit observed by the runner's epoch observer over val and
    test data (``ctx.observe_epoch``, the test labels left visible as bait) gives the same
    predictions and the same per-epoch observed scores when only the test labels change."""
    for task, dims in s.variants():
        where = f"{s.label} {_where(task, dims)}"
        splits, ctx = s.data(task, dims), s.ctx(task, dims)
        m = s.fit(splits, ctx)
        test = splits["test"]
        groups_ok = test if s.tags.uses_groups_in_predict else test.without_groups()
        masked = s.predict(m, groups_ok.without_labels(), ctx, raw=True)
        unmasked = s.predict(m, groups_ok, ctx, raw=True)
        fail(
            _same(masked, unmasked),
            f"{where}: predict_scores changed when the labels of the predicted data were visible "
            f"({_max_diff(masked, unmasked)}); a method must never read labels at predict time (test-label leakage).",
        )
        if s.tags.non_deterministic:
            continue  # fit-time leakage needs reproducible fits

        def fit_with_test(test_data: TaskData, task: Task = task, dims: int = dims) -> np.ndarray:
            c = s.ctx(task, dims)
            fresh = s.data(task, dims)
            _, fit_val = s.fit_inputs(fresh["train"], fresh["val"])
            records = _observe(s, c, task, {"val": fit_val.without_labels(), "test": test_data})
            scores = s.predict(s.fit(fresh, c), fresh["test"], c)
            return np.concatenate([scores.astype(np.float64).ravel(), _observed(records)])

        a = fit_with_test(test)
        b = fit_with_test(_scrambled_labels(test))
        if not _same(a, b):
            a2 = fit_with_test(test)
            fail(
                _same(a, a2),
                f"{where}: two fits with the same seed gave different predictions ({_max_diff(a, a2)}), so fit-time "
                "leakage cannot be tested; seed every random source from ctx.seed, or tag non_deterministic=True.",
            )
            raise CheckFailure(
                f"{where}: predictions or per-epoch observed scores changed when only the labels of the test split "
                "held by ctx.observe_epoch changed "
                f"({_max_diff(a, b)}); fit must use train and val only (test-label leakage)."
            )


def check_group_usage_matches_tags(s: MethodSubject) -> None:
    """Group usage honours the tags: without ``uses_groups_in_predict`` shuffled (or hidden)
    groups at predict time change nothing; without ``uses_groups_in_fit`` fit works on
    ``groups=None`` and, for a deterministic method, visible groups change nothing."""
    t = s.tags
    for task, dims in s.variants():
        where = f"{s.label} {_where(task, dims)}"
        splits, ctx = s.data(task, dims), s.ctx(task, dims)
        m = s.fit(splits, ctx)  # groups given only if uses_groups_in_fit (the framework's rule)
        test = splits["test"].without_labels()
        if not t.uses_groups_in_predict:
            assert test.groups is not None
            base = s.predict(m, test.without_groups(), ctx, raw=True)
            with_groups = s.predict(m, test, ctx, raw=True)
            perm = np.random.default_rng(0).permutation(len(test))
            shuffled = s.predict(m, replace(test, groups=test.groups[perm]), ctx, raw=True)
            fail(
                _same(base, with_groups) and _same(base, shuffled),
                f"{where}: predict_scores depends on the group codes ({_max_diff(base, shuffled)}) but the method "
                "is tagged uses_groups_in_predict=False; set the tag to True (or stop reading data.groups).",
            )
        if not t.uses_groups_in_fit and not t.non_deterministic:
            ctx2 = s.ctx(task, dims)
            fresh = s.data(task, dims)
            m2 = s.new().fit(fresh["train"], fresh["val"], ctx2)  # groups visible on purpose
            seen = s.predict(m2, fresh["test"], ctx2)
            blind = s.predict(m, splits["test"], ctx)
            fail(
                _same(seen, blind),
                f"{where}: fitting with group codes visible changed the predictions ({_max_diff(seen, blind)}) but the "
                "method is tagged uses_groups_in_fit=False; set the tag to True (or stop reading train.groups).",
            )


def _snapshot(*datas: TaskData) -> list[dict[str, Any]]:
    return [{k: copy.deepcopy(getattr(d, k)) for k in ("images", "labels", "groups", "sample_ids")} for d in datas]


def check_inputs_not_mutated(s: MethodSubject) -> None:
    """``fit`` and ``predict_scores`` leave every array of their TaskData unchanged."""
    for task, dims in s.variants():
        splits, ctx = s.data(task, dims), s.ctx(task, dims)
        train, val = s.fit_inputs(splits["train"], splits["val"])
        test = s.predict_input(splits["test"])
        _observe(s, ctx, task, {"val": val.without_labels(), "test": test})
        before = _snapshot(train, val, test)
        m = s.new().fit(train, val, ctx)
        m.predict_scores(test, ctx)
        after = _snapshot(train, val, test)
        for split, b, a in zip(("train", "val", "test"), before, after, strict=False):
            for k in b:
                same = (b[k] is None and a[k] is None) or (
                    b[k] is not None and a[k] is not None and b[k].shape == a[k].shape and bool(np.array_equal(b[k], a[k]))
                )
                fail(same, f"{s.label} {_where(task, dims)}: fit/predict_scores modified {split}.{k} in place; work on a copy.")


def check_handles_tiny_group(s: MethodSubject) -> None:
    """A validation set with a one-sample group and a single-class group does not crash."""
    for task, dims in s.variants():
        splits, ctx = s.data(task, dims), s.ctx(task, dims)
        val = splits["val"]
        assert val.groups is not None and val.labels is not None
        groups = val.groups.copy()
        last = val.n_groups - 1
        groups[groups == last] = 0
        groups[np.flatnonzero(groups == 0)[0]] = last  # group `last` has exactly one sample
        labels = val.labels.copy()
        labels[groups == 1] = 0  # group 1 has a single class (all negative / empty masks)
        splits["val"] = replace(val, groups=groups, labels=labels)
        try:
            m = s.fit(splits, ctx)
            scores = s.predict(m, splits["test"], ctx)
        except Exception as exc:
            raise CheckFailure(
                f"{s.label} {_where(task, dims)}: fit/predict crashed when a validation group had one sample and "
                f"another had a single class: {type(exc).__name__}: {exc}. Treat undefined per-group metrics as NaN."
            ) from exc
        _validate_scores(s, task, dims, scores, len(splits["test"]))


@contextmanager
def _no_cuda() -> Iterator[None]:
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    saved = torch.cuda.is_available
    torch.cuda.is_available = lambda: False
    try:
        yield
    finally:
        torch.cuda.is_available = saved


def _devices(obj: Any, out: set[str], depth: int = 0) -> set[str]:
    if depth > 6:
        return out
    dev = getattr(obj, "device", None)
    if dev is not None and hasattr(obj, "detach"):
        out.add(str(getattr(dev, "type", dev)))
    elif isinstance(obj, dict):
        for v in obj.values():
            _devices(v, out, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _devices(v, out, depth + 1)
    return out


def check_cpu_only(s: MethodSubject) -> None:
    """Fit and predict run with ``ctx.device == "cpu"`` and CUDA reported unavailable, and the
    state dict holds CPU tensors only. Skipped for methods tagged ``needs_gpu``."""
    if s.tags.needs_gpu:
        raise SkipCheck("skipped by tag needs_gpu=True")
    for task, dims in s.variants():
        with _no_cuda():
            splits, ctx = s.data(task, dims), s.ctx(task, dims, device="cpu")
            m = s.fit(splits, ctx)
            s.predict(m, splits["test"], ctx)
            try:
                state = m.state_dict()
            except NotImplementedError:
                state = {}
        bad = sorted(_devices(state, set()) - {"cpu"})
        fail(not bad, f"{s.label} {_where(task, dims)}: state_dict holds tensors on {bad} although ctx.device was 'cpu'.")


def check_seed_determinism(s: MethodSubject) -> None:
    """Two fits with the same ``ctx.seed`` give identical predictions (skipped for
    ``non_deterministic``)."""
    if s.tags.non_deterministic:
        raise SkipCheck("skipped by tag non_deterministic=True")
    for task, dims in s.variants():
        a, b = s.fit_predict(task, dims, seed=3), s.fit_predict(task, dims, seed=3)
        fail(
            _same(a, b),
            f"{s.label} {_where(task, dims)}: two fits with seed 3 gave different predictions ({_max_diff(a, b)}); "
            "seed every random source from ctx.seed, or tag non_deterministic=True.",
        )


def _weights_only_round_trip(state: Any, where: str) -> Any:
    import torch

    from medfairx.fileio import load_weights_only

    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    try:
        return load_weights_only(buf)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        fail(False, f"{where}: state_dict() holds {found.group(1) if found else 'an object'} that a weights-only "
                    "load refuses; keep only tensors, numpy arrays, numbers, strings, lists, tuples and dicts in it.")
        raise  # unreachable: fail raised


def check_state_dict_roundtrip(s: MethodSubject) -> None:
    """``state_dict`` → ``torch.save`` → ``torch.load(weights_only=True)`` → new instance predicts identically.

    A state that needs full unpickling (objects other than tensors and plain containers)
    could not be loaded back from a run's ``state.pt``, which is always read weights-only.
    """
    for task, dims in s.variants():
        where = f"{s.label} {_where(task, dims)}"
        splits, ctx = s.data(task, dims), s.ctx(task, dims)
        m = s.fit(splits, ctx)
        before = s.predict(m, splits["test"], ctx)
        state = _weights_only_round_trip(m.state_dict(), where)
        fresh = s.new()
        out = fresh.load_state_dict(state, s.ctx(task, dims))
        fail(out is fresh, f"{where}: load_state_dict() returned {type(out).__name__}, expected self.")
        after = s.predict(fresh, splits["test"], ctx)
        fail(
            _same(before, after),
            f"{where}: predictions after state_dict → load_state_dict differ from the fitted method's "
            f"({_max_diff(before, after)}); state_dict must hold everything predict_scores needs.",
        )


def check_search_space_names(s: MethodSubject) -> None:
    """Every name of the declared ``search_space`` is an ``__init__`` argument (or a recipe key
    the method takes through ``recipe``), and no range is empty."""
    from medfairx.search_space import BAD_SPACE, RECIPE_KEYS, space_problems

    problems = space_problems(s.spec, s.cls)
    fail(not problems, BAD_SPACE.format(method=s.name, target=s.label, problems="; ".join(problems),
                                        recipe=", ".join(RECIPE_KEYS)))


def check_search_space_samples_fit(s: MethodSubject) -> None:
    """Configurations drawn from the searched space (declared + recipe, with each task's
    replacements) build an instance that fits on tiny data of that task and predicts valid
    scores (one draw per task; three at level ``full``)."""
    import random

    from medfairx.search_space import (
        apply_sample,
        sample_space,
        space_of,
        space_problems,
    )

    if space_problems(s.spec, s.cls):
        raise SkipCheck("skipped: the search space itself is invalid (see check_search_space_names)")
    if not space_of(s.spec, s.cls):
        raise SkipCheck(f"skipped: {s.name} declares no search space")
    rng = random.Random(0)
    dims_of: dict[Task, int] = {}
    for task, dims in s.variants():
        dims_of.setdefault(task, dims)  # the first variant of each task
    for task, dims in [v for v in dims_of.items() for _ in range(3 if s.level == "full" else 1)]:
        sample = sample_space(space_of(s.spec, s.cls, task), rng)
        params = apply_sample(s.params, sample, s.cls)
        where = f"{s.label} on {task} with sampled {sample}"
        try:
            m = s.cls(**params)
        except Exception as exc:
            raise CheckFailure(f"{where}: __init__ raised {type(exc).__name__}: {exc}") from exc
        splits = s.data(task, dims)
        ctx = s.ctx(task, dims)
        try:
            scores = s.predict(s.fit(splits, ctx, m), splits["test"], ctx)
        except Exception as exc:
            raise CheckFailure(f"{where}: fit/predict raised {type(exc).__name__}: {exc}; narrow the range in "
                               "`search_space` (or, for one task, `task_search_space`) to values the method accepts") from exc
        _validate_scores(s, task, dims, scores, len(splits["test"]))


#: Checks that never fit the method: the ones an unavailable method (no weights here) still runs.
NO_FIT_CHECKS = frozenset({
    "check_name_is_valid", "check_tags_match_class", "check_test_params_construct", "check_init_stores_only",
    "check_predict_before_fit_raises", "check_search_space_names",
})

METHOD_CHECKS: tuple[Check, ...] = (
    Check("check_name_is_valid", check_name_is_valid),
    Check("check_tags_match_class", check_tags_match_class),
    Check("check_test_params_construct", check_test_params_construct),
    Check("check_init_stores_only", check_init_stores_only),
    Check("check_fit_returns_self", check_fit_returns_self),
    Check("check_predict_before_fit_raises", check_predict_before_fit_raises),
    Check("check_predict_scores_shape_dtype", check_predict_scores_shape_dtype),
    Check("check_does_not_read_test_labels", check_does_not_read_test_labels),
    Check("check_group_usage_matches_tags", check_group_usage_matches_tags),
    Check("check_inputs_not_mutated", check_inputs_not_mutated),
    Check("check_handles_tiny_group", check_handles_tiny_group),
    Check("check_cpu_only", check_cpu_only),
    Check("check_runs_on_frozen_features", check_runs_on_frozen_features),
    Check("check_search_space_names", check_search_space_names),
    Check("check_search_space_samples_fit", check_search_space_samples_fit),
    Check("check_seed_determinism", check_seed_determinism, level="full"),
    Check("check_state_dict_roundtrip", check_state_dict_roundtrip, level="full"),
)
"""Method checks in run order."""


def check_method(
    spec_or_cls: Any,
    *,
    level: str = "api",
    expected_failed_checks: dict[str, str] | None = None,
    on_fail: OnFail = "raise",
) -> CheckReport:
    """Run the method checks on a method (sklearn's ``check_estimator``).

    Args:
        spec_or_cls: a :class:`Method` subclass or instance, a :class:`MethodSpec`, or a
            registered method name.
        level: ``"api"`` (fast) or ``"full"`` (adds seed determinism, the state-dict
            round trip and 3D when the tags declare it).
        expected_failed_checks: ``{check_name: reason}`` for checks known to fail.
        on_fail: ``"raise"`` raises :class:`ConformanceError` listing every failed check;
            ``"report"`` only returns the report.

    Returns:
        The :class:`CheckReport`.
    """
    subject = method_subject(spec_or_cls, level)
    return run_checks(
        subject, method_checks(subject), item=subject.name, kind="methods", level=level,
        expected_failed_checks=expected_failed_checks, on_fail=on_fail,
    )


def method_checks(subject: MethodSubject) -> tuple[Check, ...]:
    """The checks for ``subject``: all of them, or for a method that is unavailable here
    (e.g. SAM without a checkpoint) only those that need no fit, the rest skipped with the reason."""
    if not subject.spec.unavailable:
        return METHOD_CHECKS
    reason = f"skipped: {subject.name} is unavailable here: {subject.spec.unavailable}"
    return tuple(c if c.name in NO_FIT_CHECKS else Check(c.name, _skip(reason), level=c.level) for c in METHOD_CHECKS)


def _skip(reason: str) -> Any:
    def skipped(_: MethodSubject) -> None:
        raise SkipCheck(reason)

    return skipped
