"""``medfairx export RUNS --method NAME -o FILE``: a method's runs packed into one bundle."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("export")
@click.argument("runs_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--method", required=True, help="The method whose finished runs are packed.")
@click.option("-o", "--out", "out_file", type=click.Path(dir_okay=False), default=None,
              help="Bundle file (default: <suite>-<method>.zip in the current folder).")
def export(runs_dir: str, method: str, out_file: str | None) -> None:
    """Pack a method's runs (run.json, predictions, epochs, provenance) into one zip bundle for `report --include`."""
    from medfairx.report.bundles import export_bundle

    path = export_bundle(Path(runs_dir), method, Path(out_file) if out_file else None)
    click.echo(f"bundle: {path}")
