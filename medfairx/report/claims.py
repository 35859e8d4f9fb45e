"""Published claims about methods, checked against a suite's results.

A :class:`Claim` (:class:`~medfairx.specs.ClaimSpec`, registered by the method's plugin through
the ``register_claims`` hook) is plain data: the method, the paper's wording and the
:class:`Comparison` s that make it up (one metric of the method against one baseline, in
a claimed direction). :func:`evaluate_claims` checks every claim on the results table
(strategy ``final``, seeds averaged by :func:`medfairx.stats.ranking.seed_means`: mean of
``value``, ``ci_low`` and ``ci_high``) in every (dataset, grouping) block where all of the
claim's methods have results, and :func:`claims_context` formats the outcome for the
leaderboard index.

Verdict rule (:data:`VERDICT_RULE`): a comparison *holds* when it goes the claimed way and
the two 95% CIs do not overlap, *fails* when it goes the other way and the CIs do not
overlap, and is *unclear* otherwise. A "does not go down" comparison holds unless the
method's value dropped below the baseline's with non-overlapping CIs (then it fails). A
block is ``supported`` when every comparison holds, ``not supported`` when one fails and
``inconclusive`` otherwise. The CIs are per-method bootstrap CIs averaged across seeds,
not CIs of paired differences, so the rule is conservative.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import pandas as pd

from medfairx.metrics.delong import DEFAULT_ALPHA, DEFAULT_POWER, min_detectable_gap
from medfairx.report.render import fmt_num
from medfairx.specs import CLAIM_DIRECTIONS, CLAIM_GROUPS, ClaimComparison, ClaimSpec
from medfairx.stats.ranking import seed_means

STRATEGY = "final"
UP, DOWN, NOT_DOWN = CLAIM_DIRECTIONS
DIRECTIONS = CLAIM_DIRECTIONS
EVERY, MINORITY, DOMINANT = CLAIM_GROUPS
SELECTORS = CLAIM_GROUPS

HOLDS, FAILS, UNCLEAR = "holds", "fails", "unclear"
SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, NOT_EVALUATED = "supported", "not supported", "inconclusive", "not evaluated"

VERDICT_RULE = (
    "A comparison holds when the method's value moves in the claimed direction and the two 95% CIs do not "
    "overlap; it fails when it moves the other way and the CIs do not overlap; otherwise it is unclear. "
    "A \"does not go down\" comparison holds unless the method's value is below the baseline's with "
    "non-overlapping CIs (then it fails). A block is supported when every comparison holds, not supported "
    "when at least one fails, and inconclusive otherwise. The CIs are per-method bootstrap CIs averaged "
    "across seeds, not CIs of paired differences, so this rule is conservative: a real but small "
    "improvement can come out inconclusive."
)
MIN_GAP_NOTE = ("minimum detectable AUC gap between {a} (n={na}) and {b} (n={nb}): {gap} "
                "(two-sided alpha {alpha}, power {power}, Hanley-McNeil variance)")
GROUP_RULE = (
    "Minority group: the group with the smallest test-set n in the block; dominant group: the largest "
    "(ties broken by group name). Only blocks where every method of the claim has results are checked."
)


Comparison = ClaimComparison
"""One comparison of a claim (:class:`medfairx.specs.ClaimComparison`)."""
Claim = ClaimSpec
"""A claim (:class:`medfairx.specs.ClaimSpec`), registered by its method's plugin."""


def registered_claims(host: Any = None) -> tuple[Claim, ...]:
    """Every claim registered through ``register_claims`` (by name).

    Args:
        host: the plugin host (default: the process-wide one).
    """
    if host is None:
        from medfairx.plugins import get_host

        host = get_host()
    return tuple(host.registry("claims").items())


def __getattr__(name: str) -> Any:  # PEP 562: CLAIMS reads the registry when first asked for
    if name == "CLAIMS":
        return registered_claims()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- evaluation -------------------------------------------------------------------------


@dataclass(frozen=True)
class Stat:
    """A seed-averaged value with its (seed-averaged) 95% CI."""

    mean: float
    ci_low: float
    ci_high: float

    @property
    def has_ci(self) -> bool:
        return math.isfinite(self.ci_low) and math.isfinite(self.ci_high)

    @property
    def text(self) -> str:
        ci = f" [{fmt_num(self.ci_low)}, {fmt_num(self.ci_high)}]" if self.has_ci else " [no CI]"
        return fmt_num(self.mean) + ci


@dataclass(frozen=True)
class CheckedComparison:
    """One comparison in one block (for one group where the scope is ``group``)."""

    comparison: Comparison
    group: str
    method: Stat
    baseline: Stat
    outcome: str

    @property
    def what(self) -> str:
        c = self.comparison
        return f"{c.label or c.metric} ({self.group})" if self.group else (c.label or c.metric)

    @property
    def claimed(self) -> str:
        c = self.comparison
        word = {UP: "higher than", DOWN: "lower than", NOT_DOWN: "not lower than"}[c.direction]
        return f"{word} {c.baseline}"


