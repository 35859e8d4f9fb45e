"""HTML leaderboards: one suite's index, one page per (dataset, grouping), one per method.

``build_leaderboard`` consumes the long results table of ``docs/CONTRACTS.md`` (and the
failures table), runs the statistics of :mod:`medfairx.stats` and renders the pages with
the templates in ``medfairx/report/templates``. ``write_root_index`` links every suite.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from medfairx.errors import ConfigError
from medfairx.fileio import atomic_write_csv, atomic_write_json, atomic_write_text
from medfairx.report.claims import claims_context, evaluate_claims
from medfairx.report.plots import cd_diagram_svg, group_bars_svg, pareto_svg
from medfairx.report.protocols import block_encoding_rows
from medfairx.report.render import (
    fmt_num,
    fmt_p,
    generated_now,
    inline_svg,
    make_environment,
    medfairx_version,
    ordered_strategies,
    render_page,
    slug,
    sort_key,
    stat_cell,
)
from medfairx.stats.cd import NON_INDEPENDENCE, Comparison, compare_methods
from medfairx.stats.ranking import (
    average_ranks,
    block_matrix,
    check_results,
    seed_means,
)

UTILITY_METRICS: tuple[str, ...] = ("auc", "dice")
HIDDEN_ORDER: tuple[str, ...] = ("p10", "tail", "cvar", "fail")
HIDDEN_FAILURE = re.compile("|".join(HIDDEN_ORDER), re.I)
"""Per-group columns shown beside the group mean as hidden-failure indicators (docs/methods.md §8.4)."""
FAILURE_COLUMNS: tuple[str, ...] = ("method", "dataset", "grouping", "seed", "error_type", "error_message")
TAG_LABELS: dict[str, tuple[str, bool]] = {
    "uses_groups_in_fit": ("uses attribute in training", False),
    "uses_groups_in_predict": ("uses attribute at test time", True),
    "needs_gpu": ("needs a GPU", False),
    "non_deterministic": ("non-deterministic", True),
    "evaluation_only": ("evaluation only (no training)", False),
    "needs_prompts": ("prompted from ground truth: upper bound", True),
}


# --- small helpers -----------------------------------------------------------------------


#: Strategies shown first, in this order; others follow alphabetically.
def block_page_name(dataset: str, grouping: str) -> str:
    """File name of the page of one (dataset, grouping) block."""
    return f"{slug(dataset)}__{slug(grouping)}.html"


def method_page_name(method: str) -> str:
    """File name of the page of one method."""
    return f"method-{slug(method)}.html"


def _tokens(name: str) -> set[str]:
    return set(re.split(r"[_\-\s]+", name.lower()))


def choose_cd_metrics(aggregated: pd.DataFrame) -> list[tuple[str, str]]:
    """The (metric, role) pairs that get a full comparison and CD diagram.

    For every utility metric present at overall scope (``auc``, ``dice``): the metric
    itself, its worst-group summary and its gap summary (matched by name tokens, e.g.
    ``worst_group_auc`` and ``auc_gap``).
    """
    overall = set(aggregated.loc[aggregated["scope"] == "overall", "metric"])
    summary = sorted(set(aggregated.loc[aggregated["scope"] == "summary", "metric"]))
    out: list[tuple[str, str]] = []
    for base in UTILITY_METRICS:
        if base not in overall:
            continue
        out.append((base, f"utility ({base})"))
        for word, role in (("worst", "fairness: worst group"), ("gap", "fairness: gap")):
            cands = [m for m in summary if word in _tokens(m) and base in _tokens(m)]
            cands.sort(key=lambda m: (m not in (f"worst_group_{base}", f"{base}_gap"), len(m), m))
            if cands:
                out.append((cands[0], role))
    if not out and overall:
        out.append((sorted(overall)[0], "utility"))
    return out


def _plain(value: Any) -> Mapping[str, Any]:
    """``value`` as a mapping: a dataclass instance becomes the dict of its fields."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    mapping: Mapping[str, Any] = value
    return mapping


def _hidden_key(name: str) -> tuple[int, str]:
    """Sort key of a hidden-failure metric: its kind's place in :data:`HIDDEN_ORDER`, then its name."""
    match = HIDDEN_FAILURE.search(name)
    assert match is not None, "only hidden-failure metrics are sorted"
    return HIDDEN_ORDER.index(match.group(0).lower()), name


