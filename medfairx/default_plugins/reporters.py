"""Built-in reporters: the HTML leaderboard and the CSV export (lazy targets)."""

from __future__ import annotations

from medfairx.hookspecs import hookimpl
from medfairx.specs import Register, ReporterSpec


@hookimpl
def register_reporters(register: Register) -> None:
    """Register the ``html`` and ``csv`` reporters."""
    register(
        ReporterSpec(
            "html",
            "medfairx.report.leaderboard:html_reporter",
            formats=("html", "svg", "csv", "json"),
            summary="HTML leaderboard: rankings, Friedman/Nemenyi CD diagrams, per-group pages.",
        )
    )
    register(
        ReporterSpec(
            "csv",
            "medfairx.report.leaderboard:csv_reporter",
            formats=("csv",),
            summary="results.csv (and failures.csv) in the long results-table format.",
        )
    )
