"""``medfairx list KIND [PATTERN]``."""

from __future__ import annotations

import json
from typing import Any

import click

KINDS = ("datasets", "groupings", "methods", "metrics", "backbones", "selection_strategies", "reporters", "executors", "claims", "suites")


def _rows(kind: str, pattern: str, config: str | None) -> list[dict[str, Any]]:
    from medfairx.plugins import get_host

    host = get_host()
    rows: list[dict[str, Any]] = []
    if kind in ("groupings", "suites", "datasets"):
        catalogue = _catalogue(config)
    if kind == "suites":
        import fnmatch

        for name, s in sorted(catalogue.suites.items()) if catalogue else []:
            if fnmatch.fnmatchcase(name, pattern):
                rows.append({"name": name, "summary": s.description, "datasets": {k: list(v) for k, v in s.datasets.items()}})
        return rows
    reg = host.registry(kind)
    for spec in reg.items(pattern):
        origin = reg.origin(spec.name)
        row: dict[str, Any] = {"name": spec.name, "plugin": origin.dist or origin.plugin}
        if kind == "methods":
            t = spec.tags
            row.update(
                summary=spec.summary,
                reference=spec.reference,
                tasks=list(t.tasks),
                uses_groups_in_fit=t.uses_groups_in_fit,
                uses_groups_in_predict=t.uses_groups_in_predict,
                unavailable=spec.unavailable,
                search_space={k: d.to_dict() for k, d in spec.search_space.items() if hasattr(d, "to_dict")},
                **{f: {t: {k: d.to_dict() if hasattr(d, "to_dict") else None for k, d in e.items()}
                          for t, e in getattr(spec, f).items()}
                   for f in ("task_search_space", "backbone_search_space")},
            )
        elif kind == "metrics":
            row.update(summary=spec.summary, task=spec.task, kind=spec.kind, higher_is_better=spec.higher_is_better)
        elif kind == "datasets":
            configured = [n for n, d in (catalogue.datasets.items() if catalogue else []) if d.adapter == spec.name]
            row.update(summary=spec.summary, task=spec.card.task, attributes=list(spec.card.attributes), configured_as=configured)
        elif kind == "claims":
            row.update(summary=spec.text, method=spec.method, baselines=list(spec.methods[1:]))
        elif kind == "groupings":
            row.update(summary=spec.description, columns=list(spec.columns), dataset=spec.dataset or "*")
        else:
            row.update(summary=getattr(spec, "summary", ""))
        rows.append(row)
    if kind == "groupings" and catalogue:
        import fnmatch

        for ds_name, ds in sorted(catalogue.datasets.items()):
            for g_name, g in sorted(ds.groupings.items()):
                if fnmatch.fnmatchcase(g_name, pattern):
                    rows.append({"name": g_name, "dataset": ds_name, "summary": g.description or "", "rule": g.rule_text()})
    return rows


def _catalogue(config: str | None) -> Any:
    from medfairx.config import load_catalogue

    return load_catalogue(config)


@click.command("list")
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("pattern", default="*")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--config", type=click.Path(dir_okay=False), default=None, help="datasets.yaml to read.")
def list_(kind: str, pattern: str, as_json: bool, config: str | None) -> None:
    """List registered KIND matching PATTERN (fnmatch, e.g. 'auc*')."""
    rows = _rows(kind, pattern, config)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"No {kind} match {pattern!r}.")
    width = max((len(r["name"]) for r in rows), default=0)
    for r in rows:
        extra = ""
        if kind == "methods":
            flags = [f for f, on in (("groups in fit", r["uses_groups_in_fit"]), ("groups at test", r["uses_groups_in_predict"])) if on]
            extra = f"  [{'/'.join(r['tasks'])}{'; ' + ', '.join(flags) if flags else ''}]"
            if r.get("reference"):
                extra += f"  ({r['reference']})"
        elif kind == "groupings":
            extra = f"  [dataset: {r.get('dataset')}]"
        elif kind == "datasets" and r.get("configured_as"):
            extra = f"  [configured: {', '.join(r['configured_as'])}]"
        summary = r.get("summary", "")
        if r.get("unavailable"):
            summary = f"UNAVAILABLE: {r['unavailable']}. {summary}"
        click.echo(f"{r['name']:<{width}}  {summary}{extra}")
