"""``medfairx plugins``: what is installed, what it registered, and what failed."""

from __future__ import annotations

import json

import click


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--all", "show_all", is_flag=True, help="Include medfairx's built-in plugins.")
@click.option("--requirements", is_flag=True, help="Print name==version lines (for provenance).")
def plugins(as_json: bool, show_all: bool, requirements: bool) -> None:
    """List installed plugins, their hooks, registered items and load errors."""
    from medfairx.plugins import get_host

    infos = [p for p in get_host().plugins.values() if show_all or not p.builtin]
    if requirements:
        for dist in sorted({(p.dist, p.version) for p in infos if p.dist}):
            click.echo(f"{dist[0]}=={dist[1]}")
        return
    if as_json:
        click.echo(json.dumps([p.to_dict() for p in infos], indent=2))
        return
    if not infos:
        click.echo("No plugins installed (use --all to see built-ins).")
    for p in infos:
        status = "ERROR" if p.errors else "CONFLICT" if p.conflicts else "ok"
        click.echo(f"{p.name}  [{p.dist or p.module} {p.version or ''}]  {status}")
        if p.hooks:
            click.echo(f"  hooks: {', '.join(p.hooks)}")
        for kind, names in sorted(p.registered.items()):
            click.echo(f"  {kind}: {', '.join(names)}")
        for err in p.errors:
            click.secho(f"  error: {err}", fg="red")
        for conflict in p.conflicts:
            click.secho(f"  conflict: {conflict}", fg="yellow")
