"""Batched scaling-domain Sinkhorn against a plain log-domain Sinkhorn (same iterates, same stop)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

import medfairx.methods.ot as ot
from medfairx.methods.fis import group_distances_batch
from medfairx.methods.ot import entropic_ot_sinkhorn, entropic_ot_sinkhorn_many, sinkhorn_divergence

EPS = 0.01


def naive_cross_ot(x: np.ndarray, y: np.ndarray, eps: float = EPS, *, tol: float = 1e-6,
                   max_iter: int = 1000) -> tuple[float, bool]:
    """Textbook log-domain Sinkhorn between uniform measures, cost |x−y|²/2: ε-scaling from
    max C by a factor 1/4 per step, then iterations at ε until f moves by < tol·ε."""
    c = 0.5 * (x[:, None] - y[None, :]) ** 2
    la, lb = -math.log(len(x)), -math.log(len(y))

    def transform(pot: np.ndarray, log_w: float, cost: np.ndarray, e: float) -> np.ndarray:
        return -e * logsumexp(log_w + (pot[None, :] - cost) / e, axis=1)

    f, g = np.zeros(len(x)), np.zeros(len(y))
    e = max(float(c.max()), eps)
    while e > eps:
        f = transform(g, lb, c, e)
        g = transform(f, la, c.T, e)
        e = max(e / 4, eps)
    for _ in range(max_iter):
        f_new = transform(g, lb, c, eps)
        g = transform(f_new, la, c.T, eps)
        moved = np.abs(f_new - f).max()
        f = f_new
        if moved < tol * eps:
            return float(f.mean() + g.mean()), True
    return float(f.mean() + g.mean()), False


def _cases() -> list[tuple[np.ndarray, list[np.ndarray]]]:
    rng = np.random.default_rng(3)
    narrow = rng.lognormal(-0.7, 0.3, 12)
    wide = rng.uniform(0.0, 20.0, 12)  # max C/ε = 2e4: kernel re-centred, far from converged
    return [(narrow, [narrow[:5], narrow[5:]]), (wide, [wide[:4], wide[4:11], wide[11:]])]


@pytest.mark.parametrize("case", [0, 1])
@pytest.mark.parametrize("pool_first", [True, False])
def test_many_equals_naive_log_domain_sinkhorn(case: int, pool_first: bool) -> None:
    pool, parts = _cases()[case]
    expected = [naive_cross_ot(pool, v) if pool_first else naive_cross_ot(v, pool) for v in parts]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = entropic_ot_sinkhorn_many(torch.tensor(pool), [torch.tensor(v) for v in parts], EPS, pool_first=pool_first)
    for value, (ref, _) in zip(got, expected, strict=True):
        assert value == pytest.approx(ref, rel=1e-12, abs=1e-13)
    assert sum("did not converge" in str(w.message) for w in caught) == sum(not ok for _, ok in expected)
    # the one-problem entry point agrees too
    x, y = (pool, parts[0]) if pool_first else (parts[0], pool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert entropic_ot_sinkhorn(torch.tensor(x), torch.tensor(y), EPS) == pytest.approx(expected[0][0], rel=1e-12)


def test_wide_case_exercises_an_unconverged_problem() -> None:
    """Guard on the fixture: the wide case really runs to max_iter for some problem."""
    pool, parts = _cases()[1]
    assert not all(naive_cross_ot(pool, v)[1] for v in parts)


def test_many_with_a_sample_equal_to_the_pool_uses_the_symmetric_solver() -> None:
    pool, parts = _cases()[0]
    got = entropic_ot_sinkhorn_many(torch.tensor(pool), [torch.tensor(pool), torch.tensor(parts[0])], EPS)
    assert got[0] == pytest.approx(entropic_ot_sinkhorn(torch.tensor(pool), torch.tensor(pool), EPS), rel=1e-14)
    assert got[1] == pytest.approx(naive_cross_ot(parts[0], pool)[0], rel=1e-12)


def test_batch_distances_solve_the_batch_self_term_once(monkeypatch: pytest.MonkeyPatch) -> None:
    losses = torch.tensor(_cases()[0][0], dtype=torch.float32)
    groups = torch.tensor([0, 1, 2] * 4)
    expected = {g: sinkhorn_divergence(losses, losses[groups == g]) for g in range(3)}
    calls: list[int] = []
    log_domain = ot._sinkhorn_log
    monkeypatch.setattr(ot, "_sinkhorn_log", lambda x, *a: calls.append(x.numel()) or log_domain(x, *a))
    got = group_distances_batch(losses, groups)
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-14)
    assert sorted(calls) == [4, 4, 4, 12]  # OT(L, L) once, OT(L_g, L_g) per group


@pytest.mark.parametrize("pool_first", [True, False])
def test_out_of_range_fallbacks_keep_the_iterates(monkeypatch: pytest.MonkeyPatch, pool_first: bool) -> None:
    """With tiny trust ranges every update is re-centred or redone in the log domain."""
    calls = {"log": 0}
    update = ot._log_update
    monkeypatch.setattr(ot, "_ABSORB", 0.01)
    monkeypatch.setattr(ot, "_LOG_RANGE", 0.02)
    monkeypatch.setattr(ot, "_log_update", lambda *a: calls.__setitem__("log", calls["log"] + 1) or update(*a))
    pool, parts = _cases()[0]
    got = entropic_ot_sinkhorn_many(torch.tensor(pool), [torch.tensor(v) for v in parts], EPS, pool_first=pool_first)
    expected = [naive_cross_ot(pool, v)[0] if pool_first else naive_cross_ot(v, pool)[0] for v in parts]
    assert got == pytest.approx(expected, rel=1e-12)
    assert calls["log"] > 0
