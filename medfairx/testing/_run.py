"""The loop shared by every ``check_*`` entry point: run, time, classify, report."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from medfairx.errors import ConfigError
from medfairx.testing.report import CheckFailure, CheckReport, CheckResult, SkipCheck, Status

SUITE_VERSION = "1.0"
"""Version of the check list. Bumped when a check is added, removed or made stricter;
new checks first arrive at the ``provisional`` level."""

Level = Literal["api", "full", "provisional"]
LEVELS: tuple[str, ...] = ("api", "full", "provisional")
OnFail = Literal["raise", "report"]


@dataclass(frozen=True)
class Check:
    """One rule: ``fn(subject)`` returns on success, raises :class:`CheckFailure` (or any
    exception) on failure and :class:`SkipCheck` when it does not apply.

    ``level`` is the cheapest level that runs it: ``api`` ⊂ ``full`` ⊂ ``provisional``.
    """

    name: str
    fn: Callable[[Any], None]
    level: Level = "api"

    def runs_at(self, level: str) -> bool:
        """Whether this check belongs to ``level``."""
        return LEVELS.index(self.level) <= LEVELS.index(level)


def validate_level(level: str) -> str:
    """Return ``level`` or raise :class:`ConfigError`."""
    if level not in LEVELS:
        raise ConfigError(f"Unknown conformance level {level!r}; use one of {', '.join(LEVELS)}.")
    return level


def validate_expected(expected: dict[str, str] | None, available: Sequence[str], item: str) -> dict[str, str]:
    """``expected_failed_checks`` must name real checks and give a reason for each."""
    expected = dict(expected or {})
    unknown = sorted(set(expected) - set(available))
    if unknown:
        raise ConfigError(
            f"expected_failed_checks for {item!r} names unknown check(s) {unknown}. "
            f"Available checks: {', '.join(sorted(available))}."
        )
    blank = sorted(k for k, v in expected.items() if not str(v).strip())
    if blank:
        raise ConfigError(f"expected_failed_checks for {item!r}: give a reason for {blank}.")
    return expected


def run_one(check: Check, subject: Any) -> tuple[Status, str, float]:
    """Run one check; return ``(status, message, seconds)`` with status passed/failed/skipped."""
    t0 = time.perf_counter()
    try:
        check.fn(subject)
    except SkipCheck as exc:
        return "skipped", str(exc), time.perf_counter() - t0
    except CheckFailure as exc:
        return "failed", str(exc), time.perf_counter() - t0
    except Exception as exc:  # noqa: BLE001 - any crash of the object under test is a failure
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" (at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno})" if tb else ""
        message = f"{check.name} on {getattr(subject, 'label', subject)!s} raised {type(exc).__name__}: {exc}{where}"
        return "failed", message, time.perf_counter() - t0
    return "passed", "", time.perf_counter() - t0


def run_checks(
    subject: Any,
    checks: Sequence[Check],
    *,
    item: str,
    kind: str,
    level: str = "api",
    plugin: str = "",
    expected_failed_checks: dict[str, str] | None = None,
    on_fail: OnFail = "raise",
) -> CheckReport:
    """Run ``checks`` at ``level`` on ``subject`` and collect a :class:`CheckReport`."""
    validate_level(level)
    if on_fail not in ("raise", "report"):
        raise ConfigError(f"on_fail must be 'raise' or 'report', not {on_fail!r}.")
    expected = validate_expected(expected_failed_checks, [c.name for c in checks], item)
    report = CheckReport(suite_version=SUITE_VERSION)
    for check in checks:
        if not check.runs_at(level):
            continue
        status, message, seconds = run_one(check, subject)
        reason = expected.get(check.name)
        if reason is not None:
            if status == "failed":
                status, message = "xfail", f"expected failure: {reason} ({message})"
            elif status == "passed":
                status, message = "xpass", f"expected to fail ({reason}) but passed; remove it from expected_failed_checks"
        report.results.append(CheckResult(item, check.name, status, message, round(seconds, 4), kind, plugin))
    if on_fail == "raise":
        report.raise_if_failed()
    return report


def fail(condition: bool, message: str) -> None:
    """Raise :class:`CheckFailure` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailure(message)
