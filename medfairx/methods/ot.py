"""Optimal-transport distances between 1-D samples (losses), for FIS (docs/methods.md §2.1).

The official FIS code measures group distances with geomloss'
``SamplesLoss("sinkhorn", p=2, blur=0.1)``: the debiased Sinkhorn divergence

    S_ε(α, β) = OT_ε(α, β) − ½·OT_ε(α, α) − ½·OT_ε(β, β),

with cost ``c(x, y) = |x − y|²/2``, ``ε = blur² = 0.01`` and uniform weights, where
``OT_ε(α, β) = min_π ⟨π, C⟩ + ε·KL(π ‖ α⊗β)`` is the entropic OT value (the dual value
geomloss returns, entropy term included).

Backends (``backend=``):

* ``"sinkhorn"`` (default) — Sinkhorn in float64 with ε-scaling (geomloss' annealing from
  the data diameter, factor ``scaling²`` per step, in the log domain) followed by iterations
  at the target ε until the potentials stop moving. Unlike geomloss, which stops after the
  annealing schedule, it iterates to convergence, so it matches POT's exact solver (tests
  compare the two). The iterations at the target ε run in the scaling domain on a kernel
  re-centred on the current potentials (Schmitzer, SIAM J. Sci. Comput. 2019), several
  problems that share one side at once (:func:`entropic_ot_sinkhorn_many`, used for a
  batch's groups): the same iterates and stopping iteration as the log-domain loop
  (:func:`_sinkhorn_log`, kept as the reference) up to float64 rounding, several times faster.
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


def entropic_ot_sinkhorn_many(
    pool: torch.Tensor,
    samples: Sequence[torch.Tensor],
    eps: float,
    *,
    pool_first: bool = False,
    scaling: float = 0.5,
    tol: float = 1e-6,
    max_iter: int = 1000,
) -> list[float]:
    """``[entropic_ot_sinkhorn(s, pool) for s in samples]`` (or ``(pool, s)`` when
    ``pool_first``), the problems iterated together.

    Equal to the one-by-one values up to float64 rounding (same iterates, same stopping
    iteration per problem); a sample equal to the pool is solved on its own (the symmetric
    solver).

    Args:
        pool: the shared side.
        samples: the other sides.
        eps, scaling, tol, max_iter: as in :func:`entropic_ot_sinkhorn`.
        pool_first: the pool is ``x`` (the first measure) instead of ``y``.

    Returns:
        One ``OT_ε`` value per sample.
    """
    p = _as_1d(pool)
    vs = [_as_1d(v) for v in samples]
    if not eps > 0:
        raise ConfigError(f"Sinkhorn needs eps > 0, got {eps}.")
    eps = float(eps)
    out: list[float | None] = [None] * len(vs)
    with _single_thread():
        cross = [i for i, v in enumerate(vs) if not (v.numel() == p.numel() and torch.equal(v, p))]
        for i in set(range(len(vs))) - set(cross):
            out[i] = _sinkhorn(p, vs[i], eps, scaling, tol, max_iter)
        if cross:
            others = [vs[i] for i in cross]
            shared = [p] * len(cross)
            xs, ys = (shared, others) if pool_first else (others, shared)
            for i, v in zip(cross, _sinkhorn_cross_many(xs, ys, eps, scaling, tol, max_iter, shared_x=pool_first),
                            strict=True):
                out[i] = v
    return [float(v) for v in out if v is not None]


def _schedule(c_max: float, eps: float, scaling: float) -> list[float]:
    """The ε-scaling steps above ``eps``: ``max C``, then ×``scaling²`` per step."""
    e = max(c_max, eps)
    schedule: list[float] = []
    while e > eps:
        schedule.append(e)
        e = max(e * scaling**2, eps)
    return schedule


def _c_transform(pot: torch.Tensor, log_w: torch.Tensor, cost: torch.Tensor, e_: float) -> torch.Tensor:
    """``−e·log Σ_j w_j·exp((pot_j − cost_ij)/e)`` for every row ``i`` (log-sum-exp)."""
    return -e_ * torch.logsumexp(log_w[None, :] + (pot[None, :] - cost) / e_, dim=1)


def _sinkhorn(x: torch.Tensor, y: torch.Tensor, eps: float, scaling: float, tol: float, max_iter: int) -> float:
    """``OT_ε``: the symmetric problem in the log domain, the cross problem with
    :func:`_sinkhorn_cross_many` (same iterates as :func:`_sinkhorn_log`, up to rounding)."""
    if x.numel() == y.numel() and torch.equal(x, y):
        return _sinkhorn_log(x, y, eps, scaling, tol, max_iter)
    return _sinkhorn_cross_many([x], [y], eps, scaling, tol, max_iter, shared_x=True)[0]


def _sinkhorn_cross_many(
    xs: Sequence[torch.Tensor],
    ys: Sequence[torch.Tensor],
    eps: float,
    scaling: float,
    tol: float,
    max_iter: int,
    *,
    shared_x: bool,
) -> list[float]:
    """``OT_ε(xs[k], ys[k])`` for problems sharing one side, solved together.

    Each problem runs the ε-scaling steps of :func:`_sinkhorn_log` in the log domain; the
    iterations at the target ε then run for all problems at once
    (:func:`_cross_iterations_batch`), each stopping at its own iteration. A problem that
    does not converge within ``max_iter`` gets the usual warning.

    Args:
        xs, ys: 1-D float64 samples; ``xs`` all equal when ``shared_x`` (else ``ys`` all equal).
        eps, scaling, tol, max_iter: as in :func:`entropic_ot_sinkhorn`.
        shared_x: which side the problems share.

    Returns:
        The values ``⟨a, f⟩ + ⟨b, g⟩``, one per problem.
    """
    costs, fs, gs, log_as, log_bs = [], [], [], [], []
    for x, y in zip(xs, ys, strict=True):
        c = half_sq_cost(x, y)
        n, m = c.shape
        log_a = torch.full((n,), -math.log(n), dtype=torch.float64)
        log_b = torch.full((m,), -math.log(m), dtype=torch.float64)
        ct = c.T.contiguous()
        f = torch.zeros(n, dtype=torch.float64)
        g = torch.zeros(m, dtype=torch.float64)
        for e_ in _schedule(float(c.max()), eps, scaling):
            f = _c_transform(g, log_b, c, e_)
            g = _c_transform(f, log_a, ct, e_)
        costs.append(c.numpy())
        fs.append(f.numpy())
        gs.append(g.numpy())
        log_as.append(log_a)
        log_bs.append(log_b)
    fs, gs, converged = _cross_iterations_batch(costs, fs, gs, eps, tol, max_iter, shared_x=shared_x)
    out = []
    for f_k, g_k, ok, log_a, log_b in zip(fs, gs, converged, log_as, log_bs, strict=True):
        if not ok:
            warnings.warn(f"Sinkhorn did not converge to tol={tol} in {max_iter} iterations (eps={eps}).", stacklevel=4)
        out.append(float(log_a.exp() @ torch.from_numpy(f_k) + log_b.exp() @ torch.from_numpy(g_k)))
    return out


#: Re-centre the kernel once a potential is this many ε from its reference (so every
#: ``exp((pot − pot_ref)/ε)`` factor stays below ``e^30``).
_ABSORB = 30.0
#: A kernel sum whose log leaves ``(−_LOG_RANGE, _LOG_RANGE)`` is not trusted: the update is
#: redone on a re-centred kernel, or in the log domain.
_LOG_RANGE = 460.0


def _log_update(pot: np.ndarray, w: float, cost: np.ndarray, eps: float) -> np.ndarray:
    """``−ε·log Σ_j w·exp((pot_j − cost_ij)/ε)`` per row, by log-sum-exp (numpy)."""
    z: np.ndarray = math.log(w) + (pot[None, :] - cost) / eps
    mx = z.max(axis=1)
    out: np.ndarray = -eps * (np.log(np.exp(z - mx[:, None]).sum(axis=1)) + mx)
    return out


class _KernelBatch:
    """Problems sharing one side, kernels side by side (shared side as rows, ``L × Σ_k m_k``).

    Holds the potentials ``p`` (shared side, ``(L, A)``: one column per active problem) and
    ``q`` (own sides, concatenated), the reference potentials ``(p̄, q̄)`` and the kernel
    ``K = exp((p̄ + q̄ − C)/ε)`` premultiplied by either side's uniform weights.
    """

    p: np.ndarray
    q: np.ndarray
    k_own: np.ndarray
    k_shared_t: np.ndarray

    def __init__(self, cs: list[np.ndarray], ps: list[np.ndarray], qs: list[np.ndarray], eps: float) -> None:
        sizes = [c.shape[1] for c in cs]
        self.cs, self.eps = cs, eps
        self.starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.seg = np.repeat(np.arange(len(cs)), sizes)
        self.rows = np.arange(len(self.seg))
        self.mask = (self.seg[:, None] == np.arange(len(cs))[None, :]).astype(np.float64)
        self.cost = np.concatenate(cs, axis=1)
        self.w_shared = math.exp(-math.log(cs[0].shape[0]))
        self.w_own = [math.exp(-math.log(m)) for m in sizes]
        self.w_col = np.repeat(self.w_own, sizes)
        self.p = np.stack(ps, axis=1)
        self.q = np.concatenate(qs)
        self.centre()

    def centre(self) -> None:
        """Rebuild the kernel around the current potentials."""
        self.p_ref, self.q_ref = self.p, self.q
        k = np.exp((self.p[:, self.seg] + self.q[None, :] - self.cost) / self.eps)
        self.k_own = k * self.w_col[None, :]
        self.k_shared_t = np.ascontiguousarray((k * self.w_shared).T)

    def _log_sum(self, side: str) -> np.ndarray:
        """``log`` of the kernel sums of a half-step updating ``side`` (``"shared"`` or ``"own"``)."""
        if side == "shared":  # each problem sums over its own columns
            w = np.exp((self.q - self.q_ref) / self.eps)
            own: np.ndarray = np.log(self.k_own @ (self.mask * w[:, None]))
            return own
        w = np.exp((self.p - self.p_ref) / self.eps)  # each column uses its own problem's p
        shared: np.ndarray = np.log((self.k_shared_t @ w)[self.rows, self.seg])
        return shared

    def _half_step(self, side: str, retry: bool) -> None:
        """Update ``side``; re-centre after a drift past ``_ABSORB`` (or before a retry)."""
        ref = self.p_ref if side == "shared" else self.q_ref
        ls = self._log_sum(side)
        flat = ls.reshape(-1)
        if float(flat @ flat) < _ABSORB**2:  # then every |ls| < _ABSORB: the common case
            new, drifted = ref - self.eps * ls, False
        else:
            worst = float(np.abs(flat).max())
            if not worst < _LOG_RANGE and retry:  # out of range (or NaN): re-centre and redo
                self.centre()
                ref = self.p_ref if side == "shared" else self.q_ref
                ls = self._log_sum(side)
                worst = float(np.abs(ls).max())
            if worst < _LOG_RANGE:
                new, drifted = ref - self.eps * ls, worst > _ABSORB
            else:
                new, drifted = (self._shared_log() if side == "shared" else self._own_log()), True
        if side == "shared":
            self.p = new
        else:
            self.q = new
        if drifted:
            self.centre()

    def _shared_log(self) -> np.ndarray:
        """``p_new`` from ``q`` in the log domain."""
        q = [self.q[a:b] for a, b in zip(self.starts[:-1], self.starts[1:], strict=True)]
        return np.stack([_log_update(qk, w, c, self.eps) for qk, w, c in zip(q, self.w_own, self.cs, strict=True)], axis=1)

    def _own_log(self) -> np.ndarray:
        """``q_new`` from ``p`` in the log domain."""
        return np.concatenate([_log_update(self.p[:, i], self.w_shared, c.T, self.eps) for i, c in enumerate(self.cs)])

    def step(self, first: str) -> None:
        """One Sinkhorn iteration: update the ``first`` side (``"shared"`` or ``"own"``), then the other."""
        self._half_step(first, retry=True)
        self._half_step("own" if first == "shared" else "shared", retry=False)

    def own_part(self, i: int) -> np.ndarray:
        """Problem ``i``'s own-side potential."""
        part: np.ndarray = self.q[self.starts[i]:self.starts[i + 1]].copy()
        return part


