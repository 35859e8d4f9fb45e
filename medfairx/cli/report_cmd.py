"""``medfairx report RUNS -o OUT``: leaderboard (HTML, CSV, CD diagrams) from a run store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


def method_info(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Method name → summary, reference, tags and plugin version, from run records."""
    info: dict[str, dict[str, Any]] = {}
    for r in records:
        info.setdefault(
            r["method"],
            {
                "summary": r.get("method_summary", ""),
                "reference": r.get("method_reference", ""),
                "tags": r.get("method_tags", {}),
                "plugin": (r.get("versions") or {}).get("plugin"),
                "plugin_version": (r.get("versions") or {}).get("plugin_version"),
            },
        )
    return info


def provenance(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Versions, dataset revisions, seeds and devices behind a leaderboard."""
    from medfairx import __version__
    from medfairx.plugins import get_host

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


def write_cards(records: list[dict[str, Any]], out_dir: Path, *, suite: str,
                echo: Callable[[str], None] = print) -> list[tuple[str, str]]:
    """Data card pages of the datasets in ``records`` (current catalogue); never raises.

    Returns:
        ``(dataset, file name)`` per page written, for the index links.
    """
    try:
        from medfairx.report.datacards import write_data_cards

        names = sorted({str(r["dataset"]) for r in records if r.get("dataset")})
        recorded = {d: {"revisions": {r.get("dataset_revision") for r in records if r.get("dataset") == d},
                        "split_hashes": {r.get("split_hash") for r in records if r.get("dataset") == d}}
                    for d in names}
        pages = write_data_cards(None, names, out_dir, suite=suite, recorded=recorded)
        return [(d, p.name) for d, p in zip(names, pages)]
    except Exception as exc:  # noqa: BLE001 - data cards are extra; the leaderboard must still be written
        echo(f"warning: data cards not written: {type(exc).__name__}: {exc}")
        return []


def write_report(runs_dir: Path, out_dir: Path, *, suite: str | None = None, echo: Callable[[str], None] = print,
                 n_boot: int = 1000) -> Path:
    """Evaluate a run store and write its leaderboard; returns the index page path."""
    from medfairx.metrics.evaluate import collect_failures, evaluate_runs
    from medfairx.report.leaderboard import build_leaderboard, write_root_index
    from medfairx.runner.store import RunStore

    records = list(RunStore(runs_dir).records())
    if not records:
        from medfairx.errors import ConfigError

        raise ConfigError(f"No runs found in {runs_dir}. Run `medfairx bench` first, or point at runs/<suite>.")
    suite = suite or records[0].get("suite") or runs_dir.name
    results = evaluate_runs(runs_dir, n_boot=n_boot)
    failures = collect_failures(runs_dir)
    data_cards = write_cards(records, out_dir, suite=suite, echo=echo)
    build_leaderboard(
        results,
        out_dir,
        suite=suite,
        failures=failures,
        methods=method_info(records),
        provenance=provenance(records),
        data_cards=data_cards,
    )
    write_root_index(out_dir.parent)
    return out_dir / "index.html"


@click.command("report")
@click.argument("runs_dir", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False), default=None, help="Output folder (default: leaderboards/<suite>).")
@click.option("--n-boot", type=int, default=1000, show_default=True, help="Bootstrap resamples for CIs.")
def report(runs_dir: str, out_dir: str | None, n_boot: int) -> None:
    """Write the leaderboard of a run store (runs/<suite>)."""
    runs = Path(runs_dir)
    target = Path(out_dir) if out_dir else Path("leaderboards") / runs.name
    index = write_report(runs, target, suite=runs.name, echo=click.echo, n_boot=n_boot)
    click.echo(f"leaderboard: {index}")
