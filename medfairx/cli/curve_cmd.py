"""``medfairx curve``: the Pareto fairness criterion learning-curve experiment (docs/methods.md §4.1)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click


@click.command("curve")
@click.option("--dataset", required=True, help="Catalogue dataset (classification).")
@click.option("--grouping", required=True, help="Grouping of the dataset; its largest group is varied.")
@click.option("--methods", multiple=True, required=True, help="Registered methods (repeat or comma-separate).")
@click.option("--suite", default=None, help="Suite whose recipe/backbone/device to use (default: the first listing the dataset).")
@click.option("--config", type=click.Path(dir_okay=False), default=None,
              help="datasets.yaml (default: ./datasets.yaml or the embedded catalogue).")
@click.option("--fractions", default="0,0.1,0.25,0.5,0.75,1.0", show_default=True,
              help="Dominant-group training fractions (nested subsets).")
@click.option("--seeds", type=int, default=3, show_default=True, help="Number of seeds (0..N-1).")
@click.option("--epochs", type=int, default=None, help="Override the recipe's epochs.")
@click.option("--backbone", default=None, help="Override the suite's classification backbone (e.g. tiny_cnn).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None, help="Device (default: the suite's).")
@click.option("--dominant", default=None, help="The varied group (default: the largest training group).")
@click.option("--param", "param_items", multiple=True, metavar="METHOD.KEY=VALUE",
              help="Method hyper-parameter (YAML value), e.g. qpnet.less_prevalent=[female] (repeatable).")
@click.option("--params", "params_mode", type=click.Choice(["default", "test"]), default="default", show_default=True,
              help="Papers' hyper-parameters or tiny test_params().")
@click.option("--n-boot", type=int, default=1000, show_default=True, help="Bootstrap replicates per point.")
@click.option("--tolerance", type=click.Choice(["max", "sum"]), default="max", show_default=True,
              help="A drop violates when above the larger (max) or the sum of the two CI half-widths.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Run store (default: runs/curve-<dataset>-<grouping>).")
@click.option("-o", "--output", "report_dir", type=click.Path(file_okay=False), default=None,
              help="HTML/SVG/CSV folder (default: leaderboards/<suite>/curve-<dataset>-<grouping>).")
@click.option("-v", "--verbose", is_flag=True, help="Show per-epoch progress.")
def curve(dataset: str, grouping: str, methods: tuple[str, ...], suite: str | None, config: str | None,
          fractions: str, seeds: int, epochs: int | None, backbone: str | None, device: str | None,
          dominant: str | None, param_items: tuple[str, ...], params_mode: str, n_boot: int, tolerance: str,
          out: str | None, report_dir: str | None, verbose: bool) -> None:
    """Train every method at nested fractions of the dominant group's training set and test
    whether every group's AUC is non-decreasing (the Pareto fairness criterion).

    Finished points are reused; the verdicts go to an HTML page with one SVG per method.
    """
    from medfairx.analysis.curve import CurveOptions, run_curve
    from medfairx.config import load_catalogue
    from medfairx.errors import ConfigError
    from medfairx.plugins import get_host

    try:
        fr = [float(x) for x in fractions.replace(",", " ").split()]
    except ValueError:
        raise ConfigError(f"--fractions must be numbers, e.g. 0,0.25,0.5,1; got {fractions!r}.") from None
    opts = CurveOptions(
        dataset=dataset, grouping=grouping, methods=[m for item in methods for m in item.replace(",", " ").split()],
        suite=suite, fractions=fr, seeds=list(range(seeds)), epochs=epochs, backbone=backbone, device=device,
        params=parse_method_params(param_items), params_mode=params_mode, dominant=dominant,
        out=Path(out) if out else None, report_dir=Path(report_dir) if report_dir else None, n_boot=n_boot,
        tolerance=tolerance,
    )
    result = run_curve(load_catalogue(config), opts, get_host(), click.echo, verbose=verbose)
    click.echo(f"done in {result['seconds']:.0f}s: {len(result['ran'])} ran, {len(result['reused'])} reused, "
               f"{len(result['failed'])} failed")
    for row in result["verdicts"].itertuples():
        click.echo(f"  {row.method:12s} {row.group:12s} {row.verdict:15s} V={row.V:.4f}")
    click.echo(f"report: {result['files'][0]}")
    if result["failed"]:
        sys.exit(1)


def parse_method_params(items: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``("qpnet.sigma=0.1", …)`` → ``{"qpnet": {"sigma": 0.1}}`` (values parsed as YAML).

    Raises:
        ConfigError: an item without ``METHOD.KEY=VALUE``.
    """
    import yaml

    from medfairx.errors import ConfigError

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        method, dot, name = key.strip().partition(".")
        if not sep or not dot or not method or not name:
            raise ConfigError(f"--param {item!r} must look like METHOD.KEY=VALUE (e.g. qpnet.sigma=0.1).")
        out.setdefault(method, {})[name] = yaml.safe_load(value)
    return out
