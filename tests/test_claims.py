"""Paper claims checked on hand-built results tables, the Claims section and the F1 metric."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from medfairx.metrics.functions import METRICS
from medfairx.report.claims import (
    CLAIMS,
    DOWN,
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    NOT_DOWN,
    NOT_EVALUATED,
    NOT_SUPPORTED,
    SUPPORTED,
    UNCLEAR,
    UP,
    Stat,
    block_verdict,
    claims_context,
    compare,
    evaluate_claims,
)
from medfairx.report.leaderboard import build_leaderboard
from medfairx.report.sample import RESULT_COLUMNS

HIB = {"auc": True, "worst_group_auc": True, "auc_gap": False, "f1": True, "worst_group_dice": True,
       "worst_group_tail_dice": True}


def _row(ds: str, gr: str, method: str, metric: str, scope: str, group: str, value: float, half: float = 0.01,
         *, n: int = 100, seed: int = 0, strategy: str = "final") -> dict:
    return {"suite": "t", "dataset": ds, "grouping": gr, "method": method, "seed": seed, "strategy": strategy,
            "metric": metric, "scope": scope, "group": group, "value": value, "ci_low": value - half,
            "ci_high": value + half, "n": n, "prevalence": 0.3, "higher_is_better": HIB[metric],
            "kind": "performance", "task": "classification", "threshold": 0.5}


def _fairdi_block(ds: str, gr: str, vals: dict[str, tuple[float, float, float]], half: float = 0.01) -> list[dict]:
    """``vals``: method -> (auc, worst_group_auc, auc_gap)."""
    rows = []
    for m, (auc, worst, gap) in vals.items():
        rows += [_row(ds, gr, m, "auc", "overall", "", auc, half), _row(ds, gr, m, "worst_group_auc", "summary", "", worst, half),
                 _row(ds, gr, m, "auc_gap", "summary", "", gap, half)]
    return rows


def _group_block(ds: str, gr: str, metric: str, vals: dict[str, dict[str, float]], sizes: dict[str, int],
                 half: float = 0.01) -> list[dict]:
    return [_row(ds, gr, m, metric, "group", g, v, half, n=sizes[g]) for m, gv in vals.items() for g, v in gv.items()]


def _table() -> pd.DataFrame:
    rows: list[dict] = []
    # FairDi. Block A: everything better with separated CIs -> supported.
    rows += _fairdi_block("dsA", "sex", {"fairdi": (0.90, 0.85, 0.05), "fis": (0.85, 0.78, 0.10), "erm": (0.84, 0.76, 0.12)})
    # Block B: the gap is larger than ERM's with separated CIs -> not supported.
    rows += _fairdi_block("dsB", "age", {"fairdi": (0.90, 0.85, 0.20), "fis": (0.85, 0.78, 0.10), "erm": (0.84, 0.76, 0.12)})
    # Block C: right directions but overall AUC CIs overlap with FIS -> inconclusive.
    rows += _fairdi_block("dsC", "sex", {"fairdi": (0.86, 0.85, 0.05), "fis": (0.85, 0.78, 0.10), "erm": (0.80, 0.76, 0.12)})
    # Block D: FIS missing -> block skipped.
    rows += _fairdi_block("dsD", "sex", {"fairdi": (0.90, 0.85, 0.05), "erm": (0.84, 0.76, 0.12)})
    # A non-final strategy that would flip block A is ignored.
    rows += [_row("dsA", "sex", "fairdi", "auc", "overall", "", 0.10, strategy="overall")]

    # QP-Net: groups maj (n=500, dominant) and mino (n=50, minority).
    sizes = {"maj": 500, "mino": 50}
    # A: minority up (separated); dominant down 0.005 with overlapping CIs -> supported.
    rows += _group_block("dsA", "sex", "auc", {"qpnet": {"maj": 0.895, "mino": 0.80}, "erm": {"maj": 0.90, "mino": 0.70}}, sizes)
    # B: minority up; dominant drops beyond CI overlap -> not supported.
    rows += _group_block("dsB", "age", "auc", {"qpnet": {"maj": 0.80, "mino": 0.80}, "erm": {"maj": 0.90, "mino": 0.70}}, sizes)
    # C: minority up only inside CI overlap -> inconclusive.
    rows += _group_block("dsC", "sex", "auc", {"qpnet": {"maj": 0.90, "mino": 0.71}, "erm": {"maj": 0.90, "mino": 0.70}}, sizes)
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def _by_key(table: pd.DataFrame) -> dict:
    return {r.claim.key: r for r in evaluate_claims(table)}


def _verdicts(result) -> dict[tuple[str, str], str]:
    return {(b.dataset, b.grouping): b.verdict for b in result.blocks}


def test_compare_rule() -> None:
    a, b = Stat(0.9, 0.88, 0.92), Stat(0.8, 0.78, 0.82)
    overlap = Stat(0.81, 0.79, 0.83)
    assert compare(a, b, UP) == HOLDS and compare(b, a, UP) == FAILS and compare(overlap, b, UP) == UNCLEAR
    assert compare(b, a, DOWN) == HOLDS and compare(a, b, DOWN) == FAILS and compare(b, overlap, DOWN) == UNCLEAR
    assert compare(a, b, NOT_DOWN) == HOLDS and compare(b, overlap, NOT_DOWN) == HOLDS  # drop within overlap
    assert compare(b, a, NOT_DOWN) == FAILS
    touching = Stat(0.84, 0.82, 0.86)  # touches b's upper bound: overlap, not separation
    assert compare(touching, b, UP) == UNCLEAR
    no_ci = Stat(0.9, math.nan, math.nan)
    assert compare(no_ci, b, UP) == UNCLEAR and compare(no_ci, b, NOT_DOWN) == HOLDS
    assert compare(Stat(0.7, math.nan, math.nan), b, NOT_DOWN) == UNCLEAR
    assert block_verdict([HOLDS, HOLDS]) == SUPPORTED
    assert block_verdict([HOLDS, UNCLEAR]) == INCONCLUSIVE
    assert block_verdict([HOLDS, UNCLEAR, FAILS]) == NOT_SUPPORTED
    assert block_verdict([]) == INCONCLUSIVE


def test_claims_are_declarative() -> None:
    assert [c.method for c in CLAIMS] == ["fairdi", "fairdro", "qpnet", "spare"]
    fairdi = CLAIMS[0]
    assert fairdi.methods == ("fairdi", "fis", "erm")
    assert {(c.metric, c.baseline, c.direction) for c in fairdi.comparisons} == {
        (m, b, d) for b in ("fis", "erm") for m, d in (("auc", UP), ("worst_group_auc", UP), ("auc_gap", DOWN))}


def test_fairdi_supported_not_supported_inconclusive() -> None:
    r = _by_key(_table())["fairdi"]
    assert _verdicts(r) == {("dsA", "sex"): SUPPORTED, ("dsB", "age"): NOT_SUPPORTED, ("dsC", "sex"): INCONCLUSIVE}
    a = next(b for b in r.blocks if b.dataset == "dsA")
    assert len(a.checks) == 6 and all(c.outcome == HOLDS for c in a.checks)
    b = next(b for b in r.blocks if b.dataset == "dsB")
    failed = [(c.comparison.metric, c.comparison.baseline) for c in b.checks if c.outcome == FAILS]
    assert failed == [("auc_gap", "fis"), ("auc_gap", "erm")]
    c = next(b for b in r.blocks if b.dataset == "dsC")
    unclear = [(c.comparison.metric, c.comparison.baseline) for c in c.checks if c.outcome == UNCLEAR]
    assert unclear == [("auc", "fis")]
    assert r.overall_verdict == "mixed"
    assert r.overall == "mixed — of 3 block(s): 1 supported, 1 not supported, 1 inconclusive"


def test_qpnet_minority_and_dominant_groups() -> None:
    r = _by_key(_table())["qpnet"]
    assert _verdicts(r) == {("dsA", "sex"): SUPPORTED, ("dsB", "age"): NOT_SUPPORTED, ("dsC", "sex"): INCONCLUSIVE}
    a = next(b for b in r.blocks if b.dataset == "dsA")
    assert [(c.group, c.comparison.direction, c.outcome) for c in a.checks] == [("mino", UP, HOLDS), ("maj", NOT_DOWN, HOLDS)]
    assert a.checks[1].method.text == "0.895 [0.885, 0.905]" and a.checks[1].baseline.text == "0.900 [0.890, 0.910]"
    b = next(b for b in r.blocks if b.dataset == "dsB")
    assert [c.outcome for c in b.checks] == [HOLDS, FAILS]


def test_not_evaluated_paths() -> None:
    res = _by_key(_table())
    spare = res["spare"]
    assert spare.overall == "not evaluated (method spare has no results)" and not spare.blocks
    # SPARE present but no block has ERM too.
    t = pd.DataFrame(_group_block("dsE", "sex", "f1", {"spare": {"a": 0.7, "b": 0.6}}, {"a": 10, "b": 20}),
                     columns=list(RESULT_COLUMNS))
    t = pd.concat([t, pd.DataFrame([_row("dsF", "sex", "erm", "f1", "group", "a", 0.5)])], ignore_index=True)
    r = _by_key(t)["spare"]
    assert r.overall_verdict == NOT_EVALUATED and "no dataset × grouping block has results of all of spare, erm" in r.reason
    # Several methods missing.
    assert _by_key(t)["fairdi"].overall == "not evaluated (method fairdi, fis have no results)"


def test_fairdro_worst_group_and_tail_dice_over_erm() -> None:
    def block(ds: str, vals: dict[str, tuple[float, float]]) -> list[dict]:
        """``vals``: method -> (worst-group Dice, worst-group tail Dice), CI half-width 0.02."""
        return [_row(ds, "age", m, metric, "summary", "", v, 0.02) for m, pair in vals.items()
                for metric, v in zip(("worst_group_dice", "worst_group_tail_dice"), pair, strict=True)]

    dmoe = {"dmoe": (0.72, 0.52)}
    rows = (block("dsA", {"fairdro": (0.80, 0.60), "erm": (0.70, 0.50), **dmoe})  # all up, CIs apart
            + block("dsB", {"fairdro": (0.80, 0.40), "erm": (0.70, 0.50), **dmoe})  # tail Dice down, CIs apart
            + block("dsC", {"fairdro": (0.80, 0.60), "erm": (0.70, 0.50), "dmoe": (0.78, 0.58)})  # inside dMoE's CIs
            + [_row("dsD", "age", m, "worst_group_dice", "summary", "", 0.7) for m in ("fairdro", "erm", "dmoe")]
            + block("dsE", {"fairdro": (0.80, 0.60), "erm": (0.70, 0.50)}))  # no dMoE: block skipped
    r = _by_key(pd.DataFrame(rows, columns=list(RESULT_COLUMNS)))["fairdro"]
    assert r.claim.methods == ("fairdro", "erm", "dmoe")
    assert _verdicts(r) == {("dsA", "age"): SUPPORTED, ("dsB", "age"): NOT_SUPPORTED, ("dsC", "age"): INCONCLUSIVE,
                            ("dsD", "age"): NOT_EVALUATED}
    b = next(b for b in r.blocks if b.dataset == "dsB")
    assert [(c.what, c.comparison.baseline, c.outcome) for c in b.checks] == [
        ("worst-group Dice", "erm", HOLDS), ("worst-group tail Dice", "erm", FAILS),
        ("worst-group Dice", "dmoe", HOLDS), ("worst-group tail Dice", "dmoe", FAILS)]
    c = next(b for b in r.blocks if b.dataset == "dsC")
    assert [c.outcome for c in c.checks] == [HOLDS, HOLDS, UNCLEAR, UNCLEAR]
    assert next(b for b in r.blocks if b.dataset == "dsD").reason == "no worst_group_tail_dice for fairdro"


def test_spare_every_group_f1_and_seed_means() -> None:
    sizes = {"a": 100, "b": 40, "c": 10}
    rows = []
    # Seed 0 and 1 average to spare a/b/c = 0.80/0.70/0.60 vs erm 0.70/0.60/0.50, half-widths 0.02 -> supported.
    for seed, shift in ((0, 0.01), (1, -0.01)):
        rows += [dict(r, seed=seed) for r in _group_block(
            "dsA", "sex", "f1", {"spare": {"a": 0.80 + shift, "b": 0.70 + shift, "c": 0.60 + shift},
                                 "erm": {"a": 0.70 - shift, "b": 0.60 - shift, "c": 0.50 - shift}}, sizes, half=0.02)]
    # dsB: group c goes down with separated CIs -> not supported.
    rows += _group_block("dsB", "sex", "f1", {"spare": {"a": 0.8, "b": 0.7, "c": 0.3}, "erm": {"a": 0.7, "b": 0.6, "c": 0.5}}, sizes)
    # dsC: spare lacks group c -> not evaluated block.
    rows += _group_block("dsC", "sex", "f1", {"spare": {"a": 0.8, "b": 0.7}, "erm": {"a": 0.7, "b": 0.6, "c": 0.5}}, sizes)
    r = _by_key(pd.DataFrame(rows, columns=list(RESULT_COLUMNS)))["spare"]
    assert _verdicts(r) == {("dsA", "sex"): SUPPORTED, ("dsB", "sex"): NOT_SUPPORTED, ("dsC", "sex"): NOT_EVALUATED}
    a = r.blocks[0]
    assert [c.group for c in a.checks] == ["a", "b", "c"]
    assert [c.method.text for c in a.checks] == ["0.800 [0.780, 0.820]", "0.700 [0.680, 0.720]", "0.600 [0.580, 0.620]"]
    assert r.blocks[2].reason == "no f1 of group c for spare"
    assert r.overall == "mixed — of 3 block(s): 1 supported, 1 not supported, 0 inconclusive, 1 not evaluated"


def test_claims_section_rendered(tmp_path: Path) -> None:
    t = _table()
    evil = "<script>x</script>"
    t.loc[t["dataset"] == "dsC", "dataset"] = evil
    paths = build_leaderboard(t, tmp_path / "s", suite="t")
    html = (tmp_path / "s" / "index.html").read_text()
    assert '<h2 id="claims">Claims</h2>' in html
    for c in CLAIMS:
        assert f'id="claim-{c.key}"' in html
    assert "Higher overall AUC and higher worst-group AUC, with a smaller AUC gap, than FIS and ERM." in html
    assert "(method spare has no results)" in html
    assert "not lower than erm" in html and "0.895 [0.885, 0.905]" in html
    assert "not CIs of paired differences" in html and "conservative" in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html and evil not in html
    ctx = claims_context(evaluate_claims(t))
    assert [i["verdict"] for i in ctx["claims"]] == ["mixed", NOT_EVALUATED, "mixed", NOT_EVALUATED]
    assert any(p.name == "index.html" for p in paths)


def test_f1_matches_sklearn_per_group() -> None:
    rng = np.random.default_rng(3)
    n = 2000
    g = rng.choice(["g0", "g1", "g2"], n, p=[0.5, 0.3, 0.2])
    y = rng.integers(0, 2, n)
    s = 1 / (1 + np.exp(-(rng.normal(0, 1, n) + 1.0 * y - (g == "g2") * 0.6)))
    for thr in (0.3, 0.5, 0.62):
        kw = {"sensitive_features": g, "threshold": thr}
        frame = METRICS["f1"].frame(y, s, **kw)
        pred = (s >= thr).astype(int)
        expected = {k: f1_score(y[g == k], pred[g == k]) for k in ("g0", "g1", "g2")}
        np.testing.assert_allclose(frame.by_group.to_numpy(), [expected[k] for k in frame.by_group.index], atol=1e-12)
        assert abs(frame.overall - f1_score(y, pred)) < 1e-12
        assert abs(METRICS["worst_group_f1"](y, s, **kw) - min(expected.values())) < 1e-12
        assert abs(METRICS["f1_gap"](y, s, **kw) - (max(expected.values()) - min(expected.values()))) < 1e-12
    assert METRICS["f1"].definition.thresholded and METRICS["f1_gap"].definition.higher_is_better is False


def test_f1_undefined_group_is_nan() -> None:
    y = np.array([0, 0, 1, 1, 0, 1])
    s = np.array([0.1, 0.2, 0.9, 0.8, 0.3, 0.7])
    g = np.array(["a", "a", "b", "b", "a", "b"])
    with pytest.warns(RuntimeWarning):
        frame = METRICS["f1"].frame(y, s, sensitive_features=g)
    assert math.isnan(frame.by_group["a"]) and frame.by_group["b"] == 1.0


def test_inconclusive_blocks_show_minimum_detectable_gap() -> None:
    def hm(a: float, m: int, n: int) -> float:  # Hanley & McNeil (1982)
        q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
        return (a * (1 - a) + (m - 1) * (q1 - a * a) + (n - 1) * (q2 - a * a)) / (m * n)

    results = _by_key(_table())
    qp = {(b.dataset, b.grouping): b for b in results["qpnet"].blocks}
    assert qp[("dsC", "sex")].verdict == INCONCLUSIVE
    # minority: n=50 (15 positives at prevalence 0.3), AUC 0.71; dominant: n=500 (150), AUC 0.90
    gap = (1.959963984540054 + 0.8416212335729143) * math.sqrt(hm(0.71, 15, 35) + hm(0.90, 150, 350))
    note = qp[("dsC", "sex")].power
    assert "mino (n=50)" in note and "maj (n=500)" in note and f"{gap:.3f}" in note
    assert qp[("dsA", "sex")].power == ""  # supported: no power note
    fairdi = {(b.dataset, b.grouping): b for b in results["fairdi"].blocks}
    assert fairdi[("dsC", "sex")].verdict == INCONCLUSIVE and fairdi[("dsC", "sex")].power == ""  # no group AUCs
    ctx = claims_context(results.values())
    assert any(b["power"] == note for c in ctx["claims"] for b in c["blocks"])


def test_the_kit_checks_registered_claims() -> None:
    from medfairx.specs import ClaimComparison, ClaimSpec
    from medfairx.testing.checks_plugin import item_report

    good = ClaimSpec("mine", "erm", "ERM beats GroupDRO.", (ClaimComparison("auc", "overall", "groupdro", "up"),))
    assert item_report("claims", good).passed
    bad = ClaimSpec("bad", "erm", "?", (ClaimComparison("no_such_metric", "overall", "erm", "up"),))
    report = item_report("claims", bad)
    assert not report.passed
    message = report.failures[0].message
    assert "no_such_metric" in message and "with itself" not in message
