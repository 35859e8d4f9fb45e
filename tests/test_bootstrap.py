"""Stratified vectorised bootstrap: explicit-resample references, seeding, fixed group sizes."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from medfairx.metrics.bootstrap import StratifiedBootstrap, bootstrap
from medfairx.metrics.engine import Engine, Problem, resolve_defs


def _problem(ties: bool = True, n: int = 800, seed: int = 0) -> Problem:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = 1 / (1 + np.exp(-(rng.normal(0, 1, n) + y)))
    s = np.round(s, 2) if ties else s
    g = rng.choice(["a", "b", "c", "d"], n)
    return Problem.build("classification", g, y_true=y, y_score=s, threshold=0.5)


def test_vectorised_auc_equals_sklearn_on_explicit_resamples():
    p = _problem(ties=True)
    sampler = StratifiedBootstrap(p.strata(), 6, seed=3)
    W = sampler.counts(0, 6)
    auc = Engine(p).measure("auc", W)
    for b in range(6):
        idx = sampler.indices(b)
        assert np.array_equal(np.bincount(idx, minlength=p.n), W[:, b])
        assert abs(auc[b, 0] - roc_auc_score(p.y[idx], p.scores[idx])) < 1e-9
        for gi in range(p.n_groups):
            m = p.codes[idx] == gi
            assert abs(auc[b, 1 + gi] - roc_auc_score(p.y[idx][m], p.scores[idx][m])) < 1e-9


def test_group_and_class_sizes_fixed_in_every_replicate():
    p = _problem()
    sampler = StratifiedBootstrap(p.strata(), 20, seed=1)
    for b in range(20):
        idx = sampler.indices(b)
        assert np.array_equal(np.bincount(p.codes[idx], minlength=4), np.bincount(p.codes, minlength=4))
        assert np.array_equal(np.bincount(p.strata()[idx]), np.bincount(p.strata()))


def test_other_measures_equal_explicit_resample():
    p = _problem(ties=False, seed=5)
    sampler = StratifiedBootstrap(p.strata(), 3, seed=9)
    W = sampler.counts(0, 3)
    eng = Engine(p)
    tpr, cvar = eng.measure("tpr", W), eng.measure("cvar_loss", W)
    for b in range(3):
        idx = sampler.indices(b)
        y, s = p.y[idx], p.scores[idx]
        assert abs(tpr[b, 0] - ((s >= 0.5) & (y == 1)).sum() / (y == 1).sum()) < 1e-12
        loss = -np.log(np.where(y == 1, s, 1 - s))
        k = int(np.ceil(0.1 * idx.size - 1e-9))
        assert abs(cvar[b, 0] - np.sort(loss)[::-1][:k].mean()) < 1e-9


def test_cis_contain_point_and_are_seeded():
    p = _problem()
    defs = resolve_defs(["auc", "auc_gap", "worst_group_auc", "equalized_odds_difference", "ece"], "classification")
    r1 = bootstrap(p, defs, n_boot=200, seed=0)
    r2 = bootstrap(p, defs, n_boot=200, seed=0)
    r3 = bootstrap(p, defs, n_boot=200, seed=1)
    f1, f2, f3 = r1.to_frame(), r2.to_frame(), r3.to_frame()
    assert f1.equals(f2)
    assert not np.allclose(f1["ci_low"], f3["ci_low"])
    inside = (f1["ci_low"] <= f1["value"] + 1e-12) & (f1["value"] <= f1["ci_high"] + 1e-12)
    # gaps are biased upward under resampling; every other value must lie inside its CI
    assert inside[f1["metric"] != "auc_gap"].all()
    assert (f1["ci_low"] < f1["ci_high"]).all()
    assert set(f1["scope"]) == {"overall", "group", "summary"}


def test_chunking_does_not_change_results(monkeypatch):
    import medfairx.metrics.bootstrap as bs

    p = _problem()
    defs = resolve_defs(["auc", "auc_gap"], "classification")
    a = bootstrap(p, defs, n_boot=50, seed=4)
    monkeypatch.setattr(bs, "CHUNK_ELEMENTS", p.n * 7)
    b = bootstrap(p, defs, n_boot=50, seed=4)
    np.testing.assert_array_equal(a.replicates["auc"], b.replicates["auc"])


def test_segmentation_strata_are_groups():
    rng = np.random.default_rng(0)
    d = rng.random(100)
    g = rng.choice(["x", "y"], 100)
    p = Problem.build("segmentation", g, values={"dice": d})
    r = bootstrap(p, resolve_defs(["dice", "worst_group_dice"], "segmentation"), n_boot=100, seed=0)
    f = r.to_frame()
    assert ((f["ci_low"] <= f["value"]) & (f["value"] <= f["ci_high"])).all()
    assert f.loc[f["scope"] == "group", "n"].tolist() == [int((g == "x").sum()), int((g == "y").sum())]
    with pytest.raises(ValueError):
        bootstrap(p, resolve_defs(["dice"], "segmentation"), n_boot=10, ci=1.5)


def _reference_counts(sampler: StratifiedBootstrap, start: int, stop: int) -> np.ndarray:
    """Counts of replicates built one bincount per (replicate, stratum) from the explicit indices."""
    return np.stack([np.bincount(sampler.indices(b), minlength=sampler.n) for b in range(start, stop)], axis=1)


@pytest.mark.parametrize("case", ["ties", "no_ties", "one_class_group", "multiclass"])
def test_sorted_order_draws_equal_dense_counts_exactly(case):
    rng = np.random.default_rng(11)
    n = 600
    g = rng.choice(["a", "b", "c"], n)
    if case == "multiclass":
        y = rng.integers(0, 3, n)
        s = rng.dirichlet(np.ones(3), n)
        s = np.round(s, 2)
        s /= s.sum(axis=1, keepdims=True)
    else:
        y = rng.integers(0, 2, n)
        s = 1 / (1 + np.exp(-(rng.normal(0, 1, n) + y)))
        s = np.round(s, 2) if case != "no_ties" else s
        if case == "one_class_group":
            y[g == "c"] = 1
    p = Problem.build("classification", g, y_true=y, y_score=s)
    sampler = StratifiedBootstrap(p.strata(), 9, seed=2)
    D = sampler.draws(0, 9)
    np.testing.assert_array_equal(D.dense(), _reference_counts(sampler, 0, 9))
    eng = Engine(p)
    fast, dense = eng.measure("auc", D), eng.measure("auc", _reference_counts(sampler, 0, 9).astype(np.float64))
    np.testing.assert_array_equal(fast, dense)  # bit for bit, NaN where a class is missing
    for b in range(9):
        idx = sampler.indices(b)
        if case == "multiclass":
            ref = roc_auc_score(p.y[idx], p.scores[idx], multi_class="ovr", average="macro")
        else:
            ref = roc_auc_score(p.y[idx], p.scores[idx])
        assert abs(fast[b, 0] - ref) < 1e-9


def test_bootstrap_results_equal_dense_path(monkeypatch):
    import medfairx.metrics.engine as eng

    p = _problem(ties=True, n=500, seed=7)
    defs = resolve_defs(None, "classification")
    fast = bootstrap(p, defs, n_boot=30, seed=5)
    monkeypatch.setattr(eng._AucRanker, "_from_draws", lambda self, D: self(D.dense()))
    slow = bootstrap(p, defs, n_boot=30, seed=5)
    for d in defs:
        np.testing.assert_array_equal(fast.replicates[d.name], slow.replicates[d.name])
