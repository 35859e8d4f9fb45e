"""Seeded, vectorised, stratified percentile bootstrap of every metric at once.

Resampling is with replacement *within each stratum* (group x label for classification,
group for segmentation), so every replicate keeps each group's size (and class counts).
Replicate ``b`` draws from its own generator ``default_rng(SeedSequence(seed).spawn(B)[b])``,
so results do not depend on how replicates are chunked, and :meth:`StratifiedBootstrap.indices`
can rebuild any replicate explicitly. A chunk of replicates is handed to the
:class:`~medfairx.metrics.engine.Engine` as its within-stratum draws
(:class:`~medfairx.metrics.engine.Draws`): AUC reads their per-stratum counts in each
subset's score order, sorted once; every other measure uses their multiplicity counts.
All metrics of a chunk come from the same draws (paired), without re-sorting.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from medfairx.errors import ConfigError
from medfairx.metrics.catalogue import MetricDef
from medfairx.metrics.engine import Draws, Engine, Problem, warn_undefined

DEFAULT_N_BOOT = 1000
DEFAULT_CI = 0.95
CHUNK_ELEMENTS = 4_000_000
BAD_CI = "ci must be in (0, 1); got {ci!r}."
BAD_N_BOOT = "n_boot must be >= 0; got {n_boot!r}."


def _draw_dtype(size: int) -> type[np.signedinteger[Any]]:
    """Integer type of one stratum's draws.

    Below 2**31 members, ``Generator.integers`` draws int32 values from the same 32-bit
    stream as the default int64 (same values, same generator state afterwards), faster.
    """
    return np.int32 if size < 2**31 else np.int64


class StratifiedBootstrap:
    """Replicate index sets drawn within strata.

    Args:
        strata: stratum label per sample.
        n_boot: number of replicates.
        seed: base seed.
    """

    def __init__(self, strata: np.ndarray, n_boot: int, seed: int) -> None:
        if n_boot < 0:
            raise ConfigError(BAD_N_BOOT.format(n_boot=n_boot))
        strata = np.asarray(strata)
        self.n = int(strata.size)
        self.n_boot = int(n_boot)
        self.members = [np.flatnonzero(strata == s) for s in np.unique(strata)]
        self._seeds = np.random.SeedSequence(seed).spawn(self.n_boot)

    def _draws(self, b: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Per stratum: its members and replicate ``b``'s draws (positions within the stratum)."""
        rng = np.random.default_rng(self._seeds[b])
        for m in self.members:
            yield m, rng.integers(0, m.size, m.size, dtype=_draw_dtype(m.size))

    def indices(self, b: int) -> np.ndarray:
        """Sample positions of replicate ``b`` (length ``n``, stratum by stratum)."""
        parts = [m[r] for m, r in self._draws(b)]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def draws(self, start: int, stop: int) -> Draws:
        """Replicates ``start..stop-1`` as within-stratum counts (in sample order via ``.dense()``).

        Each stratum's draws are counted as soon as they are drawn, while they are in cache.
        """
        counts = np.empty((stop - start, self.n), np.int32)
        for i, b in enumerate(range(start, stop)):
            at = 0
            for m, r in self._draws(b):
                counts[i, at:at + m.size] = np.bincount(r, minlength=m.size)
                at += m.size
        return Draws(self.n, self.members, counts)

    def counts(self, start: int, stop: int) -> np.ndarray:
        """Multiplicity counts of replicates ``start..stop-1``: ``(n, stop - start)``."""
        return self.draws(start, stop).dense()

    def chunks(self, chunk: int) -> Iterator[Draws]:
        """Draws of at most ``chunk`` replicates each."""
        for start in range(0, self.n_boot, chunk):
            yield self.draws(start, min(start + chunk, self.n_boot))


@dataclass
class BootstrapResult:
    """Point values and percentile CIs.

    ``point[name]`` / ``low[name]`` / ``high[name]`` are ``(1 + G,)`` for base metrics
    (overall, then groups) and scalars (shape ``()``) for summaries; ``replicates[name]``
    keeps every replicate (``(B, 1 + G)`` or ``(B,)``).
    """

    problem: Problem
    defs: list[MetricDef]
    point: dict[str, np.ndarray]
    low: dict[str, np.ndarray]
    high: dict[str, np.ndarray]
    replicates: dict[str, np.ndarray]

    def to_frame(self) -> pd.DataFrame:
        """Long rows: metric, scope, group, value, ci_low, ci_high, n, prevalence."""
        p = self.problem
        counts, prev = p.counts(), p.prevalence()
        rows: list[dict[str, Any]] = []
        for d in self.defs:
            v, lo, hi = self.point[d.name], self.low[d.name], self.high[d.name]
            if d.transform is None:
                for j, label in enumerate(("",) + p.names):
                    rows.append(dict(metric=d.name, scope="group" if j else "overall", group=label,
                                     value=v[j], ci_low=lo[j], ci_high=hi[j], n=int(counts[j]),
                                     prevalence=prev[j]))
            else:
                rows.append(dict(metric=d.name, scope="summary", group="", value=float(v), ci_low=float(lo),
                                 ci_high=float(hi), n=int(counts[0]), prevalence=prev[0]))
        result: pd.DataFrame = pd.DataFrame(rows, columns=["metric", "scope", "group", "value", "ci_low", "ci_high", "n",
                                           "prevalence"])
        return result


def bootstrap(problem: Problem, defs: list[MetricDef], *, n_boot: int = DEFAULT_N_BOOT, seed: int = 0,
              ci: float = DEFAULT_CI) -> BootstrapResult:
    """Point values and stratified percentile-bootstrap CIs of ``defs`` on ``problem``.

    Args:
        problem: the per-sample inputs.
        defs: metric definitions (all computed from the same replicates).
        n_boot: replicates; 0 gives NaN CIs.
        seed: base seed (same seed, same CIs).
        ci: coverage of the interval.
    """
    if not 0.0 < ci < 1.0:
        raise ConfigError(BAD_CI.format(ci=ci))
    engine = Engine(problem)
    point = engine.compute(defs, np.ones((problem.n, 1)))
    warn_undefined(defs, point, problem.names)
    sampler = StratifiedBootstrap(problem.strata(), n_boot, seed)
    chunk = max(1, CHUNK_ELEMENTS // max(problem.n, 1))
    parts: dict[str, list[np.ndarray]] = {d.name: [] for d in defs}
    for W in sampler.chunks(chunk):
        for name, arr in engine.compute(defs, W).items():
            parts[name].append(arr)
    q = [(1.0 - ci) / 2 * 100, (1.0 + ci) / 2 * 100]
    low, high, reps = {}, {}, {}
    for d in defs:
        p0 = point[d.name][0]
        if n_boot == 0:
            reps[d.name] = np.empty((0,) + p0.shape)
            low[d.name] = high[d.name] = np.full(p0.shape, np.nan)
            continue
        r = np.concatenate(parts[d.name], axis=0)
        reps[d.name] = r
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
            lo, hi = np.nanpercentile(r, q, axis=0)
        low[d.name], high[d.name] = np.asarray(lo), np.asarray(hi)
    return BootstrapResult(problem, defs, {k: v[0] for k, v in point.items()}, low, high, reps)
