"""Chest X-ray helpers shared by the CheXpert and MIMIC-CXR adapters: the CheXpert-labeller
coding, the uncertain-label policy and the race grouping rule."""

from __future__ import annotations

import pandas as pd

from medfairx.data.adapters._tabular import MISSING, Report, Table, choose, codes

FINDINGS: tuple[str, ...] = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
    "Fracture", "Support Devices",
)
DEFAULT_FINDING = "No Finding"
"""MEDFAIR's CheXpert/MIMIC-CXR task; ``"Pleural Effusion"`` is the usual disease alternative."""
POLICIES: tuple[str, ...] = ("u_ignore", "u_zeros", "u_ones")
LABELLER = {"1.0": "positive", "1": "positive", "0.0": "negative", "0": "negative", "-1.0": "uncertain", "-1": "uncertain"}
UNKNOWN_RACE = frozenset({
    "", "UNKNOWN", "UNABLE TO OBTAIN", "PATIENT DECLINED TO ANSWER", "PATIENT REFUSED", "DECLINED",
    "UNKNOWN/NOT SPECIFIED", "NOT SPECIFIED",
})
RACE_GROUPS: tuple[str, ...] = ("White", "Black", "Asian", "Hispanic", "Other")


def finding_labels(table: Table, finding: str, policy: str, report: Report) -> pd.Series:
    """``"positive"`` / ``"negative"`` per row of one observation column, or ``None`` for rows
    the policy drops.

    Coding (CheXpert labeller): ``1.0`` positive, ``0.0`` negative, ``-1.0`` uncertain,
    empty = not mentioned, read as negative. Uncertain: ``u_ignore`` drops the row (counted
    in ``report.excluded``), ``u_zeros`` reads it as negative, ``u_ones`` as positive.
    """
    choose(policy, POLICIES, "option uncertain")
    values: pd.Series = codes(table, finding, LABELLER, report, attribute=f"finding {finding}")
    not_mentioned = table.frame[finding].eq("")
    values = values.where(~not_mentioned, "negative")
    uncertain = values.eq("uncertain")
    if policy == "u_ignore":
        report.exclude(f"uncertain {finding!r} (u_ignore)", int(uncertain.sum()))
        values = values.where(~uncertain, None)
    else:
        values = values.where(~uncertain, "negative" if policy == "u_zeros" else "positive")
    bad = values.eq(MISSING)
    if bad.any():
        report.exclude(f"{finding!r} not a labeller code", int(bad.sum()))
        values = values.where(~bad, None)
    report.notes.append(
        f"label: {finding!r}, empty = not mentioned = negative, uncertain policy {policy}: "
        f"{int(uncertain.sum())} uncertain rows"
    )
    return values


def race_group(value: str) -> str:
    """White / Black / Asian / Hispanic / Other, or ``"unknown"`` (declined, unknown, empty).

    Substring rule (upper case): WHITE, BLACK, ASIAN, then HISPANIC/LATINO (but not
    NON-HISPANIC), else Other. ``"White, non-Hispanic"`` is White; ``"HISPANIC/LATINO -
    PUERTO RICAN"`` is Hispanic.
    """
    v = value.strip().upper()
    if v in UNKNOWN_RACE:
        return MISSING
    for key, group in (("WHITE", "White"), ("BLACK", "Black"), ("ASIAN", "Asian")):
        if key in v:
            return group
    if ("HISPANIC" in v or "LATINO" in v) and "NON-HISPANIC" not in v and "NON HISPANIC" not in v:
        return "Hispanic"
    return "Other"


def race_columns(published: pd.Series, report: Report) -> pd.DataFrame:
    """``race`` (as published), ``race_group`` and ``race_binary`` (White / non-White)."""
    groups = published.map(race_group)
    binary = groups.map(lambda g: MISSING if g == MISSING else ("White" if g == "White" else "non-White"))
    report.missing_values["race"] = int(groups.eq(MISSING).sum())
    result: pd.DataFrame = pd.DataFrame(
        {"race": published.where(published.ne(""), MISSING), "race_group": groups, "race_binary": binary},
        index=published.index,
    )
    return result