@dataclass(frozen=True)
class BlockVerdict:
    """A claim's verdict in one (dataset, grouping) block."""

    dataset: str
    grouping: str
    verdict: str
    checks: tuple[CheckedComparison, ...] = ()
    reason: str = ""
    #: for an inconclusive verdict: the smallest AUC gap the block's group sizes can detect.
    power: str = ""


@dataclass(frozen=True)
class ClaimResult:
    """A claim checked on every block that has all its methods."""

    claim: Claim
    blocks: tuple[BlockVerdict, ...] = ()
    reason: str = ""
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def detail(self) -> str:
        """Why the claim was not evaluated, or the verdict counts over blocks."""
        if self.reason:
            return f"({self.reason})"
        n = len(self.blocks)
        parts = [f"{self.counts.get(v, 0)} {v}" for v in (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE)]
        if self.counts.get(NOT_EVALUATED):
            parts.append(f"{self.counts[NOT_EVALUATED]} {NOT_EVALUATED}")
        return f"of {n} block(s): " + ", ".join(parts)

    @property
    def overall(self) -> str:
        """One-line summary over blocks, e.g. ``supported — of 2 block(s): 2 supported, ...``."""
        if self.reason:
            return f"{NOT_EVALUATED} {self.detail}"
        return f"{self.overall_verdict} — {self.detail}"

    @property
    def overall_verdict(self) -> str:
        """``supported`` / ``not supported`` / ``inconclusive`` if every evaluated block agrees, else ``mixed``."""
        if self.reason:
            return NOT_EVALUATED
        seen = {b.verdict for b in self.blocks} - {NOT_EVALUATED}
        if not seen:
            return NOT_EVALUATED
        return seen.pop() if len(seen) == 1 else "mixed"


def compare(method: Stat, baseline: Stat, direction: str) -> str:
    """``holds`` / ``fails`` / ``unclear`` for one comparison (see the module docstring)."""
    above = method.has_ci and baseline.has_ci and method.ci_low > baseline.ci_high
    below = method.has_ci and baseline.has_ci and method.ci_high < baseline.ci_low
    if direction == UP:
        return HOLDS if above else FAILS if below else UNCLEAR
    if direction == DOWN:
        return HOLDS if below else FAILS if above else UNCLEAR
    if below:
        return FAILS
    return HOLDS if (method.has_ci and baseline.has_ci) or method.mean >= baseline.mean else UNCLEAR


def block_verdict(outcomes: Iterable[str]) -> str:
    """Combine comparison outcomes into a block verdict."""
    outcomes = list(outcomes)
    if any(o == FAILS for o in outcomes):
        return NOT_SUPPORTED
    if outcomes and all(o == HOLDS for o in outcomes):
        return SUPPORTED
    return INCONCLUSIVE


def _stat(row: Mapping[str, Any] | None) -> Stat | None:
    if row is None or not _finite(row["mean"]):
        return None
    return Stat(float(row["mean"]), _float(row["ci_low"]), _float(row["ci_high"]))


def _finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _float(x: Any) -> float:
    return float(x) if _finite(x) else math.nan


def _pick_groups(block: pd.DataFrame, c: Comparison, claim: Claim) -> list[str]:
    rows = block[(block["metric"] == c.metric) & (block["scope"] == "group")
                 & block["method"].isin([claim.method, c.baseline])]
    if rows.empty:
        return []
    sizes = rows.groupby("group")["n"].max()
    names = sorted(map(str, sizes.index))
    if c.groups == EVERY:
        return names
    if len(names) < 2:
        return []
    n = {g: _float(sizes[g]) for g in names}
    if any(math.isnan(v) for v in n.values()):
        return []
    order = sorted(names, key=lambda g: (n[g], g))
    if c.groups == MINORITY:
        return [order[0]]
    return [min(names, key=lambda g: (-n[g], g))]


def _check_block(block: pd.DataFrame, claim: Claim) -> tuple[list[CheckedComparison], str]:
    records = cast(list[dict[str, Any]], block.to_dict("records"))  # pandas-stubs types record keys as Hashable; these are column names
    look = {(r["method"], r["metric"], r["scope"], r["group"]): r for r in records}
    checks: list[CheckedComparison] = []
    for c in claim.comparisons:
        groups = _pick_groups(block, c, claim) if c.scope == "group" else [""]
        if not groups:
            need = "values for two or more groups with a known n" if c.groups in (MINORITY, DOMINANT) else "per-group values"
            return checks, f"no {c.metric} {need} for {claim.method} and {c.baseline}"
        for g in groups:
            a, b = _stat(look.get((claim.method, c.metric, c.scope, g))), _stat(look.get((c.baseline, c.metric, c.scope, g)))
            if a is None or b is None:
                who = claim.method if a is None else c.baseline
                where = f" of group {g}" if g else ""
                return checks, f"no {c.metric}{where} for {who}"
            checks.append(CheckedComparison(c, g, a, b, compare(a, b, c.direction)))
    return checks, ""


