"""``medfairx bench``: run (or resume) a suite and write its leaderboard."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from medfairx.cli.report_cmd import report_filters, split_patterns

#: Options that take several values in a row (``--methods erm groupdro``) as well as repeated.
MANY_VALUES = ("--methods", "--datasets", "--groupings", "--seeds")


class ManyValuesCommand(click.Command):
    """A command whose :data:`MANY_VALUES` options swallow every following value up to the next
    option: ``--methods erm groupdro`` is read as ``--methods erm --methods groupdro``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Spell the several values out as repeated options, then let click parse them."""
        out: list[str] = []
        taking: str | None = None  # the option whose values the following words are
        first = False  # the next word is that option's own value, taken as it is ("--seeds -1")
        for i, arg in enumerate(args):
            if arg == "--":
                out.extend(args[i:])
                break
            if first:
                out.append(arg)
                first = False
                continue
            if taking is not None and not arg.startswith("-"):
                out.extend([taking, arg])
                continue
            name = arg.split("=", 1)[0]
            taking = name if name in MANY_VALUES else None
            first = taking is not None and "=" not in arg
            out.append(arg)
        return super().parse_args(ctx, out)


@click.command("bench", cls=ManyValuesCommand)
@click.option("--suite", default="default", show_default=True, help="Suite from datasets.yaml.")
@click.option("--config", type=click.Path(dir_okay=False), default=None,
              help="datasets.yaml (default: ./datasets.yaml or the embedded catalogue).")
@click.option("--methods", multiple=True, help="Only these methods (repeat or give several).")
@click.option("--datasets", multiple=True, help="Only these datasets of the suite.")
@click.option("--groupings", multiple=True, help="Only these groupings.")
@click.option("--seeds", multiple=True, type=click.IntRange(min=0), help="Seeds, 0 or more (default: the suite's).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None, help="Device (default: the suite's, usually auto).")
@click.option("--params", type=click.Choice(["default", "test"]), default=None, help="Papers' hyper-parameters or tiny test_params().")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Override the recipe's epochs (at least 1).")
@click.option("--out", type=click.Path(file_okay=False), default="runs", show_default=True, help="Run store.")
@click.option("--report-dir", type=click.Path(file_okay=False), default=None, help="Leaderboard folder (default: leaderboards/<suite>).")
@click.option("--no-report", is_flag=True, help="Do not write the leaderboard.")
@click.option("--executor", default="local", show_default=True, help="Registered executor (see `medfairx list executors`).")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Runs at once (local executor: one process each; default: the suite's).")
@click.option("--devices", default="", help="Comma-separated devices for --jobs, e.g. 0,1 or cpu,cpu.")
@click.option("--executor-option", "executor_options", multiple=True, metavar="KEY=VALUE",
              help="Executor option, e.g. partition=gpu, gpus_per_job=1, wait=false (repeatable).")
@click.option("--save-state", is_flag=True, help="Also save each trained model as runs/<suite>/<run_id>/state.pt (for `medfairx cka`).")
@click.option("--precision", type=click.Choice(["auto", "fp32"]), default="auto", show_default=True,
              help="auto: bf16 (else fp16) mixed precision on CUDA, fp32 on CPU; fp32: never mixed precision.")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model (CUDA; off by default).")
@click.option("--trials", type=click.IntRange(min=1), default=None,
              help="Hyper-parameter search: configurations per method (default: the suite's `search.trials`).")
@click.option("--sampler", type=click.Choice(["random", "tpe", "grid"]), default=None,
              help="Search sampler (default: the suite's `search.sampler`, else tpe).")
@click.option("-v", "--verbose", is_flag=True, help="Show per-epoch progress.")
@click.option("-q", "--quiet", is_flag=True, help="Print only failures, warnings and the final summary.")
@report_filters
@click.pass_context
def bench(ctx: click.Context, suite: str, config: str | None, methods: tuple[str, ...], datasets: tuple[str, ...],
          groupings: tuple[str, ...], seeds: tuple[int, ...], device: str | None, params: str | None,
          epochs: int | None, out: str, report_dir: str | None, no_report: bool, executor: str, jobs: int | None,
          devices: str, executor_options: tuple[str, ...], save_state: bool, precision: str, compile_: bool,
          trials: int | None, sampler: str | None, verbose: bool,
          quiet: bool, metrics_filter: tuple[str, ...], strategies_filter: tuple[str, ...],
          reporters_filter: tuple[str, ...]) -> None:
    """Train every method on every grouping of a suite; finished runs are skipped."""
    from medfairx.config import load_catalogue
    from medfairx.plugins import get_host
    from medfairx.runner.bench import BenchInterrupted, BenchOptions, run_bench
    from medfairx.runner.progress import make_display

    catalogue = load_catalogue(config)
    opts = BenchOptions(
        suite=suite,
        methods=_split(methods),
        datasets=_split(datasets),
        groupings=_split(groupings),
        seeds=list(seeds),
        device=device,
        out=Path(out),
        params=params,
        epochs=epochs,
        executor=executor,
        jobs=jobs,
        devices=_split((devices,)),
        executor_options=_parse_options(executor_options),
        save_state=save_state,
        amp=precision == "auto",
        compile=compile_,
        trials=trials,
        sampler=sampler,
    )
    try:
        with make_display(quiet=quiet) as display:  # live bar on a terminal, plain lines in pipes and CI
            result = run_bench(catalogue, opts, get_host(), display, verbose=verbose and not quiet)
    except KeyboardInterrupt as exc:  # Ctrl-C: one summary, no traceback, the shell's code for SIGINT
        summary = str(exc) if isinstance(exc, BenchInterrupted) else "interrupted before any run started."
        click.secho(f"{summary}\nTo resume: {_same_command()}", fg="yellow", err=True)
        sys.exit(130)
    click.echo(
        f"done in {result.seconds:.0f}s: {len(result.done)} ran, {len(result.skipped)} reused, "
        f"{len(result.failed)} failed, {len(result.pending)} pending"
    )
    budget = catalogue.suites[suite].time_budget_s
    if budget and result.done and result.seconds > budget:
        click.secho(f"warning: the sweep took {result.seconds:.0f}s, over the suite's time budget of {budget:.0f}s",
                    fg="yellow", err=True)
    if result.pending:
        click.echo(f"{len(result.pending)} runs submitted and still pending; run the same `medfairx bench` "
                   "again later to collect them (finished runs are never redone), then the leaderboard is written.")
        return
    if not no_report:
        from medfairx.cli.report_cmd import write_report

        target = Path(report_dir) if report_dir else Path("leaderboards") / suite
        index = write_report(Path(out) / suite, target, suite=suite, echo=click.echo,
                             metrics=split_patterns(metrics_filter), strategies=split_patterns(strategies_filter),
                             reporters=split_patterns(reporters_filter))
        click.echo(f"leaderboard: {index}")
    if result.failed:
        sys.exit(1)


def _same_command() -> str:
    """The command line that started this process, to resume an interrupted sweep."""
    import shlex

    return shlex.join(["medfairx", *sys.argv[1:]])


def _split(values: tuple[str, ...]) -> list[str]:
    return [v for item in values for v in item.replace(",", " ").split()]


def _parse_options(items: tuple[str, ...]) -> dict[str, object]:
    import yaml

    from medfairx.errors import ConfigError

    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--executor-option {item!r} must look like KEY=VALUE (e.g. partition=gpu).")
        out[key.strip()] = yaml.safe_load(value)
    return out
