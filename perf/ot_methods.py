"""Speed of the optimal-transport methods (FIS, FairDi) against the plain log-domain Sinkhorn.

FIS's group distances (and so FairDi's backbone and student stages) solve entropic OT
problems between 1-D loss samples at ``ε = 0.01`` on every training step. The solver
(:mod:`medfairx.methods.ot`) runs the ε-scaling steps in the log domain and the iterations
at the target ε in the scaling domain with an absorbed kernel, all of a step's problems at
once (they share one side), and solves ``OT_ε(L, L)`` once per batch. The reference is the
earlier path, kept callable here: log-domain Sinkhorn throughout
(:func:`medfairx.methods.ot._sinkhorn_log`), one problem at a time, ``OT_ε(L, L)`` solved
again for every group.

Two measurements, each reference vs current in the same process:

1. the group distances of one batch (``fairdi`` variant: the batch's losses against each
   group's; ``fairvision``: each group's extra batch against their concatenation), on
   losses drawn like a trained head's (log-normal, some wide), in ms per batch;
2. whole runs of ``fis`` and ``fairdi`` on synthetic frozen-encoder features (``(N, D)``
   vectors, a ``linear`` head), in seconds per run, with the largest difference between
   the two runs' test scores (expected 0: the solvers differ only in float64 rounding,
   below what the float32 weights resolve).

Nothing is asserted: the target is a ratio >= 3 per run.

Usage::

    python perf/ot_methods.py                       # 2 groups, 1536 training rows, 2 epochs
    python perf/ot_methods.py --groups 4 --n-train 3072 --epochs 3
"""

from __future__ import annotations

import argparse
import contextlib
import time
import warnings
from collections.abc import Iterator

import numpy as np
import torch

import medfairx.methods.fis as fis_mod
import medfairx.methods.ot as ot
from medfairx.contracts import TaskData
from medfairx.methods.fis import group_distances_fairvision
from medfairx.testing import make_cpu_run_context


def _reference_batch(losses: torch.Tensor, groups: torch.Tensor, *, blur: float = 0.1, backend: str = "sinkhorn"
                     ) -> dict[int, float]:
    """The earlier ``fairdi``-variant distances: one divergence per group, ``OT_ε(L, L)`` each time."""
    values = losses.detach().reshape(-1).to(torch.float64).cpu()
    codes = groups.detach().reshape(-1).cpu()
    return {int(g): ot.sinkhorn_divergence(values, values[codes == g], blur=blur, backend=backend)
            for g in torch.unique(codes[codes >= 0]).tolist()}


def _reference_many(pool: torch.Tensor, samples: list[torch.Tensor], eps: float, *, pool_first: bool = False,
                    **_: object) -> list[float]:
    """One problem at a time."""
    return [ot.entropic_ot_sinkhorn(pool, s, eps) if pool_first else ot.entropic_ot_sinkhorn(s, pool, eps)
            for s in samples]


@contextlib.contextmanager
def reference_path() -> Iterator[None]:
    """Swap in the log-domain, one-problem-at-a-time solver (the earlier code path)."""
    saved = (ot._sinkhorn, ot.entropic_ot_sinkhorn_many, fis_mod.group_distances_batch)
    ot._sinkhorn = ot._sinkhorn_log
    ot.entropic_ot_sinkhorn_many = _reference_many
    fis_mod.group_distances_batch = _reference_batch
    try:
        yield
    finally:
        ot._sinkhorn, ot.entropic_ot_sinkhorn_many, fis_mod.group_distances_batch = saved


def draw_losses(rng: np.random.Generator, n: int, spread: float) -> torch.Tensor:
    """Per-sample losses like a head's: log-normal around 0.5, ``spread`` its log-sd."""
    return torch.tensor(0.5 * np.exp(spread * rng.standard_normal(n)), dtype=torch.float32)


