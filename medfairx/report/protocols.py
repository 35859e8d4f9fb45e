"""Two analysis pages of a leaderboard: attribute encoding, and protocols side by side.

``encoding.html`` (and ``encoding.csv``) show the attribute probes of
:func:`medfairx.report.encoding.encoding_table`; each block page shows its own rows.

``protocols.html`` puts, for every method run on several catalogue datasets that hold the
same underlying data (e.g. ``ham10000`` at 32 px with ``tiny_cnn`` end to end, and
``ham10000_224`` on frozen EfficientNet-Lite0 features), the AUC per grouping and group
with its CI side by side, one column per (dataset, protocol). Datasets hold the same data
when their catalogue entries share adapter, root, task, label and split
(:func:`data_key`); they may differ in image size, encoder and protocol. A board built from
several stores (``medfairx report runs/A runs/B``) gets the page when it has such pairs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from medfairx.fileio import atomic_write_csv

ENCODING_PAGE = "encoding.html"
ENCODING_CSV = "encoding.csv"
PROTOCOLS_PAGE = "protocols.html"
COMPARED_METRIC = "auc"

__all__ = ["ENCODING_CSV", "ENCODING_PAGE", "PROTOCOLS_PAGE", "block_encoding_rows", "data_key", "encoding_rows",
           "protocol_comparison", "variant_labels", "write_analysis_pages"]


def _cell(value: Any, low: Any, high: Any) -> dict[str, str]:
    from medfairx.report.render import fmt_num, sort_key

    ci = f"[{fmt_num(low)}, {fmt_num(high)}]" if pd.notna(low) else ""
    return {"text": fmt_num(value) if pd.notna(value) else "—", "ci": ci, "sort": sort_key(value)}


def encoding_rows(table: pd.DataFrame | None) -> list[dict[str, Any]]:
    """Display rows of a probe table (formatted AUC and balanced accuracy with CIs)."""
    if table is None or table.empty:
        return []
    out = []
    for r in table.to_dict("records"):
        out.append({"dataset": r["dataset"], "grouping": r["grouping"], "source": r["source"],
                    "method": r["method"] or "—", "seed": "" if pd.isna(r["seed"]) else str(r["seed"]),
                    "features": r["features"], "metric": r["metric"] if pd.notna(r["metric"]) else "",
                    "auc": _cell(r["value"], r["ci_low"], r["ci_high"]),
                    "ba": _cell(r["balanced_accuracy"], r["ba_ci_low"], r["ba_ci_high"]),
                    "C": "" if pd.isna(r["C"]) else f"{r['C']:g}",
                    "n": "" if pd.isna(r["n_test"]) else str(int(r["n_test"])), "note": r["note"] or ""})
    return out


def block_encoding_rows(table: pd.DataFrame | None, dataset: str, grouping: str) -> list[dict[str, Any]]:
    """The probe rows of one (dataset, grouping) block that have a value."""
    if table is None or table.empty:
        return []
    sub = table[(table["dataset"] == dataset) & (table["grouping"] == grouping) & table["value"].notna()]
    return encoding_rows(sub)


def data_key(catalogue: Any, dataset: str) -> str:
    """What makes two catalogue datasets the same data: adapter, root, task, label, split.

    A dataset the catalogue does not list is its own key.
    """
    try:
        cfg = catalogue.dataset(dataset)
    except Exception:  # noqa: BLE001 - an unknown dataset is compared with nothing
        return f"name:{dataset}"
    label = cfg.label.model_dump(mode="json") if cfg.label is not None else None
    return json.dumps({"adapter": cfg.adapter, "root": str(cfg.root), "task": cfg.task, "label": label,
                       "split": cfg.split.model_dump(mode="json")}, sort_keys=True, default=str)


def variant_labels(records: Sequence[dict[str, Any]], catalogue: Any = None) -> dict[str, str]:
    """Dataset → how its runs saw the data (image size, protocol, encoder, head or backbone)."""
    seen: dict[str, set[str]] = {}
    for r in records:
        p = r.get("protocol") or {}
        name = str(p.get("name") or "finetune")
        if p.get("encoder") and name != "finetune":
            how = f"{name}, {p['encoder']} ({'pretrained' if p.get('pretrained') else 'random init'}), head {r.get('backbone')}"
        elif p.get("encoder"):
            how = f"end to end, {p['encoder']} ({'pretrained' if p.get('pretrained') else 'random init'})"
        else:
            how = f"end to end, {r.get('backbone')}"
        seen.setdefault(str(r.get("dataset")), set()).add(how)
    out = {}
    for d, hows in seen.items():
        size = ""
        try:
            s = catalogue.dataset(d).image_size if catalogue is not None else None
            size = f"{s} px; " if s else ""
        except Exception:  # noqa: BLE001 - the size is an optional detail of the label
            pass
        out[d] = f"{d} ({size}{'; '.join(sorted(hows))})"
    return out


def protocol_comparison(results: pd.DataFrame, records: Sequence[dict[str, Any]], catalogue: Any) -> list[dict[str, Any]]:
    """Per method present on several variants of the same data: AUC per grouping and group, side by side.

    Returns:
        One section per (data, method): ``columns`` (variant labels) and ``rows``
        (grouping, group, one cell per column: mean ± sd over seeds, CI).
    """
    from medfairx.report.render import ordered_strategies, stat_cell
    from medfairx.stats.ranking import seed_means

    if results is None or results.empty:
        return []
    agg = seed_means(results)
    agg = agg[(agg["metric"] == COMPARED_METRIC) & agg["scope"].isin(["overall", "group"])]
    if agg.empty:
        return []
    strategy = ordered_strategies(agg["strategy"])[0]
    agg = agg[agg["strategy"] == strategy]
    by_key: dict[str, list[str]] = {}
    for d in sorted(map(str, agg["dataset"].unique())):
        by_key.setdefault(data_key(catalogue, d), []).append(d)
    labels = variant_labels(records, catalogue)
    sections = []
    for datasets in (ds for ds in by_key.values() if len(ds) > 1):
        sub = agg[agg["dataset"].isin(datasets)]
        for method in sorted(map(str, sub["method"].unique())):
            ms = sub[sub["method"] == method]
            present = [d for d in datasets if d in set(ms["dataset"])]
            if len(present) < 2:
                continue
            look = {(r["dataset"], r["grouping"], r["group"]): r for r in ms.to_dict("records")}
            keys = sorted({(g, grp) for _, g, grp in look}, key=lambda k: (k[0], k[1] != "", k[1]))
            rows = [{"grouping": g, "group": grp or "overall", "cells": [stat_cell(look.get((d, g, grp))) for d in present]}
                    for g, grp in keys if sum((d, g, grp) in look for d in present) > 1]
            if rows:
                sections.append({"method": method, "datasets": present, "strategy": strategy,
                                 "columns": [labels.get(d, d) for d in present], "rows": rows})
    return sections


def write_analysis_pages(out_dir: Path, *, suite: str, encoding: pd.DataFrame | None,
                         comparison: Sequence[dict[str, Any]]) -> list[Path]:
    """``encoding.html`` + ``encoding.csv`` (when there are probes) and ``protocols.html`` (when compared)."""
    from medfairx.report.render import (
        generated_now,
        make_environment,
        medfairx_version,
        render_page,
    )

    env, written = make_environment(), []
    common = {"suite": suite, "version": medfairx_version(), "generated": generated_now()}
    if encoding is not None and not encoding.empty:
        atomic_write_csv(out_dir / ENCODING_CSV, encoding)
        written.append(out_dir / ENCODING_CSV)
        probed = encoding[encoding["value"].notna()]
        skipped = encoding[encoding["value"].isna()]
        not_probed = sorted({f"{r['method'] or r['features']}: {r['note'][len('not probed: '):]}"
                             for r in skipped.to_dict("records")})
        written.append(render_page(env, "encoding.html", out_dir / ENCODING_PAGE, **common,
                                   rows=encoding_rows(probed), not_probed=not_probed))
    if comparison:
        written.append(render_page(env, "protocols.html", out_dir / PROTOCOLS_PAGE, **common,
                                   sections=list(comparison), metric=COMPARED_METRIC))
    return written


def analysis_context(runs: Sequence[Any], results: pd.DataFrame, *, n_boot: int,
                     echo: Callable[[str], None] = print) -> dict[str, Any]:
    """What the leaderboard needs of both analyses (never raises: a failure is a warning).

    Returns:
        ``encoding`` (the probe table or ``None``), ``comparison`` (sections),
        ``encoding_page`` and ``protocols_page`` (file names, or ``None`` when not written).
    """
    from medfairx.data.dataset import _catalogue
    from medfairx.report.encoding import encoding_table

    out: dict[str, Any] = {"encoding": None, "comparison": [], "encoding_page": None, "protocols_page": None}
    try:
        catalogue = _catalogue(None)
    except Exception as exc:  # noqa: BLE001 - the analyses are extra; the board is written without them
        echo(f"warning: attribute encoding and protocol comparison not written (catalogue: {exc})")
        return out
    try:
        table = encoding_table(runs, catalogue=catalogue, n_boot=n_boot, echo=echo)
        if not table.empty:
            out.update(encoding=table, encoding_page=ENCODING_PAGE)
    except Exception as exc:  # noqa: BLE001 - the analysis is extra; the board is written without it
        echo(f"warning: attribute encoding not analysed: {type(exc).__name__}: {exc}")
    try:
        out["comparison"] = protocol_comparison(results, [r.record for r in runs], catalogue)
        out["protocols_page"] = PROTOCOLS_PAGE if out["comparison"] else None
    except Exception as exc:  # noqa: BLE001 - the comparison is extra; the board is written without it
        echo(f"warning: protocol comparison not written: {type(exc).__name__}: {exc}")
    return out