def method_info(name: str, methods: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any]:
    """Normalise one method's info (summary, reference, tags, plugin, dist, version)."""
    raw: Mapping[str, Any] = (methods or {}).get(name, {}) or {}
    origin: Mapping[str, Any] = _plain(raw.get("origin") or raw.get("method_origin") or {})
    tags: Mapping[str, Any] = _plain(raw.get("tags") or {})
    badges = [
        {"label": label, "warn": warn} for key, (label, warn) in TAG_LABELS.items() if bool(tags.get(key, False))
    ]
    if tags and not tags.get("uses_groups_in_fit") and not tags.get("uses_groups_in_predict"):
        badges.insert(0, {"label": "group-unaware", "warn": False})
    if raw.get("source"):  # boards with submitted bundles: "run here" or "submitted: <bundle>"
        badges.insert(0, {"label": str(raw["source"]), "warn": str(raw["source"]) != "run here"})
    return {
        "name": name,
        "href": method_page_name(name),
        "summary": str(raw.get("summary", "") or ""),
        "reference": str(raw.get("reference", "") or ""),
        "tags": {str(k): (", ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)) for k, v in tags.items()},
        "badges": badges,
        "plugin": str(raw.get("plugin", origin.get("plugin", "")) or ""),
        "dist": str(raw.get("dist", origin.get("dist", "")) or ""),
        "version": str(raw.get("version", origin.get("version", "")) or ""),
    }


def _failure_rows(failures: pd.DataFrame | None, **match: str) -> list[dict[str, str]]:
    if failures is None or failures.empty:
        return []
    df = failures.copy()
    for col in FAILURE_COLUMNS:
        if col not in df.columns:
            df[col] = ""
    for col, val in match.items():
        df = df[df[col].astype(str) == val]
    rows = []
    for rec in df.sort_values(["method", "dataset", "grouping", "seed"], key=lambda s: s.astype(str)).to_dict("records"):
        row = {c: "" if rec[c] is None or (isinstance(rec[c], float) and math.isnan(rec[c])) else str(rec[c]) for c in FAILURE_COLUMNS}
        row["method_href"] = method_page_name(row["method"])
        row["block_href"] = block_page_name(row["dataset"], row["grouping"]) if row["dataset"] else ""
        rows.append(row)
    return rows


# --- statistics sections -------------------------------------------------------------------


def _comparison_context(cmp: Comparison, role: str, methods_info: Mapping[str, dict[str, Any]], out_dir: Path,
                        written: list[Path]) -> dict[str, Any]:
    bm = cmp.blocks
    means = cmp.mean_values()
    ranks = [
        {"pos": i + 1, "method": m, "href": methods_info[str(m)]["href"], "badges": methods_info[str(m)]["badges"],
         "rank": fmt_num(r, 2), "rank_sort": sort_key(r), "mean": fmt_num(means.get(m)), "mean_sort": sort_key(means.get(m))}
        for i, (m, r) in enumerate(cmp.ranks.items())
    ]
    svg = svg_file = None
    if cmp.has_diagram:
        svg_text = cd_diagram_svg(cmp)
        svg_file = f"cd-{slug(cmp.strategy)}-{slug(cmp.metric)}.svg"
        path = out_dir / svg_file
        atomic_write_text(path, '<?xml version="1.0" encoding="utf-8" standalone="no"?>\n' + svg_text + "\n")
        written.append(path)
        svg = inline_svg(svg_text)
    fr = cmp.friedman
    nem = None
    if cmp.nemenyi is not None:
        order = list(cmp.ranks.index)
        nem = {"methods": order, "rows": [{"method": a, "cells": [fmt_p(cmp.nemenyi.loc[a, b]) if a != b else "" for b in order],
                                           "sig": [bool(a != b and cmp.nemenyi.loc[a, b] < cmp.alpha) for b in order]}
                                          for a in order]}
    wil = []
    if cmp.wilcoxon is not None:
        for rec in cmp.wilcoxon.to_dict("records"):
            wil.append({"a": rec["method_a"], "b": rec["method_b"], "diff": fmt_num(rec["mean_diff"], 4),
                        "diff_sort": sort_key(rec["mean_diff"]), "better": rec["better"], "stat": fmt_num(rec["statistic"], 1),
                        "p": fmt_p(rec["p_value"]), "p_holm": fmt_p(rec["p_holm"]), "p_holm_sort": sort_key(rec["p_holm"]),
                        "sig": bool(rec["significant"])})
    return {
        "metric": cmp.metric,
        "role": role,
        "anchor": f"cmp-{slug(cmp.strategy)}-{slug(cmp.metric)}",
        "direction": "higher is better" if bm.higher_is_better else "lower is better",
        "n_blocks": bm.n_blocks,
        "n_datasets": bm.n_datasets(),
        "k": bm.n_methods,
        "test": fr.label if fr else "Friedman χ²",
        "statistic": fmt_num(fr.statistic, 3) if fr else "—",
        "pvalue": fmt_p(fr.pvalue) if fr else "—",
        "cd": fmt_num(cmp.cd, 3) if cmp.cd is not None else "",
        "alpha": cmp.alpha,
        "svg": svg,
        "svg_file": svg_file or "",
        "reason": cmp.reason or "",
        "ranks": ranks,
        "nemenyi": nem,
        "wilcoxon": wil,
        "dropped": [{"dataset": d, "grouping": g, "missing": ", ".join(ms)} for (d, g), ms in sorted(bm.dropped_blocks.items())],
        "excluded": bm.excluded_methods,
    }


def _dropped_text(bm: Any) -> str:
    """Which incomplete blocks a ranking dropped, and the methods without a value there."""
    parts = [f"{d} × {g} (no value for {', '.join(ms)})" for (d, g), ms in sorted(bm.dropped_blocks.items())]
    if bm.excluded_methods:
        parts.append(f"left out, no value in any block: {', '.join(bm.excluded_methods)}")
    return "; ".join(parts)


def _rank_overview(agg: pd.DataFrame, strategy: str, metrics: list[str], order: list[str]) -> dict[str, Any]:
    """Average ranks per metric over complete blocks only: a block where some method's value is
    undefined (NaN) is dropped for that metric (Friedman needs complete blocks), and said so."""
    cols: list[dict[str, Any]] = []
    ranks_by_metric: dict[str, tuple[pd.Series, pd.Series]] = {}
    unranked: list[dict[str, Any]] = []
    for metric in metrics:
        bm = block_matrix(agg, metric, strategy=strategy, aggregated=agg)
        if bm.n_blocks == 0:
            unranked.append({"metric": metric, "dropped": len(bm.dropped_blocks), "why": _dropped_text(bm)})
            continue
        ranks_by_metric[metric] = (average_ranks(bm.matrix, bm.higher_is_better), bm.matrix.mean(axis=0))
        cols.append({"metric": metric, "n_blocks": bm.n_blocks,
                     "direction": "↑" if bm.higher_is_better else "↓",
                     "dropped": len(bm.dropped_blocks), "why": _dropped_text(bm)})
    rows = []
    for m in order:
        cells = []
        for c in cols:
            r, mean = ranks_by_metric[c["metric"]]
            cells.append({"rank": fmt_num(r.get(m), 2), "sort": sort_key(r.get(m)), "mean": fmt_num(mean.get(m))}
                         if m in r.index else None)
        rows.append({"method": m, "href": method_page_name(m), "cells": cells})
    return {"columns": cols, "rows": rows, "unranked": unranked}


# --- block pages ---------------------------------------------------------------------------


def _lookup(sub: pd.DataFrame) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    records = cast(list[dict[str, Any]], sub.to_dict("records"))  # pandas-stubs types record keys as Hashable; these are column names
    return {(r["method"], r["metric"], r["scope"], r["group"]): r for r in records}


def _block_context(agg: pd.DataFrame, dataset: str, grouping: str, methods_order: list[str],
                   methods_info: Mapping[str, dict[str, Any]], failures: pd.DataFrame | None) -> dict[str, Any]:
    sub = agg[(agg["dataset"] == dataset) & (agg["grouping"] == grouping)]
    tasks = sorted({str(t) for t in sub["task"] if str(t) not in ("", "nan")})
    methods = [m for m in methods_order if m in set(sub["method"])]
    grp_rows = sub[sub["scope"] == "group"]
    groups = []
    for g, gdf in grp_rows.groupby("group", sort=True):
        groups.append({"group": g, "n": fmt_num(gdf["n"].iloc[0], 0), "prevalence": fmt_num(gdf["prevalence"].iloc[0])})
    group_names = [g["group"] for g in groups]
    utility = next((u for u in UTILITY_METRICS if u in set(sub.loc[sub["scope"] == "overall", "metric"])), None)
    worst = next((m for m, role in choose_cd_metrics(sub) if role.endswith("worst group")), None)
    strategies = []
    for strategy in ordered_strategies(sub["strategy"]):
        s = sub[sub["strategy"] == strategy]
        look = _lookup(s)
        overall_metrics = sorted(set(s.loc[s["scope"] == "overall", "metric"]), key=lambda m: (m not in UTILITY_METRICS, m))
        summary_metrics = sorted(set(s.loc[s["scope"] == "summary", "metric"]),
                                 key=lambda m: ("worst" not in _tokens(m), "gap" not in _tokens(m), m))
        group_metrics = sorted(set(s.loc[s["scope"] == "group", "metric"]), key=lambda m: (m not in UTILITY_METRICS, m))

        def wide(metrics: list[str], scope: str, look: dict[Any, Any] = look) -> dict[str, Any]:
            rows = []
            for m in methods:
                first = next((look[(m, x, scope, "")] for x in metrics if (m, x, scope, "") in look), None)
                rows.append({"method": m, "href": methods_info[m]["href"],
                             "n": fmt_num(first["n"], 0) if first else "—",
                             "prevalence": fmt_num(first["prevalence"]) if first else "—",
                             "cells": [stat_cell(look.get((m, x, scope, ""))) for x in metrics]})
            return {"metrics": metrics, "rows": rows}

        group_tables = []
        hidden = sorted((g for g in group_metrics if HIDDEN_FAILURE.search(g)),
                        key=_hidden_key)
        for metric in [g for g in group_metrics if g not in hidden]:
            rows = []
            for m in methods:
                for g in group_names:
                    r = look.get((m, metric, "group", g))
                    if r is None:
                        continue
                    rows.append({"method": m, "href": methods_info[m]["href"], "group": g,
                                 "n": fmt_num(r["n"], 0), "n_sort": sort_key(r["n"]),
                                 "prevalence": fmt_num(r["prevalence"]), "prev_sort": sort_key(r["prevalence"]),
                                 "cell": stat_cell(r)})
            higher = bool(rows) and look[(rows[0]["method"], metric, "group", rows[0]["group"])]["higher_is_better"]
            group_tables.append({"metric": metric, "direction": "higher is better" if higher else "lower is better",
                                 "rows": rows})
        hidden_table = None
        main_group = next((g for g in group_metrics if g in UTILITY_METRICS), None)
        if hidden and main_group:
            rows = []
            for m in methods:
                for g in group_names:
                    main = look.get((m, main_group, "group", g))
                    if main is None:
                        continue
                    rows.append({"method": m, "href": methods_info[m]["href"], "group": g, "n": fmt_num(main["n"], 0),
                                 "n_sort": sort_key(main["n"]),
                                 "cells": [stat_cell(main)] + [stat_cell(look.get((m, h, "group", g))) for h in hidden]})
            hidden_table = {"metrics": [main_group, *hidden], "rows": rows}
        pareto = bars = None
        if utility and worst:
            pts = []
            for m in methods:
                a, b = look.get((m, utility, "overall", "")), look.get((m, worst, "summary", ""))
                if a is not None and b is not None:
                    pts.append({"method": m, "x": a["mean"], "y": b["mean"], "x_std": a["std"], "y_std": b["std"]})
            if pts:
                pareto = inline_svg(pareto_svg(pd.DataFrame(pts), x_label=f"overall {utility}", y_label=worst,
                                               title=f"Fairness–utility trade-off [{strategy}]",
                                               x_higher=bool(look[(pts[0]['method'], utility, 'overall', '')]['higher_is_better']),
                                               y_higher=bool(look[(pts[0]['method'], worst, 'summary', '')]['higher_is_better'])))
        if main_group:
            gb = s[(s["scope"] == "group") & (s["metric"] == main_group)]
            if not gb.empty:
                gb = gb.assign(method=pd.Categorical(gb["method"], categories=methods, ordered=True)).sort_values("method")
                gb["method"] = gb["method"].astype(str)
                bars = inline_svg(group_bars_svg(gb, metric=main_group, title=f"{main_group} per group [{strategy}] (bars: 95% CI)",
                                                 groups=group_names))
        strategies.append({"name": strategy, "anchor": f"s-{slug(strategy)}", "overall": wide(overall_metrics, "overall"),
                           "summary": wide(summary_metrics, "summary"), "group_tables": group_tables,
                           "hidden": hidden_table, "pareto": pareto, "bars": bars})
    return {
        "dataset": dataset,
        "grouping": grouping,
        "tasks": ", ".join(tasks) or "—",
        "groups": groups,
        "methods": [methods_info[m] for m in methods],
        "strategies": strategies,
        "failures": _failure_rows(failures, dataset=dataset, grouping=grouping),
    }


# --- top level -----------------------------------------------------------------------------


def write_csv(results: pd.DataFrame, out_dir: Path, failures: pd.DataFrame | None = None) -> list[Path]:
    """Write ``results.csv`` (and ``failures.csv`` when there are failures) to ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "results.csv"]
    atomic_write_csv(paths[0], results)
    if failures is not None and not failures.empty:
        paths.append(out_dir / "failures.csv")
        atomic_write_csv(paths[1], failures)
    return paths


def _method_order(names: Iterable[str], key_ranks: pd.Series | None) -> list[str]:
    """Methods by their rank on the first compared metric, then by name."""
    names = sorted(set(names), key=str)
    if key_ranks is None or key_ranks.empty:
        return names
    return sorted(names, key=lambda m: (float(key_ranks.get(m, np.inf)), m))


def build_leaderboard(
    results: pd.DataFrame,
    out_dir: Path,
    *,
    suite: str,
    failures: pd.DataFrame | None = None,
    methods: dict[str, dict[str, Any]] | None = None,
    provenance: dict[str, Any] | None = None,
    alpha: float = 0.05,
    data_cards: list[tuple[str, str]] | None = None,
    caveats: Mapping[str, Sequence[str]] | None = None,
    claims: Sequence[Any] | None = None,
    submissions: Sequence[Mapping[str, Any]] | None = None,
    search_page: str | None = None,
    external_page: str | None = None,
    encoding: pd.DataFrame | None = None,
    encoding_page: str | None = None,
    protocols_page: str | None = None,
) -> list[Path]:
    """Write a suite's HTML leaderboard to ``out_dir``.

    Writes ``index.html`` (rankings per metric and strategy, Friedman/Nemenyi/CD sections
    for the utility and fairness metrics, the registered claims checked by
    :mod:`medfairx.report.claims`, failures, links), ``<dataset>__<grouping>.html``
    per block, ``method-<name>.html`` per method, ``results.csv``, ``failures.csv`` (if
    any), ``provenance.json`` and ``cd-<strategy>-<metric>.svg`` per drawn diagram.

    Args:
        results: long results table (docs/CONTRACTS.md).
        out_dir: output folder (created).
        suite: suite name shown in titles.
        failures: failed runs (method, dataset, grouping, seed, error_type, error_message).
        methods: method name → info (summary, reference, tags, plugin, dist, version or
            origin {plugin, dist, version}).
        provenance: recorded as ``provenance.json`` and summarised on the index.
        alpha: significance level of the tests.
        data_cards: ``(dataset, file name)`` of data card pages already written to
            ``out_dir`` (:func:`medfairx.report.datacards.write_data_cards`), linked from the index.
        caveats: dataset → its card's caveats (default: read from the current catalogue's
            cards); shown on the index, on each block page and on each method page of the
            dataset, wherever its gaps appear.
        claims: the :class:`~medfairx.specs.ClaimSpec` s checked in the Claims section
            (default: every claim registered through ``register_claims``).
        submissions: one row per bundle given to ``medfairx report --include`` (bundle,
            method, runs, status: ``submitted`` or why it was refused), listed on the index.
        search_page: file name of the hyper-parameter search page
            (:mod:`medfairx.report.search`), linked from the index when given.
        external_page: file name of the external-evaluation page (:mod:`medfairx.report.external`),
            linked from the index when given.
        encoding: attribute-probe table (:func:`medfairx.report.encoding.encoding_table`);
            each block page shows its rows.
        encoding_page: file name of the attribute-encoding page, linked from the index.
        protocols_page: file name of the protocols comparison page, linked from the index.

    Returns:
        Every path written.

    Raises:
        ConfigError: if ``results`` lacks a contract column.
    """
    check_results(results)
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be in (0, 1); got {alpha}.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    env = make_environment()
    agg = seed_means(results)
    written: list[Path] = []
    fail_names = set() if failures is None or failures.empty else set(failures["method"].astype(str))
    all_methods = set(agg["method"].astype(str)) | fail_names | set(methods or {})
    info = {m: method_info(m, methods) for m in all_methods}
    cd_metrics = choose_cd_metrics(agg)
    strategies = ordered_strategies(agg["strategy"])

    strategy_ctx: list[dict[str, Any]] = []
    key_ranks = None
    method_ranks: dict[str, list[dict[str, Any]]] = {m: [] for m in all_methods}
    for strategy in strategies:
        present = set(agg.loc[agg["strategy"] == strategy, "metric"])
        comps = []
        for metric, role in cd_metrics:
            if metric not in present:
                continue
            cmp = compare_methods(results, metric, strategy=strategy, alpha=alpha, aggregated=agg)
            if key_ranks is None and not cmp.ranks.empty:
                key_ranks = cmp.ranks
            comps.append(_comparison_context(cmp, role, info, out_dir, written))
            for row in comps[-1]["ranks"]:
                method_ranks[row["method"]].append({"strategy": strategy, "metric": metric, "role": role,
                                                    "rank": row["rank"], "pos": row["pos"], "k": cmp.blocks.n_methods,
                                                    "n_blocks": cmp.blocks.n_blocks, "mean": row["mean"]})
        strategy_ctx.append({"name": strategy, "anchor": f"s-{slug(strategy)}", "comparisons": comps})
    order = _method_order(all_methods, key_ranks)
    rankable = agg["scope"].isin(["overall", "summary"]) & (agg["kind"] != "descriptive")  # no "best" to rank by
    ranked_metrics = sorted(set(agg.loc[rankable, "metric"]),
                            key=lambda m: ([c for c, _ in cd_metrics] + [m]).index(m))
    for s in strategy_ctx:
        present = set(agg.loc[agg["strategy"] == s["name"], "metric"])
        s["overview"] = _rank_overview(agg, s["name"], [m for m in ranked_metrics if m in present], order)

    common = {"suite": suite, "version": medfairx_version(), "generated": generated_now()}
    blocks = sorted({(str(d), str(g)) for d, g in agg[["dataset", "grouping"]].itertuples(index=False)}
                    | ({(str(d), str(g)) for d, g in failures[["dataset", "grouping"]].itertuples(index=False)}
                       if failures is not None and not failures.empty else set()))
    if caveats is None:
        from medfairx.report.datacards import dataset_caveats

        caveats = dataset_caveats(None, sorted({d for d, _ in blocks}))
    block_links = []
    for d, g in blocks:
        ctx = _block_context(agg, d, g, order, info, failures)
        written.append(render_page(env, "block.html", out_dir / block_page_name(d, g), **common, **ctx,
                                   caveats=list(caveats.get(d, ())), encoding=block_encoding_rows(encoding, d, g),
                                   encoding_page=encoding_page))
        block_links.append({"dataset": d, "grouping": g, "href": block_page_name(d, g), "tasks": ctx["tasks"],
                            "n_methods": len(ctx["methods"]), "n_failures": len(ctx["failures"]),
                            "groups": " · ".join(f"{x['group']} {x['n']}" for x in ctx["groups"]) or "—"})
    sizes = {(b["dataset"], b["grouping"]): b["groups"] for b in block_links}
    for m in order:
        blocks_of_m = sorted({(str(d), str(g)) for d, g in agg.loc[agg["method"] == m, ["dataset", "grouping"]].itertuples(index=False)})
        written.append(render_page(env, "method.html", out_dir / info[m]["href"], **common, method=info[m],
                                   ranks=method_ranks.get(m, []),
                                   blocks=[{"dataset": d, "grouping": g, "href": block_page_name(d, g),
                                            "groups": sizes.get((d, g), "—")} for d, g in blocks_of_m],
                                   caveats=_caveat_rows(caveats, [d for d, _ in blocks_of_m]),
                                   failures=_failure_rows(failures, method=m)))
    prov = {"suite": suite, "generated": common["generated"], **(provenance or {})}
    prov_path = out_dir / "provenance.json"
    atomic_write_json(prov_path, prov, newline=True)
    written.append(prov_path)
    written.extend(write_csv(results, out_dir, failures))
    n_seeds = int(results["seed"].nunique()) if len(results) else 0
    written.append(render_page(
        env, "index.html", out_dir / "index.html", **common,
        strategies=strategy_ctx, methods=[info[m] for m in order], blocks=block_links,
        failures=_failure_rows(failures), non_independence=NON_INDEPENDENCE, alpha=alpha, n_seeds=n_seeds,
        data_cards=[{"dataset": str(d), "href": str(f)} for d, f in data_cards or []],
        claims=claims_context(evaluate_claims(results, claims=claims, aggregated=agg)),
        provenance=[{"key": str(k), "value": v if isinstance(v, str) else json.dumps(v, default=str)[:300]}
                    for k, v in sorted((provenance or {}).items())],
        mixed_devices=_mixed_devices((provenance or {}).get("devices_by_method")),
        caveats=_caveat_rows(caveats, [d for d, _ in blocks]),
        submissions=[dict(x) for x in submissions or ()], search_page=search_page, external_page=external_page,
        encoding_page=encoding_page, protocols_page=protocols_page,
    ))
    return written


def _caveat_rows(caveats: Mapping[str, Sequence[str]], datasets: Iterable[str]) -> list[dict[str, str]]:
    """``{"dataset", "text"}`` per caveat of the datasets (each dataset once, in order)."""
    return [{"dataset": d, "text": str(c)} for d in dict.fromkeys(datasets) for c in caveats.get(d, ())]


def write_root_index(leaderboards_dir: Path) -> Path:
    """Write ``leaderboards_dir/index.html`` linking every suite folder that has an index.html."""
    leaderboards_dir = Path(leaderboards_dir)
    leaderboards_dir.mkdir(parents=True, exist_ok=True)
    suites = []
    for sub in sorted(p for p in leaderboards_dir.iterdir() if p.is_dir() and (p / "index.html").is_file()):
        generated = ""
        prov = sub / "provenance.json"
        if prov.is_file():
            try:
                generated = str(json.loads(prov.read_text(encoding="utf-8")).get("generated", ""))
            except (OSError, ValueError):
                generated = "(unreadable provenance.json)"
        suites.append({"name": sub.name, "href": f"{sub.name}/index.html", "generated": generated})
    env = make_environment()
    return render_page(env, "root.html", leaderboards_dir / "index.html", suites=suites,
                       version=medfairx_version(), generated=generated_now())


def _mixed_devices(by_method: Mapping[str, Mapping[str, int]] | None) -> list[str]:
    """``"method: cpu ×3, cuda ×2"`` lines when a leaderboard's runs come from several devices."""
    return [f"{m}: " + ", ".join(f"{d} ×{n}" for d, n in devs.items()) for m, devs in (by_method or {}).items()]


# --- reporter targets (registered by medfairx.default_plugins.reporters) --------------------


def _suite_of(results: pd.DataFrame, suite: str | None) -> str:
    if suite:
        return suite
    names = sorted(map(str, results["suite"].dropna().unique())) if "suite" in results.columns else []
    return names[0] if len(names) == 1 else "+".join(names) or "suite"


def html_reporter(results: pd.DataFrame, out_dir: Path, *, suite: str | None = None, **kwargs: Any) -> list[Path]:
    """ReporterSpec target ``html``: :func:`build_leaderboard` (suite taken from the table if not given)."""
    return build_leaderboard(results, Path(out_dir), suite=_suite_of(results, suite), **kwargs)


def csv_reporter(results: pd.DataFrame, out_dir: Path, *, failures: pd.DataFrame | None = None, **_: Any) -> list[Path]:
    """ReporterSpec target ``csv``: ``results.csv`` (and ``failures.csv``)."""
    return write_csv(results, Path(out_dir), failures)
