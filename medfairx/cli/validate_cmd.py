"""``medfairx validate [datasets.yaml] [--deep]``."""

from __future__ import annotations

import sys

import click


@click.command("validate")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@click.option("--deep", is_flag=True, help="Also read every dataset's files: rows, missing images, group sizes.")
def validate(path: str | None, deep: bool) -> None:
    """Check a datasets.yaml against the schema (and, with --deep, the data)."""
    from medfairx.data.dataset import validate_catalogue

    problems = validate_catalogue(path, deep=deep)
    if problems:
        for p in problems:
            click.secho(p, fg="red", err=True)
        sys.exit(1)
    click.echo(f"{path or 'datasets.yaml'}: OK")
