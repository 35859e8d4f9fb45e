"""pytest integration for plugin authors: :func:`checks_generator` and
:func:`parametrize_with_checks` (sklearn's API of the same names)::

    from medfairx.testing import parametrize_with_checks

    @parametrize_with_checks([MyMethod], expected_failed_checks={"check_cpu_only": "needs CUDA"})
    def test_conformance(method, check):
        check(method)

Test ids are ``<name>-<check>`` (e.g. ``erm-check_predict_before_fit_raises``), so
``pytest -k check_predict`` selects one check across objects.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from medfairx.errors import ConfigError
from medfairx.methods.base import Method
from medfairx.specs import (
    DatasetSpec,
    GroupingSpec,
    MethodSpec,
    MetricSpec,
    ReporterSpec,
)
from medfairx.testing._run import Check, run_one, validate_expected, validate_level
from medfairx.testing.report import CheckFailure, SkipCheck

Expected = dict[str, str] | Callable[[Any], dict[str, str]] | None


def suite_for(obj: Any, level: str = "api") -> tuple[Any, tuple[Check, ...], str]:
    """``(subject, checks, item name)`` for any checkable object."""
    from medfairx.testing import (
        checks_dataset,
        checks_grouping,
        checks_method,
        checks_metric,
        checks_reporter,
    )

    if isinstance(obj, (MethodSpec, Method)) or (isinstance(obj, type) and issubclass(obj, Method)):
        s = checks_method.method_subject(obj, level)
        return s, checks_method.method_checks(s), s.name
    if isinstance(obj, DatasetSpec):
        return checks_dataset.dataset_subject(obj), checks_dataset.DATASET_CHECKS, obj.name
    if isinstance(obj, GroupingSpec):
        return checks_grouping.grouping_subject(obj), checks_grouping.GROUPING_CHECKS, obj.name
    if isinstance(obj, MetricSpec):
        return checks_metric.metric_subject(obj), checks_metric.METRIC_CHECKS, obj.name
    if isinstance(obj, ReporterSpec):
        return checks_reporter.reporter_subject(obj), checks_reporter.REPORTER_CHECKS, obj.name
    raise ConfigError(
        f"Cannot check {obj!r}: pass a Method subclass or instance, or a Method/Dataset/Grouping/Metric/Reporter spec."
    )


def _run_single(obj: Any, *, check_name: str, level: str) -> None:
    subject, checks, _ = suite_for(obj, level)
    check = next(c for c in checks if c.name == check_name)
    try:
        status, message, _ = run_one(check, subject)
    finally:
        cleanup = getattr(subject, "cleanup", None)
        if callable(cleanup):
            cleanup()
    if status == "failed":
        raise CheckFailure(message)
    if status == "skipped":
        try:
            import pytest
        except ImportError:  # pragma: no cover - outside pytest
            raise SkipCheck(message) from None
        pytest.skip(message)


def checks_generator(
    obj: Any,
    *,
    level: str = "api",
    expected_failed_checks: Expected = None,
    mark: str | None = None,
) -> Iterator[tuple[Any, Callable[[Any], None]]]:
    """Yield ``(obj, check)`` for every check of ``obj`` at ``level``; call ``check(obj)``.

    Args:
        obj: a Method subclass/instance or a spec.
        level: ``"api"`` or ``"full"``.
        expected_failed_checks: ``{check: reason}`` or a callable ``obj -> dict``.
        mark: ``None`` yields every check as is; ``"xfail"`` wraps expected failures in
            ``pytest.param(..., marks=pytest.mark.xfail(strict=True))``; ``"skip"`` skips them.
    """
    validate_level(level)
    if mark not in (None, "xfail", "skip"):
        raise ConfigError(f"mark must be None, 'xfail' or 'skip', not {mark!r}.")
    _, checks, item = suite_for(obj, level)
    expected = expected_failed_checks(obj) if callable(expected_failed_checks) else expected_failed_checks
    expected = validate_expected(expected, [c.name for c in checks], item)
    for c in checks:
        if not c.runs_at(level):
            continue
        fn = functools.partial(_run_single, check_name=c.name, level=level)
        functools.update_wrapper(fn, c.fn)
        fn.__name__ = c.name  # type: ignore[attr-defined]  # pytest names the test after the wrapped check
        reason = expected.get(c.name)
        if reason is None or mark is None:
            yield obj, fn
            continue
        import pytest

        marker = pytest.mark.xfail(reason=reason, strict=True) if mark == "xfail" else pytest.mark.skip(reason=reason)
        yield pytest.param(obj, fn, marks=marker, id=f"{item}-{c.name}")  # type: ignore[misc]  # pytest unpacks a pytest.param as the (obj, check) pair


def parametrize_with_checks(
    objs: Iterable[Any],
    *,
    level: str = "api",
    expected_failed_checks: Expected = None,
    argnames: tuple[str, str] = ("method", "check"),
) -> Any:
    """A ``pytest.mark.parametrize`` over every (object, check) pair.

    Args:
        objs: Method subclasses/instances or specs.
        level: ``"api"`` or ``"full"``.
        expected_failed_checks: ``{check: reason}`` (for every object) or a callable
            ``obj -> {check: reason}``; those checks are strict xfails.
        argnames: the test function's argument names.
    """
    import pytest

    params, ids = [], []
    for obj in objs:
        _, _, item = suite_for(obj, level)
        for entry in checks_generator(obj, level=level, expected_failed_checks=expected_failed_checks, mark="xfail"):
            params.append(entry)
            if isinstance(entry, pytest.ParameterSet):  # a pytest.param carrying its own id
                ids.append(entry.id)
            else:
                ids.append(f"{item}-{entry[1].__name__}")
    return pytest.mark.parametrize(argnames, params, ids=ids)
