"""``medfairx datasets check|verify NAME``: what a dataset holds, and whether it is the published copy."""

from __future__ import annotations

import json
import sys
from typing import Any

import click


def _table(header: list[str], rows: list[list[Any]], indent: str = "  ") -> list[str]:
    """Plain-text table: first column left-aligned, the others right-aligned."""
    cells = [list(map(str, header))] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return [indent + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=False))).rstrip()
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
@click.option("--data-root", "data_root", type=click.Path(file_okay=False), default=None,
              help="Folder holding the dataset folders (sets $MEDFAIRX_DATA for the catalogue).")
@click.option("--json", "as_json", is_flag=True, help="Print describe_dataset's dict (and the card) as JSON.")
def check(name: str, config: str | None, data_root: str | None, as_json: bool) -> None:
    """Rows, missing images, unknown codes, group sizes and prevalences under every grouping,
    split sizes and patient-disjointness of dataset NAME. Exits 1 if it cannot be read or
    has problems."""
    import os

    from medfairx.report.datacards import describe_with_card

    if data_root:
        os.environ["MEDFAIRX_DATA"] = str(data_root)

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


def _format_verify(name: str, result: dict[str, Any]) -> list[str]:
    """The lines ``datasets verify`` prints."""
    lines = [f"dataset {name}: {result['root']}", f"  compared with: {result['source']}"]
    for f in result["files"]:
        detail = f" ({'; '.join(f['differences'])})" if f["differences"] else ""
        shown = {"absent": "not present (optional)"}.get(f["status"], f["status"])
        lines.append(f"  {f['path']}: {shown}{detail}")
    for d in result["folders"]:
        if d["status"] == "absent":
            lines.append(f"  {d['path']}/: not present (not checked)")
            continue
        counts = f"{d['found']:,} files, the {d.get('label') or 'copy'} has {d.get('expected', 0):,}"
        tally = ", ".join(f"{len(d[k]):,} {k}" for k in ("missing", "extra", "changed") if d[k])
        lines.append(f"  {d['path']}/: {d['status']} ({counts}{'; ' + tally if tally else ''})")
    return lines


@datasets.command("verify")
@click.argument("name")
@click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
              help="Catalogue (default: $MEDFAIRX_CONFIG, ./datasets.yaml or the embedded one).")
@click.option("--data-root", "data_root", type=click.Path(file_okay=False), default=None,
              help="Folder holding the dataset folders (sets $MEDFAIRX_DATA for the catalogue).")
@click.option("--root", "root", type=click.Path(file_okay=False), default=None,
              help="The dataset's own folder (overrides the catalogue's root).")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def verify(name: str, config: str | None, data_root: str | None, root: str | None, as_json: bool) -> None:
    """Compare the local copy of dataset NAME with what its card records of the published
    release: metadata checksums and row counts, file counts, missing, extra and changed files.
    Exits 0 if the copy matches, 1 otherwise; the outcome is kept for the data card."""
    import os

    from medfairx.config import load_catalogue
    from medfairx.data.verify import verify_copy, write_record
    from medfairx.errors import MedfairxError
    from medfairx.plugins import get_host

    saved = os.environ.get("MEDFAIRX_DATA")
    try:
        if data_root:  # the catalogue's roots read $MEDFAIRX_DATA when it is loaded
            os.environ["MEDFAIRX_DATA"] = str(data_root)
        try:
            catalogue = load_catalogue(config)
        finally:
            if data_root and saved is None:
                del os.environ["MEDFAIRX_DATA"]
            elif data_root and saved is not None:
                os.environ["MEDFAIRX_DATA"] = saved
        cfg = catalogue.dataset(name)
        card = get_host().registry("datasets").get(cfg.adapter).card
        if card.published is None:
            raise MedfairxError(f"Dataset {name!r} (adapter {cfg.adapter!r}) records no published checksums or "
                                "counts, so there is nothing to verify against; `medfairx datasets check` still "
                                "describes it.")
        folder = root or cfg.root
        if folder is None:
            raise MedfairxError(f"Dataset {name!r} has no root in the catalogue; pass --root FOLDER.")
        result = verify_copy(folder, card.published)
    except MedfairxError as exc:
        if as_json:
            click.echo(json.dumps({"name": name, "error": str(exc)}, indent=2))
        click.secho(f"dataset {name!r} cannot be verified: {exc}", fg="red", err=True)
        sys.exit(1)
    write_record(catalogue.cache_path, name, result)
    if as_json:
        click.echo(json.dumps({"name": name, **result}, indent=2))
    else:
        for line in _format_verify(name, result):
            click.echo(line)
    if not result["ok"]:
        click.secho(f"{len(result['problems'])} problem(s):", fg="red", err=True)
        for p in result["problems"]:
            click.secho(f"  {p}", fg="red", err=True)
        sys.exit(1)
    if not as_json:
        click.echo("\nOK: the copy matches the published checksums and counts.")
