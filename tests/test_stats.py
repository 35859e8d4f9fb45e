"""Statistics of the leaderboards, checked against scipy, scikit-posthocs and hand computation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scikit_posthocs as sp
from scipy import stats
from statsmodels.stats.multitest import multipletests

from medfairx.errors import ConfigError
from medfairx.stats import (
    average_ranks,
    block_matrix,
    compare_methods,
    critical_difference,
    friedman_test,
    holm_adjust,
    nemenyi,
    q_alpha,
    rank_within_blocks,
    seed_means,
    wilcoxon_holm,
)
from medfairx.stats.cd import NOT_SIGNIFICANT, TOO_FEW_BLOCKS


def long_table(matrix: pd.DataFrame, *, metric: str = "auc", higher_is_better: bool = True,
               seeds: tuple[int, ...] = (0,), strategy: str = "overall") -> pd.DataFrame:
    """A results table whose seed means equal ``matrix`` (rows 'ds:gr' blocks, columns methods)."""
    rows = []
    offsets = np.linspace(-0.01, 0.01, len(seeds)) if len(seeds) > 1 else [0.0]
    for block, row in matrix.iterrows():
        ds, gr = str(block).split(":")
        for method, value in row.items():
            if pd.isna(value):
                continue
            for seed, off in zip(seeds, offsets, strict=True):
                rows.append({"suite": "t", "dataset": ds, "grouping": gr, "method": method, "seed": seed,
                             "strategy": strategy, "metric": metric, "scope": "overall", "group": "",
                             "value": value + off, "ci_low": np.nan, "ci_high": np.nan, "n": 100,
                             "prevalence": 0.3, "higher_is_better": higher_is_better, "kind": "performance",
                             "task": "classification", "threshold": 0.5})
    return pd.DataFrame(rows)


@pytest.fixture
def random_matrix() -> pd.DataFrame:
    rng = np.random.default_rng(42)
    values = rng.random((9, 4)) + np.array([0.0, 0.1, 0.3, 0.5])
    return pd.DataFrame(values, index=[f"d{i // 3}:g{i % 3}" for i in range(9)], columns=["a", "b", "c", "d"])


def test_friedman_matches_scipy(random_matrix: pd.DataFrame) -> None:
    res = friedman_test(random_matrix)
    ref = stats.friedmanchisquare(*(random_matrix[c].to_numpy() for c in random_matrix.columns))
    assert res.test == "friedman" and res.k == 4 and res.n_blocks == 9
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert res.pvalue == pytest.approx(ref.pvalue, rel=1e-12)


def test_friedman_two_methods_uses_wilcoxon(random_matrix: pd.DataFrame) -> None:
    two = random_matrix[["a", "d"]]
    res = friedman_test(two)
    ref = stats.wilcoxon(two["a"], two["d"])
    assert res.test == "wilcoxon"
    assert res.pvalue == pytest.approx(ref.pvalue)


def test_ranks_hand_computed_with_ties_both_directions() -> None:
    m = pd.DataFrame({"A": [0.9, 0.7, 0.5], "B": [0.8, 0.9, 0.5], "C": [0.8, 0.6, 0.5]})
    hi = rank_within_blocks(m, higher_is_better=True)
    np.testing.assert_allclose(hi.to_numpy(), [[1, 2.5, 2.5], [2, 1, 3], [2, 2, 2]])
    lo = rank_within_blocks(m, higher_is_better=False)
    np.testing.assert_allclose(lo.to_numpy(), [[3, 1.5, 1.5], [2, 3, 1], [2, 2, 2]])
    avg_hi = average_ranks(m, True)
    assert list(avg_hi.index) == ["A", "B", "C"]
    np.testing.assert_allclose(avg_hi.to_numpy(), [5 / 3, 5.5 / 3, 7.5 / 3])
    avg_lo = average_ranks(m, False)
    assert list(avg_lo.index) == ["C", "B", "A"]
    np.testing.assert_allclose(avg_lo.to_numpy(), [4.5 / 3, 6.5 / 3, 7 / 3])


def test_seeds_aggregated_first_and_incomplete_blocks_dropped() -> None:
    m = pd.DataFrame({"a": [0.6, 0.7, 0.8], "b": [0.65, np.nan, 0.9], "c": [np.nan] * 3},
                     index=["x:sex", "x:age", "y:sex"])
    table = long_table(m, seeds=(0, 1, 2))
    # a method whose value is NaN everywhere is excluded, not a reason to drop every block
    undefined = table.iloc[[0]].assign(method="c", value=np.nan)
    table = pd.concat([table, undefined], ignore_index=True)
    agg = seed_means(table)
    cell = agg[(agg["method"] == "a") & (agg["dataset"] == "x") & (agg["grouping"] == "sex")].iloc[0]
    assert cell["mean"] == pytest.approx(0.6) and cell["n_seeds"] == 3
    assert cell["std"] == pytest.approx(np.std([0.59, 0.6, 0.61], ddof=1))
    bm = block_matrix(table, "auc", strategy="overall")
    assert bm.dropped_blocks == {("x", "age"): ["b"]}
    assert bm.excluded_methods == ["c"]
    assert list(bm.matrix.columns) == ["a", "b"]
    assert bm.matrix.index.tolist() == [("x", "sex"), ("y", "sex")]
    np.testing.assert_allclose(bm.matrix.to_numpy(), [[0.6, 0.65], [0.8, 0.9]])
    with pytest.raises(ConfigError, match="No overall/summary values of metric 'nope'"):
        block_matrix(table, "nope", strategy="overall")


def test_nemenyi_matches_scikit_posthocs(random_matrix: pd.DataFrame) -> None:
    ours = nemenyi(random_matrix)
    ref = sp.posthoc_nemenyi_friedman(random_matrix.reset_index(drop=True))
    np.testing.assert_allclose(ours.to_numpy(), ref.to_numpy())
    assert list(ours.index) == list(random_matrix.columns)


def test_critical_difference_hand_computed_k4_n10() -> None:
    # Demšar (2006), Table 5(a): q_0.05 = 1.960, 2.343, 2.569 for k = 2, 3, 4.
    assert q_alpha(2) == pytest.approx(1.960, abs=1e-3)
    assert q_alpha(3) == pytest.approx(2.343, abs=1e-3)
    assert q_alpha(4) == pytest.approx(2.569, abs=1e-3)
    hand = stats.studentized_range.ppf(0.95, 4, np.inf) / math.sqrt(2) * math.sqrt(4 * 5 / (6 * 10))
    assert critical_difference(4, 10) == pytest.approx(hand, rel=1e-12)
    assert critical_difference(4, 10) == pytest.approx(2.569 * math.sqrt(1 / 3), abs=1e-3)


def test_holm_and_wilcoxon_match_references(random_matrix: pd.DataFrame) -> None:
    p = np.array([0.01, 0.04, 0.03, 0.2, np.nan])
    ref = multipletests(p[:4], method="holm")[1]
    out = holm_adjust(p)
    np.testing.assert_allclose(out[:4], ref)
    assert np.isnan(out[4])
    table = wilcoxon_holm(random_matrix, higher_is_better=True)
    melted = random_matrix.reset_index(drop=True).melt(var_name="method", value_name="v")
    ref_m = sp.posthoc_wilcoxon(melted, val_col="v", group_col="method", p_adjust="holm")
    for rec in table.to_dict("records"):
        assert rec["p_holm"] == pytest.approx(ref_m.loc[rec["method_a"], rec["method_b"]])
    ad = table[(table["method_a"] == "a") & (table["method_b"] == "d")].iloc[0]
    assert ad["better"] == "d" and ad["mean_diff"] < 0


def test_significant_comparison_has_cd(random_matrix: pd.DataFrame) -> None:
    winner = random_matrix.copy()
    winner["d"] += 1.0  # d is best in every block
    cmp = compare_methods(long_table(winner, seeds=(0, 1)), "auc", strategy="overall")
    assert cmp.reason is None and cmp.has_diagram
    assert cmp.ranks.index[0] == "d" and cmp.ranks.iloc[0] == 1.0
    assert cmp.cd == pytest.approx(critical_difference(4, 9))
    assert cmp.nemenyi is not None
    # lower-is-better reverses the ranking
    low = compare_methods(long_table(winner, higher_is_better=False), "auc", strategy="overall")
    assert low.ranks.index[-1] == "d" and low.ranks.iloc[-1] == 4.0


def test_too_few_blocks_gives_reason(random_matrix: pd.DataFrame) -> None:
    cmp = compare_methods(long_table(random_matrix.iloc[:4]), "auc", strategy="overall")
    assert not cmp.has_diagram and cmp.nemenyi is None and cmp.cd is None
    assert cmp.reason == TOO_FEW_BLOCKS.format(n=4, min_blocks=5)
    assert "only 4 complete block(s)" in cmp.reason
    assert len(cmp.ranks) == 4  # the rank table is still there


def test_not_significant_gives_reason() -> None:
    # cyclic permutations: every method has the same average rank, Friedman χ² = 0, p = 1
    rows = [[1, 2, 3], [2, 3, 1], [3, 1, 2]] * 2
    m = pd.DataFrame(rows, columns=["a", "b", "c"], index=[f"d{i}:g" for i in range(6)], dtype=float)
    cmp = compare_methods(long_table(m), "auc", strategy="overall")
    assert cmp.friedman is not None and cmp.friedman.pvalue == pytest.approx(1.0)
    assert cmp.reason == NOT_SIGNIFICANT.format(p="1", alpha=0.05)
    assert "not significant" in cmp.reason and cmp.nemenyi is None


def test_too_few_methods_and_two_methods() -> None:
    one = pd.DataFrame({"a": np.arange(6.0)}, index=[f"d{i}:g" for i in range(6)])
    cmp = compare_methods(long_table(one), "auc", strategy="overall")
    assert cmp.reason is not None and "only 1 method(s)" in cmp.reason and cmp.friedman is None
    two = pd.DataFrame({"a": np.arange(6.0), "b": np.arange(6.0) + 1}, index=one.index)
    cmp2 = compare_methods(long_table(two), "auc", strategy="overall")
    assert cmp2.friedman is not None and cmp2.friedman.test == "wilcoxon"
    assert cmp2.reason is not None and "Wilcoxon signed-rank" in cmp2.reason
    assert list(cmp2.ranks.index) == ["b", "a"]


def test_all_ties_is_undefined_not_a_crash() -> None:
    m = pd.DataFrame(np.ones((6, 3)), columns=["a", "b", "c"], index=[f"d{i}:g" for i in range(6)])
    cmp = compare_methods(long_table(m), "auc", strategy="overall")
    assert cmp.reason is not None and "undefined" in cmp.reason
    np.testing.assert_allclose(cmp.ranks.to_numpy(), [2, 2, 2])
