"""The search page of a leaderboard: budget, chosen configurations, tuning sensitivity, and
"defaults" against "tuned" ranks.

Written when the run store holds a hyper-parameter search (``runs/<suite>/search/``, see
:mod:`medfairx.runner.search`). Per method: the budget (trials, device-hours from the
trials' run durations), the configuration each selection strategy chose on validation,
and the spread (min / median / max) across trials of the validation objective and of the
test metric of each trial's kept checkpoint (how sensitive the method is to tuning; the
test values are shown, never used to choose). The rank view puts the average ranks of the
defaults (the suite's own runs) beside those of the tuned runs (each strategy's chosen
configuration on the suite's seeds, scored under that strategy), each with its Friedman
test and, where significant, Nemenyi's critical difference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medfairx.metrics.thresholds import DEFAULT_POLICY
from medfairx.runner.search import TRIALS_DIR, TUNED_DIR, read_selection, search_root

SEARCH_PAGE = "search.html"
SEARCH_CSV = "search.csv"

__all__ = ["REFERENCE_METHOD", "SEARCH_CSV", "SEARCH_PAGE", "rank_views", "search_tables", "trial_test_values",
           "tuned_results", "versus_reference", "write_search_page"]


def _spread(values: list[float]) -> dict[str, float]:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if not v.size:
        return {"min": float("nan"), "median": float("nan"), "max": float("nan")}
    return {"min": float(v.min()), "median": float(np.median(v)), "max": float(v.max())}


def _metric(task: str) -> str:
    return "auc" if task == "classification" else "dice"


def trial_test_values(store_root: Path) -> dict[str, float]:
    """Run id → overall test metric (AUC / Dice) of each trial's kept checkpoint (for the spread only)."""
    from medfairx.metrics.evaluate import evaluate_run
    from medfairx.store import iter_runs

    out: dict[str, float] = {}
    for run in iter_runs(search_root(store_root) / TRIALS_DIR):
        if not run.ok:
            continue
        table = evaluate_run(run, {"final": None}, [_metric(run.task)], 0, 0, DEFAULT_POLICY)
        rows = table[(table["scope"] == "overall")]
        out[str(run.record["run_id"])] = float(rows["value"].iloc[0]) if len(rows) else float("nan")
    return out


def search_tables(store_root: Path) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """``(budget, choices)``: one row per searched unit, one per (unit, grouping, strategy)."""
    selection = read_selection(store_root)
    if selection is None:
        return None
    tests = trial_test_values(store_root)
    budget, choices = [], []
    for u in selection["units"]:
        done = [t for t in u["trials"] if t["state"] == "COMPLETE"]
        val = _spread([t["value"] for t in done])
        test = _spread([tests.get(t["run_id"], float("nan")) for t in done])
        budget.append({
            "method": u["method"], "dataset": u["dataset"], "grouping": u["train_grouping"] or "all",
            "trials": len(u["trials"]), "complete": len(done),
            "device_hours": sum(t.get("duration_s") or 0.0 for t in u["trials"]) / 3600.0,
            **{f"val_{k}": v for k, v in val.items()}, **{f"test_{k}": v for k, v in test.items()},
        })
        for g, per in u["choices"].items():
            for strategy, c in per.items():
                choices.append({"method": u["method"], "dataset": u["dataset"], "grouping": g, "strategy": strategy,
                                "trial": c["trial"], "params": ", ".join(f"{k}={_short(v)}" for k, v in c["params"].items())})
    return pd.DataFrame(budget), pd.DataFrame(choices)


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def tuned_results(store_root: Path, strategies: list[str], n_boot: int = 0) -> pd.DataFrame:
    """The results table of the tuned runs: for every (method, dataset, grouping, strategy),
    the runs of the configuration that strategy chose, scored under it."""
    from medfairx.contracts import RESULT_COLUMNS
    from medfairx.metrics.evaluate import evaluate_run, load_strategy
    from medfairx.store import iter_runs

    selection = read_selection(store_root) or {"units": []}
    wanted: dict[str, set[tuple[str, str]]] = {}  # run id -> {(grouping, strategy)}
    for u in selection["units"]:
        for g, per in u["choices"].items():
            for strategy, c in per.items():
                for run_id in c.get("run_ids", []):
                    wanted.setdefault(run_id, set()).add((g, strategy))
    fns = {n: load_strategy(n) for n in strategies}
    tables = []
    for run in iter_runs(search_root(store_root) / TUNED_DIR):
        keep = wanted.get(str(run.record.get("run_id")))
        if not run.ok or not keep:
            continue
        table = evaluate_run(run, fns, None, n_boot, 0, DEFAULT_POLICY)
        mask = [(g, s) in keep for g, s in zip(table["grouping"], table["strategy"], strict=False)]
        tables.append(table[mask])
    result: pd.DataFrame = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=list(RESULT_COLUMNS))
    return result


