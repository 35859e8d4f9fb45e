"""``medfairx report RUNS [RUNS ...] [--include BUNDLE] -o OUT``: leaderboard (HTML, CSV, CD diagrams) from run stores."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from medfairx.report.writer import method_info, provenance, write_cards, write_report

__all__ = ["method_info", "provenance", "report", "report_filters", "split_patterns", "write_cards", "write_report"]


def split_patterns(values: tuple[str, ...]) -> list[str] | None:
    """Repeated and comma-separated option values as one list (``None`` when none given)."""
    names = [v.strip() for item in values for v in item.split(",") if v.strip()]
    return names or None


def report_filters(f: Callable[..., Any]) -> Callable[..., Any]:
    """The ``--metrics``, ``--strategies`` and ``--reporters`` options (fnmatch patterns over the registries)."""
    for name, listing in (("reporters", "reporters"), ("strategies", "selection_strategies"), ("metrics", "metrics")):
        f = click.option(f"--{name}", f"{name}_filter", multiple=True, metavar="PATTERN",
                         help=f"Only these registered {name} (fnmatch patterns, repeat or comma-separate; "
                              f"default: all; see `medfairx list {listing}`).")(f)
    return f


@click.command("report")
@click.argument("runs_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Output folder (default: leaderboards/<suite>).")
@click.option("--n-boot", type=int, default=1000, show_default=True, help="Bootstrap resamples for CIs.")
@click.option("--include", "include", multiple=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="A bundle written by `medfairx export` (repeatable): its rows are checked against the board "
                   "and shown marked 'submitted'; a bundle that fails a check is listed and left out.")
@report_filters
def report(runs_dirs: tuple[str, ...], out_dir: str | None, n_boot: int, include: tuple[str, ...],
           metrics_filter: tuple[str, ...], strategies_filter: tuple[str, ...], reporters_filter: tuple[str, ...]) -> None:
    """Write the leaderboard of one run store (runs/<suite>), or of several merged, with every registered reporter."""
    stores = [Path(r) for r in runs_dirs]
    target = Path(out_dir) if out_dir else Path("leaderboards") / stores[0].name
    suite = " + ".join(dict.fromkeys(s.name for s in stores))  # a merged board is named after every store
    index = write_report(stores, target, suite=suite, echo=click.echo, n_boot=n_boot,
                         metrics=split_patterns(metrics_filter), strategies=split_patterns(strategies_filter),
                         reporters=split_patterns(reporters_filter), include=[Path(f) for f in include])
    click.echo(f"leaderboard: {index}")