def min_detectable_note(block: pd.DataFrame, method: str) -> str:
    """The minimum detectable AUC gap between the smallest and the largest group of a block.

    Two-sided test of two independent AUCs at :data:`~medfairx.metrics.delong.DEFAULT_ALPHA`
    with power :data:`~medfairx.metrics.delong.DEFAULT_POWER`, Hanley-McNeil variance at each
    group's observed (seed-mean) AUC of ``method`` and its test positives / negatives;
    ``""`` without two groups with an AUC, ``n`` and prevalence.
    """
    rows = block[(block["method"].astype(str) == method) & (block["metric"] == "auc") & (block["scope"] == "group")]
    sizes = []
    for r in rows.to_dict("records"):
        auc, n, prev = _float(r["mean"]), _float(r.get("n")), _float(r.get("prevalence"))
        if not any(math.isnan(v) for v in (auc, n, prev)):
            pos = int(round(n * prev))
            sizes.append((int(n), str(r["group"]), auc, pos, int(n) - pos))
    if len(sizes) < 2:
        return ""
    sizes.sort()
    (na, a, auc_a, pa, qa), (nb, b, auc_b, pb, qb) = sizes[0], sizes[-1]
    gap = min_detectable_gap(auc_a, pa, qa, auc_b, pb, qb)
    if math.isnan(gap):
        return ""
    return (MIN_GAP_NOTE.format(gap=fmt_num(gap), a=a, na=na, b=b, nb=nb, alpha=DEFAULT_ALPHA,
                                power=DEFAULT_POWER))


def evaluate_claim(claim: Claim, agg: pd.DataFrame, *, strategy: str = STRATEGY) -> ClaimResult:
    """Check one claim on seed-averaged results (the output of ``seed_means``)."""
    sub = agg[agg["strategy"].astype(str) == strategy]
    present = set(sub["method"].astype(str))
    missing = [m for m in claim.methods if m not in present]
    if missing:
        return ClaimResult(claim, reason="method " + ", ".join(missing) + (" has" if len(missing) == 1 else " have")
                           + " no results")
    per_block = sub.groupby(["dataset", "grouping"], sort=True)
    blocks: list[BlockVerdict] = []
    for (ds, gr), block in per_block:
        if not set(claim.methods) <= set(block["method"].astype(str)):
            continue
        checks, why = _check_block(block, claim)
        if why:
            blocks.append(BlockVerdict(str(ds), str(gr), NOT_EVALUATED, reason=why))
        else:
            verdict = block_verdict(c.outcome for c in checks)
            power = min_detectable_note(block, claim.method) if verdict == INCONCLUSIVE else ""
            blocks.append(BlockVerdict(str(ds), str(gr), verdict, tuple(checks), power=power))
    if not blocks:
        return ClaimResult(claim, reason="no dataset × grouping block has results of all of " + ", ".join(claim.methods))
    counts: dict[str, int] = {}
    for b in blocks:
        counts[b.verdict] = counts.get(b.verdict, 0) + 1
    return ClaimResult(claim, tuple(blocks), counts=counts)


def evaluate_claims(results: pd.DataFrame, *, claims: Sequence[Claim] | None = None, strategy: str = STRATEGY,
                    aggregated: pd.DataFrame | None = None) -> list[ClaimResult]:
    """Check every claim on a long results table.

    Args:
        results: the long results table (docs/CONTRACTS.md).
        claims: the claims (default: every registered claim, :func:`registered_claims`).
        strategy: the model-selection strategy checked (default ``final``).
        aggregated: ``seed_means(results)`` when already computed.
    """
    agg = seed_means(results) if aggregated is None else aggregated
    return [evaluate_claim(c, agg, strategy=strategy) for c in (registered_claims() if claims is None else claims)]


# --- page context -----------------------------------------------------------------------


def _css(verdict: str) -> str:
    return {SUPPORTED: "tag", NOT_SUPPORTED: "tag warn", INCONCLUSIVE: "tag", "mixed": "tag warn"}.get(verdict, "muted")


def claims_context(results: Iterable[ClaimResult]) -> dict[str, Any]:
    """The template context of the index's Claims section."""
    items = []
    for r in results:
        items.append({
            "name": r.claim.label, "method": r.claim.method, "text": r.claim.text,
            "anchor": f"claim-{r.claim.key}", "overall": r.overall, "detail": r.detail, "verdict": r.overall_verdict,
            "css": _css(r.overall_verdict),
            "blocks": [{
                "dataset": b.dataset, "grouping": b.grouping, "verdict": b.verdict, "css": _css(b.verdict),
                "reason": b.reason, "power": b.power,
                "rows": [{"what": c.what, "claimed": c.claimed, "method": c.method.text, "baseline": c.baseline.text,
                          "baseline_name": c.comparison.baseline, "outcome": c.outcome,
                          "bad": c.outcome == FAILS} for c in b.checks],
            } for b in r.blocks],
        })
    return {"strategy": STRATEGY, "rule": VERDICT_RULE, "group_rule": GROUP_RULE, "claims": items}


__all__ = [  # noqa: F822 - CLAIMS is served by the module's __getattr__ (PEP 562), from the registry
    "CLAIMS", "Claim", "ClaimResult", "Comparison", "VERDICT_RULE", "block_verdict", "claims_context",
    "compare", "evaluate_claim", "evaluate_claims", "min_detectable_note", "registered_claims",
]
