"""Stratified vectorised bootstrap: explicit-resample references, seeding, fixed group sizes."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, brier_score_loss, f1_score, recall_score, roc_auc_score

from medfairx.metrics.bootstrap import StratifiedBootstrap, bootstrap
from medfairx.metrics.engine import Draws, Engine, Problem, resolve_defs


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
    monkeypatch.setattr(eng, "_aucs_from_draws", lambda rankers, D: [r(D.dense()) for r in rankers])
    slow = bootstrap(p, defs, n_boot=30, seed=5)
    for d in defs:
        np.testing.assert_array_equal(fast.replicates[d.name], slow.replicates[d.name])


def _reference_indices(strata: np.ndarray, n_boot: int, seed: int, b: int) -> np.ndarray:
    """Replicate ``b`` drawn the plain way: its own generator, ``integers(0, m, m)`` per stratum in label order."""
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(n_boot)[b])
    return np.concatenate([m[rng.integers(0, m.size, m.size)] for m in
                           (np.flatnonzero(strata == s) for s in np.unique(strata))])


def test_draw_counts_are_the_plain_generator_draws():
    p = _problem(ties=True, n=700, seed=2)
    sampler = StratifiedBootstrap(p.strata(), 12, seed=6)
    D = sampler.draws(3, 12)
    assert D.counts.shape == (9, p.n)
    for i, b in enumerate(range(3, 12)):
        idx = _reference_indices(p.strata(), 12, 6, b)
        np.testing.assert_array_equal(np.sort(sampler.indices(b)), np.sort(idx))
        np.testing.assert_array_equal(D.dense()[:, i], np.bincount(idx, minlength=p.n))


def _percentile_ci(reps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = np.nanpercentile(reps, [2.5, 97.5], axis=0)
    return lo, hi


@pytest.mark.parametrize("ties", [True, False])
def test_auc_cis_equal_a_plain_sklearn_bootstrap(ties):
    p = _problem(ties=ties, n=600, seed=4)
    n_boot = 40
    res = bootstrap(p, resolve_defs(["auc", "auc_gap"], "classification"), n_boot=n_boot, seed=8)
    reps = np.empty((n_boot, 1 + p.n_groups))
    for b in range(n_boot):
        idx = _reference_indices(p.strata(), n_boot, 8, b)
        y, s, g = p.y[idx], p.scores[idx], p.codes[idx]
        reps[b] = [roc_auc_score(y, s)] + [roc_auc_score(y[g == k], s[g == k]) for k in range(p.n_groups)]
    np.testing.assert_allclose(res.replicates["auc"], reps, rtol=0, atol=1e-12)
    lo, hi = _percentile_ci(reps)
    np.testing.assert_allclose(res.low["auc"], lo, rtol=0, atol=1e-12)
    np.testing.assert_allclose(res.high["auc"], hi, rtol=0, atol=1e-12)
    gap = reps[:, 1:].max(axis=1) - reps[:, 1:].min(axis=1)
    np.testing.assert_allclose(res.replicates["auc_gap"], gap, rtol=0, atol=1e-12)


def test_auc_from_counts_with_tied_scores_by_hand():
    # one group; negatives (stratum 0) score 0.5, 0.2; positives (stratum 1) score 0.5, 0.8
    p = Problem.build("classification", ["a"] * 4, y_true=[0, 0, 1, 1], y_score=[0.5, 0.2, 0.5, 0.8])
    members = [np.array([0, 1]), np.array([2, 3])]
    # replicate 0: negatives once each, the tied positive twice -> (2 * (1/2 + 1)) / (2 * 2) = 0.75
    # replicate 1: negative 0.5 twice, positive 0.8 twice -> 1.0
    # replicate 2: negative 0.5 twice, tied positive twice -> 0.5
    counts = np.array([[1, 1, 2, 0], [2, 0, 0, 2], [2, 0, 2, 0]], np.int32)
    auc = Engine(p).measure("auc", Draws(4, members, counts))
    np.testing.assert_allclose(auc, [[0.75, 0.75], [1.0, 1.0], [0.5, 0.5]], rtol=0, atol=1e-15)
    for i, row in enumerate(counts):
        assert auc[i, 0] == pytest.approx(roc_auc_score(p.y, p.scores, sample_weight=row), abs=1e-15)


def test_thresholded_and_calibration_replicates_equal_sklearn_on_resamples():
    p = _problem(ties=True, n=500, seed=9)
    names = ["tpr", "fpr", "accuracy", "balanced_accuracy", "f1", "brier", "ece"]
    res = bootstrap(p, resolve_defs(names, "classification"), n_boot=25, seed=1)
    for b in (0, 11, 24):
        idx = _reference_indices(p.strata(), 25, 1, b)
        for k in range(-1, p.n_groups):
            m = np.ones(idx.size, bool) if k < 0 else p.codes[idx] == k
            y, s = p.y[idx][m], p.scores[idx][m]
            pred = (s >= 0.5).astype(int)
            bins = np.minimum((s * 15).astype(int), 14)
            ece = sum(abs((y[bins == j] - s[bins == j]).sum()) for j in range(15)) / y.size
            want = {"tpr": recall_score(y, pred), "fpr": 1 - recall_score(y, pred, pos_label=0),
                    "accuracy": accuracy_score(y, pred), "balanced_accuracy": balanced_accuracy_score(y, pred),
                    "f1": f1_score(y, pred), "brier": brier_score_loss(y, s), "ece": ece}
            for name, value in want.items():
                assert res.replicates[name][b, k + 1] == pytest.approx(value, abs=1e-12), (name, b, k)
