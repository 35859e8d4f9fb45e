"""Conformance checks for metrics: ``fn(y_true, y_score, *, sensitive_features) -> float``.

Inputs follow the metric's task: classification metrics get binary labels and
``y_score`` = P(positive); segmentation metrics get per-sample values of the column they
need (Dice, IoU, NSD, HD95: :data:`medfairx.metrics.catalogue.SAMPLE_VALUE_RANGE`; other
columns are taken to be Dice-like) in ``y_score`` and ignore ``y_true``. Toy data have three groups of equal size and equal
prevalence, so perfect predictions are also perfectly fair.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from medfairx.errors import ConfigError
from medfairx.metrics.catalogue import SAMPLE_VALUE_RANGE
from medfairx.specs import METRIC_KINDS as KINDS
from medfairx.specs import MetricSpec
from medfairx.testing._run import Check, OnFail, fail, run_checks
from medfairx.testing.report import CheckFailure, CheckReport, SkipCheck

N_PER_CELL = 12  # samples per (group, class) cell
GROUPS: tuple[str, ...] = ("a", "b", "c")


@dataclass
class MetricSubject:
    """A metric under test."""

    spec: MetricSpec
    fn: Any

    @property
    def label(self) -> str:
        """How messages name the metric."""
        return f"metric {self.spec.name!r}"

    def __str__(self) -> str:
        return self.label

    def __call__(self, y_true: np.ndarray, y_score: np.ndarray, groups: np.ndarray) -> Any:
        return self.fn(y_true, y_score, sensitive_features=groups)

    def better_or_equal(self, a: float, b: float) -> bool:
        """Whether ``a`` is at least as good as ``b`` in the declared direction."""
        return a >= b - 1e-9 if self.spec.higher_is_better else a <= b + 1e-9


def metric_subject(spec: MetricSpec | str) -> MetricSubject:
    """Resolve ``spec`` (or a registry name) and load its function."""
    if isinstance(spec, str):
        from medfairx.plugins import get_host

        spec = get_host().registry("metrics").get(spec)
    if not isinstance(spec, MetricSpec):
        raise ConfigError(f"check_metric needs a MetricSpec or a registered name; got {spec!r}.")
    return MetricSubject(spec, spec.load())


# --- toy inputs -----------------------------------------------------------------------


def _labels_groups() -> tuple[np.ndarray, np.ndarray]:
    y, g = [], []
    for name in GROUPS:
        for cls in (0, 1):
            y += [cls] * N_PER_CELL
            g += [name] * N_PER_CELL
    return np.array(y, dtype=np.int64), np.array(g, dtype=object)


def _stratified_random(y: np.ndarray, g: np.ndarray, seed: int = 0) -> np.ndarray:
    """Scores independent of the label: in every (group, class) cell half are above 0.5."""
    rng = np.random.default_rng(seed)
    s = np.empty(len(y))
    for name in GROUPS:
        for cls in (0, 1):
            idx = np.flatnonzero((g == name) & (y == cls))
            half = len(idx) // 2
            vals = np.concatenate([rng.uniform(0.55, 0.95, half), rng.uniform(0.05, 0.45, len(idx) - half)])
            s[idx] = rng.permutation(vals)
    return s


def _inputs(s: MetricSubject, quality: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y_true, y_score, groups) for ``quality`` in perfect / random / imperfect."""
    y, g = _labels_groups()
    rng = np.random.default_rng(seed)
    if s.spec.task == "segmentation":  # per-sample values of the metric's column, e.g. Dice or HD95
        best, bad = SAMPLE_VALUE_RANGE.get(s.spec.needs[0] if s.spec.needs else "dice", (1.0, 0.0))
        badness = {"perfect": np.zeros(len(y)), "random": rng.uniform(0.0, 1.0, len(y)),
                   "imperfect": np.clip(0.25 + 0.2 * rng.standard_normal(len(y)), 0, 1)}[quality]
        return np.zeros(len(y), dtype=np.int64), best + (bad - best) * badness, g
    if quality == "perfect":
        return y, y.astype(np.float64), g
    if quality == "random":
        return y, _stratified_random(y, g, seed), g
    return y, np.clip(0.5 + (y - 0.5) * 0.4 + 0.25 * rng.standard_normal(len(y)), 0.01, 0.99), g


def _value(s: MetricSubject, *args: Any) -> float:
    v = s(*args)
    fail(
        isinstance(v, (float, np.floating, int, np.integer)) and not isinstance(v, (bool, np.bool_)),
        f"{s.label}: returned {type(v).__name__}; expected a float.",
    )
    return float(v)


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


# --- checks ---------------------------------------------------------------------------


def check_metric_spec_valid(s: MetricSubject) -> None:
    """``kind`` is known and ``target`` is callable."""
    fail(s.spec.kind in KINDS, f"{s.label}: kind {s.spec.kind!r} is not one of {KINDS}.")
    fail(callable(s.fn), f"{s.label}: target {s.spec.target!r} is not callable.")


def check_metric_returns_float(s: MetricSubject) -> None:
    """On ordinary data the metric returns a finite float."""
    v = _value(s, *_inputs(s, "imperfect"))
    fail(math.isfinite(v), f"{s.label}: returned {v} on ordinary data (3 groups, both classes); expected a finite float.")


