"""The medfairx conformance kit (sklearn's ``check_estimator`` and sktime's suites, for
fairness plugins).

Public API::

    check_method(MyMethod, level="api", expected_failed_checks={...}) -> CheckReport
    check_dataset(spec, catalogue=None, name=None)
    check_grouping(spec, metadata=None)
    check_metric(spec)
    check_reporter(spec)
    check_plugin("my-dist-or-entry-point") -> CheckReport
    checks_generator(obj, ...), parametrize_with_checks(objs, ...)
    SUITE_VERSION

Capabilities come from :class:`~medfairx.specs.MethodTags`; known failures are declared with
``expected_failed_checks={check_name: reason}``. No check special-cases any name.
The toy factories (:mod:`medfairx.testing.toy`) and the pytest fixtures
(:mod:`medfairx.testing.pytest_plugin`) work on CPU, without torch, in seconds.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Attributes are imported on first use (PEP 562): the pytest11 plugin imports this package
# in every pytest session, so importing it must stay cheap (no pandas, no numpy).
_EXPORTS: dict[str, str] = {
    "LEVELS": "_run",
    "SUITE_VERSION": "_run",
    "DATASET_CHECKS": "checks_dataset",
    "check_dataset": "checks_dataset",
    "GROUPING_CHECKS": "checks_grouping",
    "check_grouping": "checks_grouping",
    "METHOD_CHECKS": "checks_method",
    "check_method": "checks_method",
    "METRIC_CHECKS": "checks_metric",
    "check_metric": "checks_metric",
    "PLUGIN_CHECKS": "checks_plugin",
    "check_all_plugins": "checks_plugin",
    "check_plugin": "checks_plugin",
    "REPORTER_CHECKS": "checks_reporter",
    "check_reporter": "checks_reporter",
    "checks_generator": "parametrize",
    "parametrize_with_checks": "parametrize",
    "CheckFailure": "report",
    "CheckReport": "report",
    "CheckResult": "report",
    "ConformanceError": "report",
    "SkipCheck": "report",
    "SCRIPT_NAME": "toy",
    "TOY_CARD": "toy",
    "TOY_DATASET": "toy",
    "TOY_GROUPING": "toy",
    "ToyFairDataset": "toy",
    "make_cpu_run_context": "toy",
    "make_toy_fair_dataset": "toy",
    "make_toy_metadata": "toy",
    "make_toy_results": "toy",
    "make_toy_splits": "toy",
    "make_toy_task_data": "toy",
}

if TYPE_CHECKING:
    from medfairx.testing._run import LEVELS, SUITE_VERSION
    from medfairx.testing.checks_dataset import DATASET_CHECKS, check_dataset
    from medfairx.testing.checks_grouping import GROUPING_CHECKS, check_grouping
    from medfairx.testing.checks_method import METHOD_CHECKS, check_method
    from medfairx.testing.checks_metric import METRIC_CHECKS, check_metric
    from medfairx.testing.checks_plugin import (
        PLUGIN_CHECKS,
        check_all_plugins,
        check_plugin,
    )
    from medfairx.testing.checks_reporter import REPORTER_CHECKS, check_reporter
    from medfairx.testing.parametrize import checks_generator, parametrize_with_checks
    from medfairx.testing.report import (
        CheckFailure,
        CheckReport,
        CheckResult,
        ConformanceError,
        SkipCheck,
    )
    from medfairx.testing.toy import (
        SCRIPT_NAME,
        TOY_CARD,
        TOY_DATASET,
        TOY_GROUPING,
        ToyFairDataset,
        make_cpu_run_context,
        make_toy_fair_dataset,
        make_toy_metadata,
        make_toy_results,
        make_toy_splits,
        make_toy_task_data,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'medfairx.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"medfairx.testing.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "DATASET_CHECKS",
    "GROUPING_CHECKS",
    "LEVELS",
    "METHOD_CHECKS",
    "METRIC_CHECKS",
    "PLUGIN_CHECKS",
    "REPORTER_CHECKS",
    "SCRIPT_NAME",
    "SUITE_VERSION",
    "TOY_CARD",
    "TOY_DATASET",
    "TOY_GROUPING",
    "CheckFailure",
    "CheckReport",
    "CheckResult",
    "ConformanceError",
    "SkipCheck",
    "ToyFairDataset",
    "check_all_plugins",
    "check_dataset",
    "check_grouping",
    "check_method",
    "check_metric",
    "check_plugin",
    "check_reporter",
    "checks_generator",
    "make_cpu_run_context",
    "make_toy_fair_dataset",
    "make_toy_metadata",
    "make_toy_results",
    "make_toy_splits",
    "make_toy_task_data",
    "parametrize_with_checks",
]
