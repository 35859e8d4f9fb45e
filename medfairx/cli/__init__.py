"""The ``medfairx`` command line. One module per command; plugins add commands through
the ``register_commands`` hook. ``--help``, ``list`` and ``plugins`` never import torch.
"""

from __future__ import annotations

import sys

import click

from medfairx.errors import MedfairxError
from medfairx.version import __version__


class _Group(click.Group):
    """A group that turns MedfairxError into a clean one-paragraph message (exit 2)."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except MedfairxError as exc:
            click.secho(f"Error: {exc}", fg="red", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="medfairx")
def cli() -> None:
    """medfairx: fairness benchmarks for medical imaging, extensible through plugins."""
    from medfairx.plugins import get_host

    host = get_host()
    for plugin, message in host.errors:
        click.secho(
            f"warning: plugin {plugin!r} {message.splitlines()[0]}"
            f"  (to silence: MEDFAIRX_DISABLE_PLUGINS={plugin})",
            fg="yellow",
            err=True,
        )
    for message in host.conflicts:
        click.secho(f"warning: {message}", fg="yellow", err=True)


def _format_warning(message: Warning | str, category: type[Warning], *_: object, **__: object) -> str:
    """CLI warnings as one readable line: ``warning (Category): message``."""
    return f"warning ({category.__name__}): {message}\n"


def _add_commands() -> None:
    from medfairx.cli import (
        bench_cmd,
        cka_cmd,
        curve_cmd,
        datasets_cmd,
        list_cmd,
        plugins_cmd,
        report_cmd,
        validate_cmd,
    )

    cli.add_command(plugins_cmd.plugins)
    cli.add_command(list_cmd.list_)
    cli.add_command(validate_cmd.validate)
    cli.add_command(bench_cmd.bench)
    cli.add_command(report_cmd.report)
    cli.add_command(curve_cmd.curve)
    cli.add_command(cka_cmd.cka)
    cli.add_command(datasets_cmd.datasets)
    from medfairx.cli import embed_cmd

    cli.add_command(embed_cmd.embed)
    from medfairx.cli import audit_cmd

    cli.add_command(audit_cmd.audit)
    from medfairx.cli import export_cmd

    cli.add_command(export_cmd.export)
    try:
        from medfairx.cli.check import check
    except ImportError:  # pragma: no cover - the kit is part of the core distribution
        pass
    else:
        cli.add_command(check)
    from medfairx.plugins import get_host

    host = get_host()
    for name, impl_plugin in host.modules().items():
        fn = getattr(impl_plugin, "register_commands", None)
        if fn is None or host.pm.parse_hookimpl_opts(impl_plugin, "register_commands") is None:
            continue
        try:
            fn(cli=cli)
        except Exception as exc:  # noqa: BLE001 - a plugin's broken command must not break the CLI
            host.plugins[name].errors.append(f"register_commands raised {type(exc).__name__}: {exc}")


_add_commands()


def main() -> None:
    """Console-script entry point."""
    import warnings

    warnings.formatwarning = _format_warning
    cli(prog_name="medfairx")


if __name__ == "__main__":  # pragma: no cover
    main()
