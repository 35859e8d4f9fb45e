"""Index samplers: which training rows make up each epoch, and in which order.

A sampler is any object with ``epoch_indices(epoch) -> np.ndarray`` (integer positions in
the training set). Both built-ins derive their randomness from ``(seed, epoch)`` only, so an
epoch's order does not depend on how many random numbers the model consumed before it.

Shared by core (training loop) and the plugins medfairx-baselines and medfairx-fairdro.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import numpy as np

from medfairx.errors import ConfigError


@runtime_checkable
class IndexSampler(Protocol):
    """What the training loop asks a sampler for."""

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """Training-set positions to visit in epoch ``epoch`` (0-based), in order."""
        ...


class ShuffleSampler:
    """A fresh seeded permutation of ``0..n-1`` every epoch.

    Args:
        n: training-set size.
        seed: the run's seed.
    """

    def __init__(self, n: int, seed: int) -> None:
        self.n = int(n)
        self.seed = int(seed)

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """A permutation of the training set."""
        return np.random.default_rng([self.seed, int(epoch)]).permutation(self.n)


class WeightedSampler:
    """Draw ``num_samples`` positions with replacement, proportionally to ``weights``.

    The numpy counterpart of ``torch.utils.data.WeightedRandomSampler(w, num_samples,
    replacement=True, generator=seeded)``; resampling baselines (docs/methods.md §1.2) use it.

    Args:
        weights: ``(N,)`` non-negative sample weights (not necessarily normalised).
        seed: the run's seed.
        num_samples: draws per epoch (default ``N``).
    """

    def __init__(self, weights: np.ndarray, seed: int, num_samples: int | None = None) -> None:
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 1 or w.size == 0 or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ConfigError(
                "WeightedSampler needs a 1-D array of finite, non-negative weights with a "
                f"positive sum; got shape {w.shape}, sum {w.sum() if w.size else 0}."
            )
        self.p = w / w.sum()
        self.seed = int(seed)
        self.num_samples = int(num_samples if num_samples is not None else w.size)

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """``num_samples`` weighted draws with replacement."""
        rng = np.random.default_rng([self.seed, int(epoch)])
        return rng.choice(self.p.size, size=self.num_samples, replace=True, p=self.p)


def iter_batches(
    indices: np.ndarray, batch_size: int, *, max_steps: int | None = None
) -> Iterator[np.ndarray]:
    """Split an epoch's ``indices`` into consecutive batches.

    A trailing batch of a single sample is dropped when there are other batches (batch norm
    cannot train on one sample); ``max_steps`` caps the number of batches.
    """
    if batch_size < 1:
        raise ConfigError(f"recipe.batch_size must be >= 1, got {batch_size}.")
    n = len(indices)
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    if max_steps is not None:
        starts = starts[: max(int(max_steps), 0)]
    for s in starts:
        yield indices[s : s + batch_size]


def steps_per_epoch(n: int, batch_size: int, max_steps: int | None = None) -> int:
    """How many batches :func:`iter_batches` yields for ``n`` indices."""
    steps = -(-n // batch_size)
    if steps > 1 and n % batch_size == 1:
        steps -= 1
    if max_steps is not None:
        steps = min(steps, max(int(max_steps), 0))
    return steps