_MAX = np.maximum.reduce


def _cross_iterations_batch(
    costs: list[np.ndarray],
    fs: list[np.ndarray],
    gs: list[np.ndarray],
    eps: float,
    tol: float,
    max_iter: int,
    *,
    shared_x: bool,
) -> tuple[list[np.ndarray], list[np.ndarray], list[bool]]:
    """The Sinkhorn iterations at the target ε of :func:`_sinkhorn_log`, in the scaling domain,
    for several problems that share one side.

    The update ``f_i ← −ε·log Σ_j b·exp((g_j − C_ij)/ε)`` (and the same for ``g``) is computed as
    ``f_i = f̄_i − ε·log Σ_j b·K_ij·exp((g_j − ḡ_j)/ε)`` with the kernel
    ``K_ij = exp((f̄_i + ḡ_j − C_ij)/ε)`` built around reference potentials ``(f̄, ḡ)``
    ("absorption", Schmitzer, SIAM J. Sci. Comput. 2019): one matrix product per half-step
    for all problems instead of an ``n×m`` log-sum-exp per problem (:class:`_KernelBatch`).
    The kernel is re-centred on the current potentials whenever one has moved ``_ABSORB·ε``
    from its reference, so kernel entries lost to underflow weigh less than ``1e-290``
    against sums of at least ``e^−460``; an update whose sum is out of that range is redone
    on a re-centred kernel, else in the log domain. Same iterates and stopping rule (each
    problem its own) as the log-domain loop, up to float64 rounding.

    Args:
        costs: ``(n_k, m_k)`` cost matrices (all ``n_k`` equal when ``shared_x``, else all ``m_k``).
        fs, gs: the potentials after the ε-scaling steps.
        eps, tol, max_iter: as in :func:`entropic_ot_sinkhorn`.
        shared_x: the problems share ``x`` (``f``, updated first, is on the shared side) or ``y``.

    Returns:
        ``(fs, gs, converged)`` per problem.
    """
    # orient every problem with the shared side as rows: potentials p (shared) and q (own side)
    cs = list(costs) if shared_x else [c.T for c in costs]
    ps, qs = (list(fs), list(gs)) if shared_x else (list(gs), list(fs))
    converged = [False] * len(cs)
    active = list(range(len(cs)))
    it = 0
    while active and it < max_iter:
        batch = _KernelBatch([cs[k] for k in active], [ps[k] for k in active], [qs[k] for k in active], eps)
        while it < max_iter:
            it += 1
            before = batch.p if shared_x else batch.q
            batch.step("shared" if shared_x else "own")
            if shared_x:
                moved = _MAX(np.abs(batch.p - before), axis=0)
            else:
                moved = np.maximum.reduceat(np.abs(batch.q - before), batch.starts[:-1])
            if float(moved.min()) >= tol * eps and it < max_iter:
                continue
            done = moved < tol * eps
            if done.any() or it >= max_iter:
                for i, k in enumerate(active):
                    ps[k], qs[k] = batch.p[:, i].copy(), batch.own_part(i)
                    converged[k] = bool(done[i])
                active = [k for i, k in enumerate(active) if not done[i]]
                break
    return (ps, qs, converged) if shared_x else (qs, ps, converged)


