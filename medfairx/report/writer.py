"""The report of a run store: score it, then run every registered reporter on the results.

:func:`write_report` is what ``medfairx report`` (and ``medfairx bench`` at the end of a
sweep) calls: it scores the store with every registered metric and selection strategy
(:func:`medfairx.metrics.evaluate.evaluate_runs`), then hands the results table to every
registered reporter (``html``, ``csv``, and any a plugin adds). ``metrics``,
``strategies`` and ``reporters`` narrow each registry with fnmatch patterns.
"""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from medfairx.errors import ConfigError

NO_MATCH = ("--{option} {pattern!r} matches no registered {kind}; registered: {names}. "
            "See `medfairx list {listing}`.")


def method_info(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Method name → summary, reference, tags and plugin version, from run records."""
    info: dict[str, dict[str, Any]] = {}
    origins: dict[str, set[tuple[str, str]]] = {}
    for r in records:
        versions = r.get("versions") or {}
        origins.setdefault(r["method"], set()).add((str(versions.get("plugin") or "?"), str(versions.get("plugin_version") or "")))
        info.setdefault(
            r["method"],
            {
                "summary": r.get("method_summary", ""),
                "reference": r.get("method_reference", ""),
                "tags": r.get("method_tags", {}),
            },
        )
    for name, found in origins.items():  # the distribution and version every run's method came from
        (dist, version), *others = sorted(found)
        if others:  # runs of one method name from several plugins: show them all
            dist, version = "; ".join(f"{d} {v}".strip() for d, v in sorted(found)) + " (several plugins)", ""
        info[name].update(dist=dist, version=version)
    return info


def provenance(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Versions, dataset revisions, seeds and devices behind a leaderboard."""
    from medfairx.plugins import get_host
    from medfairx.version import __version__

    host = get_host()
    return {
        "medfairx": __version__,
        "plugins": sorted({f"{p.dist}=={p.version}" for p in host.plugins.values() if p.dist}),
        "datasets": sorted({f"{r['dataset']}@{r.get('dataset_revision', '')}" for r in records}),
        "split_hashes": sorted({f"{r['dataset']}:{r.get('split_hash', '')}" for r in records}),
        "seeds": sorted({r["seed"] for r in records}),
        "devices": sorted({str(r.get("device")) for r in records}),
        "runs": len(records),
        **_devices_by_method(records),
    }


def _devices_by_method(records: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"devices_by_method": {method: {device: n_runs}}}`` when runs used more than one device."""
    if len({str(r.get("device")) for r in records}) < 2:
        return {}
    out: dict[str, dict[str, int]] = {}
    for r in records:
        per = out.setdefault(str(r.get("method")), {})
        per[str(r.get("device"))] = per.get(str(r.get("device")), 0) + 1
    return {"devices_by_method": {m: dict(sorted(d.items())) for m, d in sorted(out.items())}}


def write_cards(records: list[dict[str, Any]], out_dir: Path, *, suite: str, stores: Sequence[Path],
                echo: Callable[[str], None] = print) -> list[tuple[str, str]]:
    """Data card pages of the datasets in ``records``, from the cards the ``stores`` recorded; never raises.

    Returns:
        ``(dataset, file name)`` per page written, for the index links.
    """
    try:
        from medfairx.report.datacards import write_data_cards
        from medfairx.store import read_data_cards

        names = sorted({str(r["dataset"]) for r in records if r.get("dataset")})
        recorded = {d: {"revisions": {r.get("dataset_revision") for r in records if r.get("dataset") == d},
                        "split_hashes": {r.get("split_hash") for r in records if r.get("dataset") == d}}
                    for d in names}
        pages = write_data_cards(None, names, out_dir, stored=read_data_cards(stores), suite=suite, recorded=recorded)
        return [(d, p.name) for d, p in zip(names, pages, strict=False)]
    except Exception as exc:  # noqa: BLE001 - data cards are extra; the leaderboard must still be written
        echo(f"warning: data cards not written: {type(exc).__name__}: {exc}")
        return []


def match_names(names: Sequence[str], patterns: Sequence[str] | None, *, option: str, kind: str,
                listing: str) -> list[str]:
    """The ``names`` (kept in their order) that match any fnmatch pattern; all of them without patterns.

    Raises:
        ConfigError: a pattern matches none of ``names``.
    """
    if not patterns:
        return list(names)
    for pattern in patterns:
        if not fnmatch.filter(names, pattern):
            raise ConfigError(NO_MATCH.format(option=option, pattern=pattern, kind=kind,
                                              names=", ".join(names) or "none", listing=listing))
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def call_reporter(fn: Callable[..., Any], results: Any, out_dir: Path, **context: Any) -> list[Path]:
    """Call a reporter target with the context keywords it accepts (all of them if it takes ``**kwargs``)."""
    params = inspect.signature(fn).parameters.values()
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        names = {p.name for p in params}
        context = {k: v for k, v in context.items() if k in names}
    return list(fn(results, out_dir, **context) or [])


def write_report(runs_dir: Path | Sequence[Path], out_dir: Path, *, suite: str | None = None,
                 echo: Callable[[str], None] = print, n_boot: int = 1000, metrics: Sequence[str] | None = None,
                 strategies: Sequence[str] | None = None, reporters: Sequence[str] | None = None,
                 include: Sequence[Path] = ()) -> Path:
    """Score a run store (or several, merged) and run the registered reporters on it.

    Args:
        runs_dir: a suite folder of the run store (``runs/<suite>``), or several to merge
            (:func:`medfairx.report.merge.gather`).
        out_dir: the report folder (``leaderboards/<suite>``).
        suite: suite name on the pages (default: the runs' suite, else the folder name).
        echo: where warnings go.
        n_boot: bootstrap resamples for the CIs.
        metrics: fnmatch patterns of registered metrics to score (default: all).
        strategies: fnmatch patterns of registered selection strategies (default: all).
        reporters: fnmatch patterns of registered reporters to run (default: all).
        include: bundles written by ``medfairx export``; each valid one adds its rows, marked
            ``submitted`` (a ``source`` column), and a refused one is listed with its reason.

    Returns:
        ``out_dir/index.html`` when a reporter wrote it, else ``out_dir``.

    Raises:
        ConfigError: the store has no runs, a pattern matches nothing registered, or the
            stores disagree on a dataset's revision or split, or on a run's contents.
    """
    from medfairx.metrics.evaluate import (
        collect_failures,
        evaluate_runs,
        registered_metrics,
        registered_strategies,
    )
    from medfairx.plugins import get_host
    from medfairx.report.leaderboard import write_root_index
    from medfairx.report.merge import gather

    metric_names = match_names(registered_metrics(), metrics, option="metrics", kind="metric", listing="metrics")
    strategy_names = match_names(registered_strategies(), strategies, option="strategies",
                                 kind="selection strategy", listing="selection_strategies")
    registry = get_host().registry("reporters")
    reporter_names = match_names(registry.names(), reporters, option="reporters", kind="reporter", listing="reporters")
    stores = [Path(runs_dir)] if isinstance(runs_dir, (str, Path)) else [Path(r) for r in runs_dir]
    board = gather(stores, include, echo=echo)
    records = board.store_records
    if not records:
        where = ", ".join(map(str, stores))
        raise ConfigError(f"No runs found in {where}. Run `medfairx bench` first, or point at runs/<suite>.")
    suite = suite or records[0].get("suite") or stores[0].name
    results = board.mark(evaluate_runs(board.runs, n_boot=n_boot, metrics=None if metrics is None else metric_names,
                                       strategies=strategy_names))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    methods = method_info(board.records)
    if board.submissions:  # a badge beside every method: where its rows come from
        for name, info in methods.items():
            info["source"] = board.sources.get(name, "")
    context = {"suite": suite, "failures": collect_failures(board.runs), "methods": methods,
               "provenance": {**provenance(board.records), **board.provenance()}, "submissions": board.submissions,
               "data_cards": write_cards(records, out_dir, suite=suite, stores=stores, echo=echo)}
    from medfairx.report.search import SEARCH_PAGE, write_search_page
    from medfairx.runner.search import read_selection

    searched = next((s for s in stores if read_selection(s) is not None), None)
    context["search_page"] = SEARCH_PAGE if searched is not None else None
    from medfairx.report.external import (
        EXTERNAL_PAGE,
        external_results,
        write_external_report,
    )

    external = external_results(board.runs, n_boot=n_boot, metrics=None if metrics is None else metric_names)
    context["external_page"] = EXTERNAL_PAGE if len(external) else None
    from medfairx.report.protocols import analysis_context, write_analysis_pages

    analyses = analysis_context(board.runs, results, n_boot=n_boot, echo=echo)  # attribute encoding, protocols
    context.update(encoding=analyses["encoding"], encoding_page=analyses["encoding_page"],
                   protocols_page=analyses["protocols_page"])
    for name in reporter_names:
        call_reporter(registry.get(name).load(), results, out_dir, **context)
    write_analysis_pages(out_dir, suite=suite, encoding=analyses["encoding"], comparison=analyses["comparison"])
    write_external_report(external, results, out_dir, suite=suite)
    if searched is not None:
        write_search_page(searched, out_dir, results, suite=suite)
    write_root_index(out_dir.parent)
    index = out_dir / "index.html"
    return index if index.is_file() else out_dir


__all__ = ["call_reporter", "match_names", "method_info", "provenance", "write_cards", "write_report"]