def check_metric_perfect_is_best(s: MetricSubject) -> None:
    """Perfect predictions score at least as well as label-independent random ones, in the
    direction ``higher_is_better`` declares."""
    if s.spec.kind == "descriptive":
        raise SkipCheck("skipped: kind='descriptive' metrics describe errors; no value is 'best'")
    perfect = _value(s, *_inputs(s, "perfect"))
    rand = _value(s, *_inputs(s, "random"))
    direction = "higher" if s.spec.higher_is_better else "lower"
    fail(
        s.better_or_equal(perfect, rand),
        f"{s.label}: perfect predictions scored {perfect:.4g} and random ones {rand:.4g}, but higher_is_better="
        f"{s.spec.higher_is_better} says {direction} is better; fix the direction or the metric.",
    )


def check_metric_group_renaming_invariant(s: MetricSubject) -> None:
    """Renaming (permuting) the group labels does not change the value."""
    y, score, g = _inputs(s, "imperfect")
    mapping = {"a": "c", "b": "a", "c": "b"}
    renamed = np.array([mapping[v] for v in g], dtype=object)
    a, b = _value(s, y, score, g), _value(s, y, score, renamed)
    fail(_same(a, b), f"{s.label}: value changed from {a:.6g} to {b:.6g} when group labels were renamed; "
                      "it must not depend on label names or order.")


def check_metric_degenerate_group_nan(s: MetricSubject) -> None:
    """A degenerate group (classification: one class only; segmentation: one sample) gives a
    value or NaN with a warning, never an exception."""
    y, score, g = _inputs(s, "imperfect")
    if s.spec.task == "segmentation":
        keep = np.ones(len(y), dtype=bool)
        keep[np.flatnonzero(g == "c")[1:]] = False
        y, score, g = y[keep], score[keep], g[keep]
        what = "a group with one sample"
    else:
        y = y.copy()
        y[g == "c"] = 0
        what = "a group with a single class"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            v = _value(s, y, score, g)
        except CheckFailure:
            raise
        except Exception as exc:
            raise CheckFailure(f"{s.label}: raised {type(exc).__name__} on {what}: {exc}; return NaN with a warning instead.") from exc
    fail(not math.isnan(v) or bool(caught), f"{s.label}: returned NaN on {what} without a warning; warn when a value is undefined.")


def check_metric_fairness_parity(s: MetricSubject) -> None:
    """Fairness metrics: groups with identical predictions score the parity value (0 for a
    difference, lower is better) and strictly fairer than groups of unequal quality."""
    if s.spec.kind != "fairness":
        raise SkipCheck(f"skipped: kind={s.spec.kind!r} is not 'fairness'")
    y, score, _ = _inputs(s, "imperfect")
    n = len(y) // len(GROUPS)
    y1, s1 = y[:n], score[:n]
    y_id = np.tile(y1, len(GROUPS))
    s_id = np.tile(s1, len(GROUPS))
    g_id = np.repeat(np.array(GROUPS, dtype=object), n)
    identical = _value(s, y_id, s_id, g_id)
    noisy = np.random.default_rng(1).uniform(0.0, 1.0, n)
    if s.spec.task == "segmentation":  # one perfect group, one ordinary, one poor
        s_dis = np.concatenate([np.ones(n), s1, noisy * 0.3])
    else:
        s_dis = np.concatenate([y1.astype(float), s1, noisy])
    disparate = _value(s, y_id, s_dis, g_id)
    if not s.spec.higher_is_better:
        fail(
            abs(identical) < 1e-9,
            f"{s.label}: groups with identical predictions scored {identical:.6g}; a difference-type fairness metric "
            "(higher_is_better=False) must give its parity value 0.",
        )
    fail(
        math.isfinite(identical) and (identical > disparate if s.spec.higher_is_better else identical < disparate),
        f"{s.label}: identical groups scored {identical:.6g} and groups of unequal quality {disparate:.6g}; "
        f"identical groups must be strictly fairer (higher_is_better={s.spec.higher_is_better}).",
    )


METRIC_CHECKS: tuple[Check, ...] = (
    Check("check_metric_spec_valid", check_metric_spec_valid),
    Check("check_metric_returns_float", check_metric_returns_float),
    Check("check_metric_perfect_is_best", check_metric_perfect_is_best),
    Check("check_metric_group_renaming_invariant", check_metric_group_renaming_invariant),
    Check("check_metric_degenerate_group_nan", check_metric_degenerate_group_nan),
    Check("check_metric_fairness_parity", check_metric_fairness_parity),
)
"""Metric checks in run order."""


def check_metric(
    spec: MetricSpec | str,
    *,
    expected_failed_checks: dict[str, str] | None = None,
    on_fail: OnFail = "raise",
) -> CheckReport:
    """Run the metric checks.

    Args:
        spec: the :class:`MetricSpec` (or its registered name).
        expected_failed_checks: ``{check_name: reason}``.
        on_fail: ``"raise"`` or ``"report"``.
    """
    subject = metric_subject(spec)
    return run_checks(
        subject, METRIC_CHECKS, item=subject.spec.name, kind="metrics",
        expected_failed_checks=expected_failed_checks, on_fail=on_fail,
    )
