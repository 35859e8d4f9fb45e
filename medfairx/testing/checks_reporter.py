"""Conformance checks for reporters: ``render(results, out_dir, **kw) -> list[Path]``.

The reporter renders a synthetic results table (:func:`~medfairx.testing.toy.make_toy_results`)
once, into a temporary directory; every check then inspects that rendering. One method
is called ``<script>…</script>``: it must come out escaped in every HTML/SVG file.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from medfairx.errors import ConfigError
from medfairx.specs import ReporterSpec
from medfairx.testing._run import Check, OnFail, fail, run_checks
from medfairx.testing.report import CheckFailure, CheckReport, SkipCheck
from medfairx.testing.toy import SCRIPT_NAME, make_toy_results

HTML_SUFFIXES: tuple[str, ...] = (".html", ".htm", ".xhtml", ".svg")


@dataclass
class ReporterSubject:
    """A reporter under test and its (lazily made) rendering of the toy results."""

    spec: ReporterSpec
    results: pd.DataFrame = field(default_factory=make_toy_results)
    _out: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How messages name the reporter."""
        return f"reporter {self.spec.name!r}"

    def __str__(self) -> str:
        return self.label

    def rendering(self) -> tuple[Path, list[Path], pd.DataFrame]:
        """``(out_dir, returned paths, the results table after the call)``; renders once."""
        if not self._out:
            out_dir = Path(tempfile.mkdtemp(prefix="medfairx-check-report-"))
            given = self.results.copy(deep=True)
            try:
                paths = self.spec.load()(given, out_dir)
            except Exception as exc:  # noqa: BLE001 - the reporter's error is what the checks report
                shutil.rmtree(out_dir, ignore_errors=True)
                self._out["error"] = f"{type(exc).__name__}: {exc}"
            else:
                self._out.update(out_dir=out_dir, paths=paths, after=given)
        if "error" in self._out:
            raise CheckFailure(f"{self.label}: rendering a synthetic results table raised {self._out['error']}.")
        return self._out["out_dir"], self._out["paths"], self._out["after"]

    def cleanup(self) -> None:
        """Remove the temporary output directory."""
        if "out_dir" in self._out:
            shutil.rmtree(self._out["out_dir"], ignore_errors=True)


def reporter_subject(spec: ReporterSpec | str) -> ReporterSubject:
    """Resolve ``spec`` (or a registry name)."""
    if isinstance(spec, str):
        from medfairx.plugins import get_host

        spec = get_host().registry("reporters").get(spec)
    if not isinstance(spec, ReporterSpec):
        raise ConfigError(f"check_reporter needs a ReporterSpec or a registered name; got {spec!r}.")
    return ReporterSubject(spec)


def check_reporter_renders(s: ReporterSubject) -> None:
    """``render`` returns a non-empty list of existing, non-empty files inside ``out_dir``."""
    out_dir, paths, _ = s.rendering()
    fail(isinstance(paths, (list, tuple)), f"{s.label}: render returned {type(paths).__name__}; expected list[Path].")
    fail(len(paths) > 0, f"{s.label}: render returned no paths.")
    for p in paths:
        fail(isinstance(p, Path), f"{s.label}: render returned {p!r} ({type(p).__name__}); expected pathlib.Path objects.")
        fail(p.is_file(), f"{s.label}: render returned {p}, which is not an existing file.")
        fail(p.stat().st_size > 0, f"{s.label}: render wrote an empty file {p.name}.")
        fail(p.resolve().is_relative_to(out_dir.resolve()), f"{s.label}: render wrote {p} outside out_dir {out_dir}.")


def check_reporter_formats_declared(s: ReporterSubject) -> None:
    """Every format listed in ``ReporterSpec.formats`` is among the files written."""
    if not s.spec.formats:
        raise SkipCheck("skipped: the spec declares no formats")
    _, paths, _ = s.rendering()
    written = {Path(p).suffix.lstrip(".").lower() for p in paths}
    missing = [f for f in s.spec.formats if f.lower().lstrip(".") not in written]
    fail(not missing, f"{s.label}: declares formats {list(s.spec.formats)} but wrote no {missing} file (wrote {sorted(written)}).")


def check_reporter_escapes_html(s: ReporterSubject) -> None:
    """A method named ``<script>…</script>`` never appears unescaped in HTML or SVG output."""
    out_dir, _, _ = s.rendering()
    files = [p for p in out_dir.rglob("*") if p.is_file() and p.suffix.lower() in HTML_SUFFIXES]
    if not files:
        raise SkipCheck("skipped: no HTML or SVG output")
    for p in files:
        text = p.read_text(encoding="utf-8", errors="replace")
        fail(
            SCRIPT_NAME not in text,
            f"{s.label}: {p.name} contains the method name {SCRIPT_NAME!r} unescaped; escape user data "
            "(jinja2 autoescape, html.escape).",
        )


def check_reporter_input_not_mutated(s: ReporterSubject) -> None:
    """``render`` does not modify the results table it is given."""
    _, _, after = s.rendering()
    try:
        pd.testing.assert_frame_equal(after, s.results)
    except AssertionError as exc:
        raise CheckFailure(f"{s.label}: render modified the results table in place ({str(exc).splitlines()[0]}).") from exc


REPORTER_CHECKS: tuple[Check, ...] = (
    Check("check_reporter_renders", check_reporter_renders),
    Check("check_reporter_formats_declared", check_reporter_formats_declared),
    Check("check_reporter_escapes_html", check_reporter_escapes_html),
    Check("check_reporter_input_not_mutated", check_reporter_input_not_mutated),
)
"""Reporter checks in run order."""


def check_reporter(
    spec: ReporterSpec | str,
    *,
    expected_failed_checks: dict[str, str] | None = None,
    on_fail: OnFail = "raise",
) -> CheckReport:
    """Run the reporter checks on a synthetic results table.

    Args:
        spec: the :class:`ReporterSpec` (or its registered name).
        expected_failed_checks: ``{check_name: reason}``.
        on_fail: ``"raise"`` or ``"report"``.
    """
    subject = reporter_subject(spec)
    try:
        return run_checks(
            subject, REPORTER_CHECKS, item=subject.spec.name, kind="reporters",
            expected_failed_checks=expected_failed_checks, on_fail=on_fail,
        )
    finally:
        subject.cleanup()