def time_batches(n_groups: int, batches: int, seed: int) -> None:
    """Print ms per batch of both group-distance variants, reference vs current."""
    rng = np.random.default_rng(seed)
    fd = [(draw_losses(rng, 64, s), torch.as_tensor(rng.integers(0, n_groups, 64)))
          for s in np.linspace(0.3, 1.2, batches)]
    fv = [{g: draw_losses(rng, 64, s) for g in range(n_groups)} for s in np.linspace(0.3, 1.2, batches)]
    print(f"group distances, batch 64, {n_groups} groups, {batches} batches (losses' log-sd 0.3..1.2):")
    for name, fn, data in (("fairdi", lambda b: fis_mod.group_distances_batch(*b), fd),
                           ("fairvision", group_distances_fairvision, fv)):
        times, results = {}, {}
        for label in ("reference", "current"):
            with reference_path() if label == "reference" else contextlib.nullcontext():
                t0 = time.perf_counter()
                results[label] = [fn(b) for b in data]
                times[label] = (time.perf_counter() - t0) / len(data)
        diff = max(abs(r[g] - c[g]) for r, c in zip(results["reference"], results["current"], strict=True) for g in r)
        print(f"  {name:<10} reference {1e3 * times['reference']:8.1f} ms  current {1e3 * times['current']:7.1f} ms  "
              f"ratio {times['reference'] / times['current']:5.2f}  max |Δ distance| {diff:.1e}")


def make_features(n: int, dim: int, n_groups: int, seed: int, prefix: str) -> TaskData:
    """Gaussian feature vectors; the label shifts a random direction, the group another."""
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, n_groups, n)
    labels = (rng.random(n) < 0.2 + 0.1 * groups / max(n_groups - 1, 1)).astype(np.int64)
    d_label, d_group = np.random.default_rng(0).standard_normal((2, dim))
    x = rng.standard_normal((n, dim)) + 1.5 * labels[:, None] * d_label / np.sqrt(dim) * 4 + 0.5 * groups[:, None] * d_group / np.sqrt(dim)
    return TaskData(images=x.astype(np.float32), labels=labels, groups=groups,
                    sample_ids=np.array([f"{prefix}{i}" for i in range(n)], dtype=object),
                    n_groups=n_groups, group_names=tuple(f"g{g}" for g in range(n_groups)))


def time_runs(n_train: int, dim: int, n_groups: int, epochs: int, seed: int) -> None:
    """Print seconds per run of fis and fairdi, reference vs current, and the test-score difference."""
    from medfairx_baselines.fis import FIS
    from medfairx_fairdi.method import FairDi

    splits = {s: make_features(n, dim, n_groups, seed * 10 + i, s)
              for i, (s, n) in enumerate((("train", n_train), ("val", n_train // 4), ("test", n_train // 4)))}
    print(f"runs: {n_train} training rows, {dim}-d features, {n_groups} groups, batch 64, {epochs} epochs:")
    for cls in (FIS, FairDi):
        times, scores = {}, {}
        for label in ("reference", "current"):
            ctx = make_cpu_run_context("classification", backbone="linear", in_channels=dim, image_size=(),
                                       epochs=epochs, batch_size=64, seed=seed)
            with reference_path() if label == "reference" else contextlib.nullcontext(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0 = time.perf_counter()
                method = cls().fit(splits["train"], splits["val"], ctx)
                times[label] = time.perf_counter() - t0
                scores[label] = np.asarray(method.predict_scores(splits["test"], ctx))
        diff = float(np.abs(scores["reference"] - scores["current"]).max())
        print(f"  {cls.__name__:<7} reference {times['reference']:7.1f} s  current {times['current']:6.1f} s  "
              f"ratio {times['reference'] / times['current']:5.2f}  max |Δ test score| {diff:.1e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--groups", type=int, default=2)
    ap.add_argument("--batches", type=int, default=20, help="batches for the group-distance timing")
    ap.add_argument("--n-train", type=int, default=1536)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-runs", action="store_true", help="only the per-batch timing")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # non-converged Sinkhorn warnings, same count on both paths
        time_batches(args.groups, args.batches, args.seed)
    if not args.skip_runs:
        time_runs(args.n_train, args.dim, args.groups, args.epochs, args.seed)


if __name__ == "__main__":
    main()
