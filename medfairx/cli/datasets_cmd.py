"""``medfairx datasets check NAME [--config datasets.yaml] [--json]``: what a dataset holds, before training."""

from __future__ import annotations

import json
import sys
from typing import Any

import click


def _table(header: list[str], rows: list[list[Any]], indent: str = "  ") -> list[str]:
    """Plain-text table: first column left-aligned, the others right-aligned."""
    cells = [list(map(str, header))] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return [indent + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
            for r in cells]


def format_description(card: dict[str, Any], info: dict[str, Any]) -> list[str]:
    """The lines ``datasets check`` prints for one description."""
    from medfairx.report.datacards import card_rows, facts, grouping_rows, split_names

    lines = [f"dataset {info.get('name', card.get('name', '?'))}"]
    lines += [f"  {k}: {v}" for k, v in card_rows(card, info) if k not in ("citation", "description")]
    lines += ["", "rows:"] + [f"  {k}: {v}" for k, v in facts(info)]
    splits = split_names(info)
    sizes = " · ".join(f"{s} {n}" for s, n in (info.get("splits") or {}).items())
    lines += ["", f"splits: {sizes}", f"  patient-disjoint: {'yes' if info.get('patient_disjoint') else 'NO'}"]
    overall = info.get("overall")
    if overall:
        prev = overall.get("prevalence")
        lines.append(f"  all samples: n {overall['n']}"
                     + (f", positives {overall['positives']}, prevalence {'—' if prev is None else f'{prev:.3f}'}"
                        if "positives" in overall else ""))
    for g in grouping_rows(info):
        dropped = ", ".join(f"{d['group']} ({d['n']})" for d in g["dropped"])
        extra = f"; dropped: {dropped}" if dropped else ""
        lines += ["", f"grouping {g['name']} (outside every group: {g['outside']}{extra})"]
        lines += _table(["group", "n", "positives", "prevalence", *splits],
                        [[r["group"], r["n"], r["positives"], r["prevalence"], *r["splits"]] for r in g["rows"]])
    if not info.get("groupings"):
        lines += ["", "no grouping defined"]
    if info.get("warnings"):
        lines += ["", "warnings while loading:"] + [f"  {w}" for w in info["warnings"]]
    return lines


@click.group("datasets")
def datasets() -> None:
    """Inspect catalogue datasets (no training, no pixels decoded)."""


@datasets.command("check")
@click.argument("name")
@click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
              help="Catalogue (default: $MEDFAIRX_CONFIG, ./datasets.yaml or the embedded one).")
@click.option("--json", "as_json", is_flag=True, help="Print describe_dataset's dict (and the card) as JSON.")
def check(name: str, config: str | None, as_json: bool) -> None:
    """Rows, missing images, unknown codes, group sizes and prevalences under every grouping,
    split sizes and patient-disjointness of dataset NAME. Exits 1 if it cannot be read or
    has problems."""
    from medfairx.report.datacards import describe_with_card

    try:
        card, info = describe_with_card(config, name)
    except Exception as exc:  # noqa: BLE001 - any failure to read the data is the answer here
        message = f"{type(exc).__name__}: {exc}"
        if as_json:
            click.echo(json.dumps({"name": name, "error": message}, indent=2))
        click.secho(f"dataset {name!r} cannot be read: {message}", fg="red", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps({**info, "card": card}, indent=2, default=str))
    else:
        for line in format_description(card, info):
            click.echo(line)
    problems = info.get("problems") or []
    if problems:
        click.secho(f"{len(problems)} problem(s):", fg="red", err=True)
        for p in problems:
            click.secho(f"  {p}", fg="red", err=True)
        sys.exit(1)
    if not as_json:
        click.echo("\nOK: no problem found.")
