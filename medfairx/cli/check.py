"""``medfairx check PLUGIN|--all``: run the conformance kit and print a compliance table."""

from __future__ import annotations

import sys

import click


@click.command("check")
@click.argument("plugin", required=False)
@click.option("--all", "check_all", is_flag=True, help="Check every loaded plugin, built-ins included.")
@click.option("--level", type=click.Choice(["api", "full"]), default="api", show_default=True,
              help="'full' adds seed determinism, the state-dict round trip and 3D method checks.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "markdown"]), default="table",
              show_default=True, help="Output format of the compliance table.")
@click.option("--config", type=click.Path(dir_okay=False), default=None,
              help="datasets.yaml: with it, dataset adapters' data are loaded and checked too.")
def check(plugin: str | None, check_all: bool, level: str, fmt: str, config: str | None) -> None:
    """Run the conformance kit on PLUGIN (an entry-point or distribution name, as
    `medfairx plugins` shows it) or on every plugin (--all).

    Prints one row per (plugin, item, check) and exits with status 1 if any check failed.
    """
    from medfairx.errors import ConfigError
    from medfairx.testing import check_all_plugins, check_plugin

    if check_all == bool(plugin):
        raise ConfigError("Give exactly one of PLUGIN or --all (see `medfairx plugins --all` for names).")
    if check_all:
        report = check_all_plugins(level=level, catalogue=config)
    else:
        assert plugin is not None
        report = check_plugin(plugin, level=level, catalogue=config)
    if fmt == "json":
        click.echo(report.to_json(indent=2))
    elif fmt == "markdown":
        click.echo(report.to_markdown(), nl=False)
    else:
        click.echo(report.to_text())
    if not report.passed:
        if fmt == "table":
            click.secho(f"{len(report.failures)} check(s) failed (suite {report.suite_version}).", fg="red", err=True)
        sys.exit(1)
