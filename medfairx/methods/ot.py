"""Optimal-transport distances between 1-D samples (losses), for FIS (docs/methods.md §2.1).

The official FIS code measures group distances with geomloss'
``SamplesLoss("sinkhorn", p=2, blur=0.1)``: the debiased Sinkhorn divergence

    S_ε(α, β) = OT_ε(α, β) − ½·OT_ε(α, α) − ½·OT_ε(β, β),

with cost ``c(x, y) = |x − y|²/2``, ``ε = blur² = 0.01`` and uniform weights, where
``OT_ε(α, β) = min_π ⟨π, C⟩ + ε·KL(π ‖ α⊗β)`` is the entropic OT value (the dual value
geomloss returns, entropy term included).

Backends (``backend=``):

* ``"sinkhorn"`` (default) — a log-domain Sinkhorn in float64 torch with ε-scaling
  (geomloss' annealing from the data diameter, factor ``scaling²`` per step) followed by
  iterations at the target ε until the potentials stop moving. Unlike geomloss,
  which stops after the annealing schedule, it iterates to convergence, so it matches POT's
  exact solver (tests compare the two).
* ``"pot"`` — POT's ``ot.solve(C, a, b, reg=ε, reg_type="KL", method="sinkhorn_log")``
  (``res.value``, the same objective); exact but far slower at ``ε = 0.01``, meant for
  checking. POT is imported lazily.
* ``"wasserstein_1d"`` — the cheap ``ε → 0`` approximation ``ot.wasserstein_1d(x, y, p=2)/2``
  (the squared 2-Wasserstein distance under the same halved cost). Results computed this way
  must be tagged as such.

Shared by core (:mod:`medfairx.methods.fis`, hence the plugins medfairx-baselines and medfairx-fairdi).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from medfairx.errors import ConfigError

OT_BACKENDS: tuple[str, ...] = ("sinkhorn", "pot", "wasserstein_1d")


def _as_1d(x: torch.Tensor | np.ndarray | Sequence[float]) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x), dtype=torch.float64)
    t = t.reshape(-1)
    if t.numel() == 0:
        raise ConfigError("Optimal transport needs at least one sample on each side; got an empty set.")
    if not torch.isfinite(t).all():
        raise ConfigError("Optimal transport got non-finite loss values (NaN or Inf).")
    return t


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    """Small matrices: intra-op threading only adds overhead (and stalls on busy machines)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def half_sq_cost(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The cost matrix ``C_ij = |x_i − y_j|²/2`` of two 1-D samples."""
    return 0.5 * (x.reshape(-1, 1) - y.reshape(1, -1)) ** 2


def entropic_ot_sinkhorn(
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    scaling: float = 0.5,
    tol: float = 1e-6,
    max_iter: int = 1000,
) -> float:
    """``OT_ε`` between uniform empirical measures on 1-D samples (log-domain Sinkhorn).

    ε-scaling (one update per annealing step from ``ε₀ = max C`` down to ``ε``), then
    updates at ``ε`` until the dual potentials move by less than ``tol·ε`` (sup norm). When
    ``x`` and ``y`` are the same sample the symmetric fixed point ``f ← ½(f + T(f))`` is used
    (it converges in a few iterations, as in geomloss). For well separated samples the
    cross problem converges sublinearly at ``ε = 0.01``; after ``max_iter`` iterations the
    value is typically within 1e-6 of the limit (a warning says so), far below what the FIS
    weights resolve.

    Args:
        x: ``(n,)`` samples of ``α``.
        y: ``(m,)`` samples of ``β``.
        eps: the entropic regularisation ``ε``.
        scaling: ε-scaling factor on the blur (ε shrinks by ``scaling²`` per annealing step).
        tol: convergence tolerance, relative to ``ε``.
        max_iter: cap on the iterations at the target ε.

    Returns:
        ``⟨a, f⟩ + ⟨b, g⟩`` at the converged dual potentials (= the primal regularised value).
    """
    x, y = _as_1d(x), _as_1d(y)
    if not eps > 0:
        raise ConfigError(f"Sinkhorn needs eps > 0, got {eps}.")
    with _single_thread():
        return _sinkhorn(x, y, float(eps), scaling, tol, max_iter)


def _sinkhorn(x: torch.Tensor, y: torch.Tensor, eps: float, scaling: float, tol: float, max_iter: int) -> float:
    c = half_sq_cost(x, y)
    n, m = c.shape
    log_a = torch.full((n,), -math.log(n), dtype=torch.float64)
    log_b = torch.full((m,), -math.log(m), dtype=torch.float64)
    e = max(float(c.max()), eps)
    schedule: list[float] = []
    while e > eps:
        schedule.append(e)
        e = max(e * scaling**2, eps)

    def c_transform(pot: torch.Tensor, log_w: torch.Tensor, cost: torch.Tensor, e_: float) -> torch.Tensor:
        return -e_ * torch.logsumexp(log_w[None, :] + (pot[None, :] - cost) / e_, dim=1)

    if n == m and torch.equal(x, y):  # symmetric problem OT_eps(a, a)
        f = torch.zeros(n, dtype=torch.float64)
        for e_ in schedule:
            f = 0.5 * (f + c_transform(f, log_a, c, e_))
        for _ in range(max_iter):
            new = 0.5 * (f + c_transform(f, log_a, c, eps))
            moved = float((new - f).abs().max())
            f = new
            if moved < tol * eps:
                break
        f = c_transform(f, log_a, c, eps)
        return float(2.0 * (log_a.exp() @ f))

    ct = c.T.contiguous()
    f = torch.zeros(n, dtype=torch.float64)
    g = torch.zeros(m, dtype=torch.float64)
    for e_ in schedule:
        f = c_transform(g, log_b, c, e_)
        g = c_transform(f, log_a, ct, e_)
    for _ in range(max_iter):
        f_new = c_transform(g, log_b, c, eps)
        g = c_transform(f_new, log_a, ct, eps)
        moved = float((f_new - f).abs().max())
        f = f_new
        if moved < tol * eps:
            break
    else:
        warnings.warn(f"Sinkhorn did not converge to tol={tol} in {max_iter} iterations (eps={eps}).", stacklevel=3)
    return float(log_a.exp() @ f + log_b.exp() @ g)


def entropic_ot_pot(
    x: torch.Tensor, y: torch.Tensor, eps: float, *, max_iter: int = 100000, tol: float = 1e-10
) -> float:
    """``OT_ε`` with POT (``ot.solve(..., reg_type="KL")``); slow, for cross-checks."""
    import ot  # lazy: POT is only needed for this backend

    xs, ys = _as_1d(x).numpy(), _as_1d(y).numpy()
    cost = 0.5 * (xs[:, None] - ys[None, :]) ** 2
    a = np.full(xs.size, 1.0 / xs.size)
    b = np.full(ys.size, 1.0 / ys.size)
    res = ot.solve(cost, a, b, reg=float(eps), reg_type="KL", method="sinkhorn_log", max_iter=max_iter, tol=tol)
    return float(res.value)


def sinkhorn_divergence(
    x: torch.Tensor | np.ndarray | Sequence[float],
    y: torch.Tensor | np.ndarray | Sequence[float],
    *,
    blur: float = 0.1,
    backend: str = "sinkhorn",
) -> float:
    """The debiased Sinkhorn divergence ``S_ε`` between two sets of 1-D values (no gradient).

    Args:
        x: samples of ``α`` (e.g. one group's losses).
        y: samples of ``β``.
        blur: geomloss' blur; ``ε = blur²`` (p = 2).
        backend: ``"sinkhorn"``, ``"pot"`` or ``"wasserstein_1d"`` (see the module docstring).

    Returns:
        ``S_ε(α, β)`` as a float (≥ 0 up to solver tolerance; 0 for identical samples).

    Raises:
        ConfigError: unknown backend, empty or non-finite inputs.
    """
    xs, ys = _as_1d(x), _as_1d(y)
    if backend == "wasserstein_1d":
        import ot  # lazy

        return float(ot.wasserstein_1d(xs.numpy(), ys.numpy(), p=2)) / 2.0
    solve: Callable[..., float]
    if backend == "sinkhorn":
        solve = entropic_ot_sinkhorn
    elif backend == "pot":
        solve = entropic_ot_pot
    else:
        raise ConfigError(f"Unknown OT backend {backend!r}; use one of {', '.join(OT_BACKENDS)}.")
    eps = float(blur) ** 2
    return solve(xs, ys, eps) - 0.5 * solve(xs, xs, eps) - 0.5 * solve(ys, ys, eps)


def sinkhorn_divergences_to_pool(
    samples: dict[int, torch.Tensor],
    pool: torch.Tensor,
    *,
    blur: float = 0.1,
    backend: str = "sinkhorn",
) -> dict[int, float]:
    """``S_ε(samples[g], pool)`` for every key, sharing the ``OT_ε(pool, pool)`` term.

    Args:
        samples: ``{group: 1-D values}``.
        pool: the reference values (e.g. all groups' values concatenated).
        blur: geomloss' blur (``ε = blur²``).
        backend: see :func:`sinkhorn_divergence`.

    Returns:
        ``{group: S_ε}``.
    """
    if backend not in ("sinkhorn", "pot"):
        return {g: sinkhorn_divergence(v, pool, blur=blur, backend=backend) for g, v in samples.items()}
    solve = entropic_ot_sinkhorn if backend == "sinkhorn" else entropic_ot_pot
    eps = float(blur) ** 2
    p = _as_1d(pool)
    self_pool = solve(p, p, eps)
    out: dict[int, float] = {}
    for g, v in samples.items():
        vs = _as_1d(v)
        out[g] = solve(vs, p, eps) - 0.5 * solve(vs, vs, eps) - 0.5 * self_pool
    return out
