"""`medfairx bench` options that take several values in a row, parsed through click's public API."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from medfairx.cli.bench_cmd import ManyValuesCommand


@click.command(cls=ManyValuesCommand)
@click.option("--methods", multiple=True)
@click.option("--seeds", multiple=True, type=int)
@click.option("--suite")
def probe(methods: tuple[str, ...], seeds: tuple[int, ...], suite: str | None) -> None:
    click.echo(f"{list(methods)} {list(seeds)} {suite}")


@pytest.mark.parametrize(("argv", "expected"), [
    (["--methods", "erm", "groupdro", "--seeds", "0", "1", "--suite", "x"], "['erm', 'groupdro'] [0, 1] x"),
    (["--methods=erm", "groupdro"], "['erm', 'groupdro'] [] None"),
    (["--suite", "s", "--methods", "a", "--methods", "b"], "['a', 'b'] [] s"),
    (["--methods", "a", "--", "b"], None),  # after -- nothing is rewritten: 'b' is an extra argument
    (["--seeds", "3", "--methods", "-x", "y"], "['-x', 'y'] [3] None"),  # a first value is taken as it is
])
def test_several_values_in_a_row_are_repeated_options(argv: list[str], expected: str | None) -> None:
    result = CliRunner().invoke(probe, argv)
    if expected is None:
        assert result.exit_code == 2 and "unexpected extra argument" in result.output.lower()
    else:
        assert result.exit_code == 0, result.output
        assert result.output.strip() == expected


def test_an_option_without_a_value_is_still_an_error() -> None:
    result = CliRunner().invoke(probe, ["--suite", "s", "--methods"])
    assert result.exit_code == 2 and "requires an argument" in result.output