#: The method every other is compared with in the rank views (MEDFAIR's question: does any
#: method beat ERM once both are tuned?).
REFERENCE_METHOD = "erm"


def versus_reference(ranks: dict[str, float], cd: float | None, friedman_p: float | None,
                     reference: str = REFERENCE_METHOD, alpha: float = 0.05) -> dict[str, Any] | None:
    """Which methods' average ranks differ from ``reference``'s by more than Nemenyi's CD.

    Returns ``None`` when ``reference`` is not ranked or there is no test (too few blocks);
    ``{"reference", "better", "worse", "why"}`` otherwise. With a Friedman p at or above
    ``alpha`` no pairwise test is made and both lists are empty (``why`` says so).
    """
    if reference not in ranks or friedman_p is None or not np.isfinite(friedman_p):
        return None
    if friedman_p >= alpha or cd is None:
        return {"reference": reference, "better": [], "worse": [],
                "why": f"Friedman p = {friedman_p:.3g} >= {alpha:g}: no method differs significantly"}
    base = ranks[reference]
    better = [m for m, r in ranks.items() if m != reference and base - r > cd]
    worse = [m for m, r in ranks.items() if m != reference and r - base > cd]
    return {"reference": reference, "better": better, "worse": worse,
            "why": f"average ranks more than CD = {cd:.2f} apart (Nemenyi, alpha = {alpha:g})"}


def rank_views(defaults: pd.DataFrame, tuned: pd.DataFrame, metric: str, strategies: list[str]) -> list[dict[str, Any]]:
    """Per strategy: average ranks of the defaults and of the tuned runs, each with Friedman /
    Nemenyi and the methods significantly better or worse than :data:`REFERENCE_METHOD`."""
    from medfairx.stats.cd import compare_methods

    out = []
    for strategy in strategies:
        row: dict[str, Any] = {"strategy": strategy, "metric": metric}
        for name, results in (("defaults", defaults), ("tuned", tuned)):
            sub = results[(results["metric"] == metric) & (results["strategy"] == strategy)]
            if sub.empty:
                row[name] = None
                continue
            cmp = compare_methods(sub, metric, strategy=strategy)
            p = None if cmp.friedman is None else float(cmp.friedman.pvalue)
            ranks = {str(m): float(r) for m, r in cmp.ranks.items()}
            row[name] = {
                "ranks": list(ranks.items()),
                "n_blocks": cmp.blocks.n_blocks,
                "friedman_p": p,
                "cd": cmp.cd, "reason": cmp.reason,
                "versus": versus_reference(ranks, cmp.cd, p),
            }
        out.append(row)
    return out


def write_search_page(store_root: Path, out_dir: Path, results: pd.DataFrame, *, suite: str) -> list[Path]:
    """``search.html`` and ``search.csv`` in ``out_dir`` when the store holds a search; else nothing."""
    tables = search_tables(store_root)
    if tables is None:
        return []
    from medfairx.report.render import make_environment, render_page

    budget, choices = tables
    selection = read_selection(store_root) or {}
    strategies = list(selection.get("strategies") or [])
    tasks = {u["task"] for u in selection.get("units", [])}
    metric = "auc" if "classification" in tasks or not tasks else "dice"
    tuned = tuned_results(store_root, strategies)
    views = rank_views(results, tuned, metric, strategies) if len(results) and len(tuned) else []
    csv = out_dir / SEARCH_CSV
    budget.to_csv(csv, index=False)
    from medfairx.report.render import generated_now, medfairx_version

    page = render_page(make_environment(), "search.html", out_dir / SEARCH_PAGE, suite=suite,
                       version=medfairx_version(), generated=generated_now(),
                       budget=budget.to_dict("records"), choices=choices.to_dict("records"), views=views,
                       selection=selection.get("search", {}))
    return [page, csv]
