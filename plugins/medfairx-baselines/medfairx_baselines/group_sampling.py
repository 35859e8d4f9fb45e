"""Group-aware sampling: stratum-balanced sample weights and per-group endless batch streams.

:mod:`medfairx.methods.sampling` holds the group-agnostic epoch samplers; this module adds
the two group-aware pieces several methods share:

* :func:`stratum_weights` — ``w_i = 1/N_{k(i)}`` for group / (group × label) / class strata,
  the weights of MEDFAIR's group-balanced ``WeightedRandomSampler`` (docs/methods.md §1.2). Feed
  them to :class:`~medfairx.methods.WeightedSampler`.
* :class:`GroupBatchStream` — one endless, seeded, reshuffling stream of indices per group,
  the "endless per-group loaders" that FIS draws its extra group batches from (§2.1 b).

Both are numpy-only and seeded from the run's seed alone.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from medfairx.errors import ConfigError

Stratum = Literal["group", "balanced", "class"]
STRATA: tuple[str, ...] = ("group", "balanced", "class")


def stratum_codes(
    groups: np.ndarray | None, labels: np.ndarray | None, which: str
) -> np.ndarray:
    """The stratum ``k(i)`` of every sample, as dense integer codes ``0..S-1``.

    Args:
        groups: ``(N,)`` group codes (``-1`` = outside every group; such samples form a
            stratum of their own). Needed for ``"group"`` and ``"balanced"``.
        labels: ``(N,)`` class labels. Needed for ``"balanced"`` and ``"class"``.
        which: ``"group"`` (``k = a_i``), ``"balanced"`` (``k = (a_i, y_i)``) or ``"class"``
            (``k = y_i``).

    Returns:
        ``(N,)`` int64 stratum codes.

    Raises:
        ConfigError: unknown ``which``, or a needed array is missing or not 1-D.
    """
    if which not in STRATA:
        raise ConfigError(f"Unknown resampling stratum {which!r}; use one of {', '.join(STRATA)}.")
    cols: list[np.ndarray] = []
    if which in ("group", "balanced"):
        if groups is None:
            raise ConfigError(f"Resampling by {which!r} needs group codes but none were given.")
        cols.append(np.asarray(groups).astype(np.int64))
    if which in ("balanced", "class"):
        if labels is None or np.asarray(labels).ndim != 1:
            raise ConfigError(
                f"Resampling by {which!r} needs one class label per sample (classification); "
                "segmentation label maps only support resample_which='group'."
            )
        cols.append(np.asarray(labels).astype(np.int64))
    keys = np.stack(cols, axis=1)
    _, codes = np.unique(keys, axis=0, return_inverse=True)
    return codes.reshape(-1).astype(np.int64)


def stratum_weights(
    groups: np.ndarray | None, labels: np.ndarray | None, which: str = "group"
) -> np.ndarray:
    """Sampling weights ``w_i = 1/N_{k(i)}`` (docs/methods.md §1.2).

    Every stratum then has total weight 1, so a weighted sampler draws every stratum equally
    often in expectation.

    Args:
        groups: ``(N,)`` group codes.
        labels: ``(N,)`` class labels.
        which: ``"group"``, ``"balanced"`` or ``"class"`` (see :func:`stratum_codes`).

    Returns:
        ``(N,)`` float64 weights.
    """
    codes = stratum_codes(groups, labels, which)
    counts = np.bincount(codes)
    return 1.0 / counts[codes].astype(np.float64)


class GroupBatchStream:
    """Endless per-group index streams: ``next_batch(g)`` returns ``m`` positions of group ``g``.

    Each group's positions are visited in a seeded random order; when a group runs out, a new
    permutation starts (like an endless ``DataLoader(shuffle=True, drop_last=False)`` that is
    re-created on exhaustion), except that batches always hold exactly ``m`` positions: a
    batch that crosses the end of a permutation is completed from the next one (so a position
    can occur twice in it, and always does when the group has fewer than ``m`` samples).

    Args:
        groups: ``(N,)`` training group codes (codes ``< 0`` are never drawn).
        batch_size: ``m``, positions per batch.
        seed: the run's seed.

    Attributes:
        present: sorted group codes that have at least one sample.
    """

    def __init__(self, groups: np.ndarray, batch_size: int, seed: int) -> None:
        if batch_size < 1:
            raise ConfigError(f"GroupBatchStream: batch_size must be >= 1, got {batch_size}.")
        g = np.asarray(groups).astype(np.int64)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self._members: dict[int, np.ndarray] = {int(k): np.flatnonzero(g == k) for k in np.unique(g[g >= 0])}
        self.present: tuple[int, ...] = tuple(sorted(self._members))
        self._rngs = {k: np.random.default_rng([self.seed, 7919, k]) for k in self.present}
        self._queues: dict[int, np.ndarray] = {k: np.empty(0, dtype=np.int64) for k in self.present}

    def next_batch(self, group: int) -> np.ndarray:
        """The next ``m`` training positions of ``group``.

        Raises:
            ConfigError: the group has no training samples.
        """
        group = int(group)
        if group not in self._members:
            raise ConfigError(
                f"GroupBatchStream: group {group} has no training samples (groups present: "
                f"{list(self.present)})."
            )
        queue = self._queues[group]
        while queue.size < self.batch_size:
            queue = np.concatenate([queue, self._rngs[group].permutation(self._members[group])])
        out, self._queues[group] = queue[: self.batch_size], queue[self.batch_size :]
        return out
