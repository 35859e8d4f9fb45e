"""The external-evaluation page: in-distribution and external results per group, side by side.

For every training dataset, external set and grouping it shows, per method, the main metric
(AUC, or Dice for segmentation) on the in-distribution test split and on the external set,
overall and per group, and the change in the gap (external gap − in-distribution gap, Δgap)
with its 95% interval (:func:`medfairx.metrics.external.gap_change`: the two test sets
bootstrapped independently). Both come from the checkpoint the trainer selected on
validation (strategy ``final``), thresholds from the training dataset's validation split.
Values are means over seeds; the intervals shown are the per-seed 95% bootstrap bounds
averaged over seeds (one seed: its own interval). ``external.json`` holds the method rows
of every section (the gaps and Δgap with its interval); ``results.csv`` the external rows,
``<gap>_change`` included.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

import pandas as pd

from medfairx.metrics.external import (
    EVAL_SET,
    EXTERNAL_STRATEGY,
    GAP_CHANGE,
    IN_DISTRIBUTION,
    MAIN_METRIC,
    evaluate_external,
    with_eval_set,
)

EXTERNAL_PAGE = "external.html"
EXTERNAL_JSON = "external.json"
_MAIN = MAIN_METRIC
_KEYS = ["dataset", "grouping", "method", "scope", "group"]


def _mean(frame: pd.DataFrame) -> pd.DataFrame:
    """Seed means of value and CI bounds (and the first note), keyed by dataset, grouping, method, scope, group."""
    if frame.empty:
        result: pd.DataFrame = pd.DataFrame(columns=[*_KEYS, "value", "ci_low", "ci_high", "n", "note"])
        return result
    grouped = frame.groupby(_KEYS, dropna=False)
    result = grouped[["value", "ci_low", "ci_high", "n"]].mean()
    result["note"] = grouped["note"].first() if "note" in frame.columns else None  # why a value is undefined
    flat: pd.DataFrame = result.reset_index()
    return flat


def _cell(table: pd.DataFrame, key: tuple[Any, ...]) -> dict[str, Any] | None:
    rows = table[(table[_KEYS] == pd.Series(key, index=_KEYS)).all(axis=1)] if len(table) else table
    if rows.empty:
        return None
    return cast(dict[str, Any], rows.iloc[0].to_dict())  # pandas-stubs types the keys as Hashable; they are column names


def external_tables(results: pd.DataFrame, external: pd.DataFrame) -> list[dict[str, Any]]:
    """One section per (training dataset, external set, grouping): method rows and per-group rows."""
    sections = []
    for (dataset, eval_set, grouping), ext in external.groupby(["dataset", EVAL_SET, "grouping"], sort=True):
        task = str(ext["task"].iloc[0])
        metric = _MAIN.get(task, "auc")
        gap = f"{metric}_gap"
        ind = results[(results["dataset"] == dataset) & (results["grouping"] == grouping)
                      & (results["strategy"] == EXTERNAL_STRATEGY) & results["metric"].isin([metric, gap])]
        id_mean, ext_mean = _mean(ind), _mean(ext[ext["metric"].isin([metric, gap])])
        change_mean = _mean(ext[ext["metric"] == GAP_CHANGE.format(gap=gap)])
        methods, groups = [], []
        for method in sorted(ext["method"].unique()):
            id_gap = _cell(id_mean, (dataset, grouping, method, "summary", ""))
            ext_gap = _cell(ext_mean, (dataset, grouping, method, "summary", ""))
            change = (ext_gap["value"] - id_gap["value"]) if id_gap and ext_gap else None
            interval = _cell(change_mean, (dataset, grouping, method, "summary", "")) if change is not None else None
            methods.append({"method": method, "id_overall": _cell(id_mean, (dataset, grouping, method, "overall", "")),
                            "ext_overall": _cell(ext_mean, (dataset, grouping, method, "overall", "")),
                            "id_gap": id_gap, "ext_gap": ext_gap, "change": change,
                            "change_low": interval["ci_low"] if interval else None,
                            "change_high": interval["ci_high"] if interval else None})
            names = ext_mean.loc[(ext_mean["method"] == method) & (ext_mean["scope"] == "group"), "group"]
            names = list(dict.fromkeys([*id_mean.loc[(id_mean["method"] == method) & (id_mean["scope"] == "group"),
                                                     "group"], *names]))
            for g in names:
                groups.append({"method": method, "group": g,
                               "id": _cell(id_mean, (dataset, grouping, method, "group", g)),
                               "ext": _cell(ext_mean, (dataset, grouping, method, "group", g))})
        sections.append({"dataset": dataset, "eval_set": eval_set, "grouping": grouping, "metric": metric,
                         "in_distribution": not ind.empty, "methods": methods, "groups": groups})
    return sections


def external_results(runs: Iterable[Any], *, n_boot: int = 1000, metrics: list[str] | None = None) -> pd.DataFrame:
    """The external rows of a report (:func:`medfairx.metrics.external.evaluate_external`)."""
    return evaluate_external(runs, n_boot=n_boot, metrics=metrics)


def _plain(value: Any) -> Any:
    """A JSON value: finite numbers as floats, NaN / missing as ``null``."""
    if value is None or isinstance(value, str):
        return value
    x = float(value)
    return x if math.isfinite(x) else None


def external_json(sections: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The method rows of every section, flat: gaps and Δgap with its interval."""
    out = []
    for s in sections:
        for m in s["methods"]:
            out.append({"dataset": s["dataset"], "eval_set": s["eval_set"], "grouping": s["grouping"],
                        "metric": s["metric"], "method": m["method"],
                        **{f"{side}_{what}": _plain(m[f"{side}_{what}"]["value"]) if m[f"{side}_{what}"] else None
                           for side in ("id", "ext") for what in ("overall", "gap")},
                        "gap_change": _plain(m["change"]), "gap_change_low": _plain(m["change_low"]),
                        "gap_change_high": _plain(m["change_high"])})
    return out


def write_external_report(external: pd.DataFrame, results: pd.DataFrame, out_dir: Path, *, suite: str) -> list[Path]:
    """``external.html``, ``external.json`` and the external rows of ``results.csv`` when ``external`` has rows.

    ``results.csv`` (when a reporter wrote it) is rewritten with an ``eval_set`` column:
    ``test`` on the in-distribution rows, ``external:<name>`` on the others.
    """
    if external.empty:
        return []
    from medfairx.report.render import (
        generated_now,
        make_environment,
        medfairx_version,
        render_page,
    )

    sections = external_tables(results, external)
    paths = [render_page(make_environment(), "external.html", out_dir / EXTERNAL_PAGE, suite=suite,
                         version=medfairx_version(), generated=generated_now(), sections=sections)]
    data = out_dir / EXTERNAL_JSON
    data.write_text(json.dumps(external_json(sections), indent=1) + "\n", encoding="utf-8")
    paths.append(data)
    csv = out_dir / "results.csv"
    if csv.exists():
        table = with_eval_set(pd.read_csv(csv))
        table = table[table[EVAL_SET] == IN_DISTRIBUTION]  # a rerun replaces the external rows
        pd.concat([table, external], ignore_index=True).to_csv(csv, index=False)
        paths.append(csv)
    return paths