def _sinkhorn_log(x: torch.Tensor, y: torch.Tensor, eps: float, scaling: float, tol: float, max_iter: int) -> float:
    """``OT_ε`` by log-domain Sinkhorn throughout (the reference for :func:`_sinkhorn`)."""
    c = half_sq_cost(x, y)
    n, m = c.shape
    log_a = torch.full((n,), -math.log(n), dtype=torch.float64)
    log_b = torch.full((m,), -math.log(m), dtype=torch.float64)
    schedule = _schedule(float(c.max()), eps, scaling)
    c_transform = _c_transform

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
    pool_first: bool = False,
) -> dict[int, float]:
    """``S_ε(samples[g], pool)`` for every key, sharing the ``OT_ε(pool, pool)`` term.

    Args:
        samples: ``{group: 1-D values}``.
        pool: the reference values (e.g. all groups' values concatenated).
        blur: geomloss' blur (``ε = blur²``).
        backend: see :func:`sinkhorn_divergence`.
        pool_first: compute ``S_ε(pool, samples[g])`` instead, i.e. exactly
            ``sinkhorn_divergence(pool, samples[g])`` (the solver is not symmetric in its
            iterates, so the order decides the value before convergence).

    Returns:
        ``{group: S_ε}``.
    """
    if backend not in ("sinkhorn", "pot"):
        if pool_first:
            return {g: sinkhorn_divergence(pool, v, blur=blur, backend=backend) for g, v in samples.items()}
        return {g: sinkhorn_divergence(v, pool, blur=blur, backend=backend) for g, v in samples.items()}
    solve = entropic_ot_sinkhorn if backend == "sinkhorn" else entropic_ot_pot
    eps = float(blur) ** 2
    p = _as_1d(pool)
    vs = {g: _as_1d(v) for g, v in samples.items()}
    self_pool = solve(p, p, eps)
    if backend == "sinkhorn":  # the cross problems share the pool: solved together
        cross = dict(zip(vs, entropic_ot_sinkhorn_many(p, list(vs.values()), eps, pool_first=pool_first), strict=True))
    else:
        cross = {g: solve(p, v, eps) if pool_first else solve(v, p, eps) for g, v in vs.items()}
    out: dict[int, float] = {}
    for g, v in vs.items():
        if pool_first:
            out[g] = cross[g] - 0.5 * self_pool - 0.5 * solve(v, v, eps)
        else:
            out[g] = cross[g] - 0.5 * solve(v, v, eps) - 0.5 * self_pool
    return out
