"""Synthetic results tables in the contract's long format, for tests and demos.

The values are fabricated (no training happens); they let the statistics and the
leaderboard be exercised without a run store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from medfairx.contracts import RESULT_COLUMNS

DEFAULT_EFFECTS: dict[str, float] = {"erm": 0.0, "groupdro": 0.02, "fairmix": 0.05, "oracle": 0.1}


def synthetic_results(
    *,
    suite: str = "demo",
    blocks: Sequence[tuple[str, str]] = (("ham", "sex"), ("ham", "age"), ("fitz", "skin"), ("ddi", "skin"), ("papila", "sex")),
    methods: Mapping[str, float] | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    strategies: Sequence[str] = ("overall", "worst_group"),
    groups: Sequence[str] = ("a", "b", "c"),
    task: str = "classification",
    noise: float = 0.005,
    random_state: int = 0,
) -> pd.DataFrame:
    """Build a fabricated long results table.

    Every method's utility is ``base + effect`` per block (plus small noise), and its worst
    group trails by a gap that shrinks with the effect, so a large effect wins on every metric.

    Args:
        suite: suite name.
        blocks: (dataset, grouping) pairs.
        methods: method name → effect size (bigger is better); default four methods with
            effects 0, 0.02, 0.05, 0.1 (a clear winner).
        seeds: seeds.
        strategies: model-selection strategies.
        groups: group labels of every grouping.
        task: ``"classification"`` (metrics auc, worst_group_auc, auc_gap, es_auc, ece) or
            ``"segmentation"`` (dice, worst_group_dice, dice_gap, es_dice, plus per-group
            dice_p10, tail_dice, fail_rate).
        noise: standard deviation of the seed noise.
        random_state: seed of the generator.

    Returns:
        A DataFrame with the columns of :data:`RESULT_COLUMNS`.
    """
    rng = np.random.default_rng(random_state)
    methods = dict(DEFAULT_EFFECTS if methods is None else methods)
    util = "auc" if task == "classification" else "dice"
    rows: list[dict[str, object]] = []

    def add(ds: str, gr: str, m: str, seed: int, strat: str, metric: str, scope: str, group: str,
            value: float, hib: bool, kind: str, n: int, prev: float) -> None:
        half = 0.02 + 0.01 * rng.random()
        rows.append({
            "suite": suite, "dataset": ds, "grouping": gr, "method": m, "seed": seed, "strategy": strat,
            "metric": metric, "scope": scope, "group": group, "value": float(value),
            "ci_low": float(value - half), "ci_high": float(value + half), "n": n,
            "prevalence": prev if task == "classification" else np.nan, "higher_is_better": hib,
            "kind": kind, "task": task, "threshold": 0.5 if task == "classification" else np.nan, "note": "",
            "delong_low": np.nan, "delong_high": np.nan,
        })

    for b, (ds, gr) in enumerate(blocks):
        base = 0.70 + 0.03 * b
        sizes = {g: 40 + 30 * i for i, g in enumerate(groups)}
        prevs = {g: round(0.2 + 0.1 * i, 2) for i, g in enumerate(groups)}
        total = sum(sizes.values())
        prev_all = sum(sizes[g] * prevs[g] for g in groups) / total
        for m, eff in methods.items():
            for seed in seeds:
                for s_i, strat in enumerate(strategies):
                    u = base + eff + rng.normal(0, noise) - 0.003 * s_i
                    gap = max(0.01, 0.12 - eff + rng.normal(0, noise))
                    gvals = {g: u + gap / 2 - gap * i / max(1, len(groups) - 1) for i, g in enumerate(groups)}
                    add(ds, gr, m, seed, strat, util, "overall", "", u, True, "performance", total, prev_all)
                    for g in groups:
                        add(ds, gr, m, seed, strat, util, "group", g, gvals[g], True, "performance", sizes[g], prevs[g])
                        if task == "segmentation":
                            add(ds, gr, m, seed, strat, "dice_p10", "group", g, gvals[g] - 0.2, True, "performance", sizes[g], np.nan)
                            add(ds, gr, m, seed, strat, "tail_dice", "group", g, gvals[g] - 0.25, True, "performance", sizes[g], np.nan)
                            add(ds, gr, m, seed, strat, "fail_rate", "group", g, 0.3 - gvals[g] / 4, False, "performance", sizes[g], np.nan)
                    worst, spread = min(gvals.values()), max(gvals.values()) - min(gvals.values())
                    es = u / (1 + np.mean([abs(u - v) for v in gvals.values()]))
                    add(ds, gr, m, seed, strat, f"worst_group_{util}", "summary", "", worst, True, "fairness", total, prev_all)
                    add(ds, gr, m, seed, strat, f"{util}_gap", "summary", "", spread, False, "fairness", total, prev_all)
                    add(ds, gr, m, seed, strat, f"es_{util}", "summary", "", es, True, "fairness", total, prev_all)
                    if task == "classification":
                        add(ds, gr, m, seed, strat, "ece", "overall", "", 0.1 - eff / 2 + rng.normal(0, noise), False,
                            "calibration", total, prev_all)
    result: pd.DataFrame = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    return result


def synthetic_failures(rows: Sequence[tuple[str, str, str, int, str, str]] = ()) -> pd.DataFrame:
    """A failures table (method, dataset, grouping, seed, error_type, error_message)."""
    result: pd.DataFrame = pd.DataFrame(list(rows), columns=["method", "dataset", "grouping", "seed", "error_type", "error_message"])
    return result
