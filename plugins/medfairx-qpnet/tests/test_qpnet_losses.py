"""QP-Net loss terms against independent numpy references (docs/methods.md §4, eqs. 13–20)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medfairx.errors import ConfigError
from medfairx_qpnet.losses import (
    adaptive_delta,
    binary_task_loss,
    bss,
    kway_mmd,
    kway_task_loss,
    less_prevalent_codes,
    mmd,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _mmd_loop(a: np.ndarray, b: np.ndarray, kernel) -> float:
    """Direct double loops: M(D,D) - 2 M(D,L) + M(L,L) with M(P,Q) = sum k / (N_P N_Q)."""

    def m(p: np.ndarray, q: np.ndarray) -> float:
        total = 0.0
        for i in range(len(p)):
            for j in range(len(q)):
                total += kernel(p[i], q[j])
        return total / (len(p) * len(q))

    return m(a, a) - 2 * m(a, b) + m(b, b)


def test_mmd_paper_kernel_matches_double_loop() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(7, 5)) * 0.4, rng.normal(size=(4, 5)) * 0.4 + 0.3
    ref = _mmd_loop(a, b, lambda u, v: math.exp(-float(np.sum((u - v) ** 2))))
    got = float(mmd(torch.tensor(a), torch.tensor(b), kernel="paper"))
    assert got == pytest.approx(ref, rel=1e-9, abs=1e-12)
    assert ref > 0


def test_mmd_multi_kernel_matches_double_loop() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(6, 3)), rng.normal(size=(5, 3)) + 1.0
    pooled = np.concatenate([a, b])
    n = len(pooled)
    d2 = [float(np.sum((pooled[i] - pooled[j]) ** 2)) for i in range(n) for j in range(n) if i != j]
    base = sum(d2) / (n * n - n)
    sig2 = [base * 2.0 ** (i - 2) for i in range(5)]
    ref = _mmd_loop(a, b, lambda u, v: sum(math.exp(-float(np.sum((u - v) ** 2)) / s) for s in sig2))
    got = float(mmd(torch.tensor(a), torch.tensor(b), kernel="multi"))
    assert got == pytest.approx(ref, rel=1e-9)


def test_mmd_is_zero_for_identical_sets_and_has_gradient() -> None:
    z = torch.randn(5, 4, dtype=torch.float64)
    assert float(mmd(z, z.clone())) == pytest.approx(0.0, abs=1e-12)
    a = torch.randn(5, 4, requires_grad=True)
    b = torch.randn(3, 4) + 0.5
    mmd(a * 0.3, b * 0.3).backward()
    assert a.grad is not None and float(a.grad.abs().sum()) > 0
    assert float(mmd(a, b[:0]).detach()) == 0.0
    with pytest.raises(ConfigError):
        mmd(a, b, kernel="nope")


@pytest.mark.parametrize("k", [1, 2, 3])
def test_bss_is_sum_of_k_smallest_squared_singular_values(k: int) -> None:
    rng = np.random.default_rng(k)
    z = rng.normal(size=(8, 5))
    s = np.linalg.svd(z, compute_uv=False)
    ref = float(np.sum(np.sort(s)[:k] ** 2))
    got = float(bss(torch.tensor(z, dtype=torch.float64), k))
    assert got == pytest.approx(ref, rel=1e-5)
    zt = torch.tensor(z, dtype=torch.float32, requires_grad=True)
    bss(zt, k).backward()
    assert float(zt.grad.abs().sum()) > 0
    with pytest.raises(ConfigError):
        bss(zt, 0)


def test_adaptive_delta_formula_and_monotonicity() -> None:
    assert adaptive_delta(0.8, 0.8, 0.05) == 0.5
    for a_domi, a_mix, s in [(0.7, 0.8, 0.05), (0.9, 0.8, 0.05), (0.81, 0.8, 0.2)]:
        assert adaptive_delta(a_domi, a_mix, s) == pytest.approx(1 / (1 + math.exp((a_domi - a_mix) / s)))
    grid = np.linspace(0.5, 1.0, 41)
    vals = [adaptive_delta(a, 0.75, 0.05) for a in grid]
    assert all(x > y for x, y in zip(vals[:-1], vals[1:], strict=False))  # strictly decreasing in A_domi
    assert adaptive_delta(0.0, 0.9, 0.05) > 0.999 and adaptive_delta(1.0, 0.1, 0.05) < 1e-6
    assert adaptive_delta(1e6, 0.0, 1e-3) == 0.0 and adaptive_delta(-1e6, 0.0, 1e-3) == 1.0  # no overflow
    assert adaptive_delta(float("nan"), 0.8) == 0.5
    with pytest.raises(ConfigError):
        adaptive_delta(0.5, 0.5, 0.0)


def test_task_losses() -> None:
    ce = torch.tensor([1.0, 2.0, 3.0, 5.0, 7.0])
    d = torch.tensor([0, 0, 1, 1, -1])
    assert float(binary_task_loss(ce, d, 0.3)) == pytest.approx(0.3 * 1.5 + 0.7 * 4.0)
    assert float(binary_task_loss(ce, torch.tensor([0, 0, 0, 0, -1]), 0.3)) == pytest.approx(ce.mean().item())
    # K-way with one protected and one less-prevalent group equals the binary loss
    assert float(kway_task_loss(ce, d, {0: 0.3}, [1])) == pytest.approx(0.3 * 1.5 + 0.7 * 4.0)
    # three groups: P = {0, 2}, S = {1}; deltas 0.2 and 0.6 -> d_bar = 0.6
    g = torch.tensor([0, 0, 1, 1, 2])
    blk_p = (0.2 * 1.5 + 0.6 * 7.0) / 2
    blk_s = 4.0
    ref = (blk_p + 0.4 * blk_s) / ((0.2 + 0.6) / 2 + 0.4)
    assert float(kway_task_loss(ce, g, {0: 0.2, 2: 0.6}, [1])) == pytest.approx(ref)
    z = torch.randn(5, 3, dtype=torch.float64)
    assert float(kway_mmd(z, g, [1])) == pytest.approx(float(mmd(z[g != 1], z[g == 1])))


def test_less_prevalent_default_and_explicit() -> None:
    assert less_prevalent_codes([100, 40, 45]) == (1, 2)  # N_g < N_max / 2
    assert less_prevalent_codes([100, 80, 60]) == (2,)  # none below half: the smallest
    assert less_prevalent_codes([0, 50]) == (1,)
    assert less_prevalent_codes([10, 20], ("a", "b"), ["b"]) == (1,)
    with pytest.raises(ConfigError):
        less_prevalent_codes([10, 20], ("a", "b"), ["c"])
    with pytest.raises(ConfigError):
        less_prevalent_codes([10, 20], ("a", "b"), ["a", "b"])
