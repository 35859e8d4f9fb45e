"""A group-stratified batch sampler: every mini-batch holds at least ``m`` samples of every
group present in the training set.

Per-group statistics of a batch (a group's CVaR, its mean loss, its Dice error) are
meaningless when a group contributes one or two samples. :class:`GroupStratifiedSampler`
lays out each epoch as consecutive batches of exactly ``batch_size`` positions (what
:func:`~medfairx.methods.sampling.iter_batches` cuts the epoch into), each made of

* ``m = min_per_group`` positions of every present group, drawn from a seeded per-group
  stream of permutations (a group with fewer than ``m`` samples repeats some), and
* ``batch_size − K·m`` free slots, drawn from a seeded stream of permutations of the whole
  training set (samples outside every group, code ``-1``, included), so the remainder
  follows the data's own group proportions;

then shuffled within the batch. An epoch has ``⌈N / batch_size⌉`` batches, so it visits
about ``N`` positions. Like the samplers of :mod:`medfairx.methods.sampling` it is a pure
function of ``(seed, epoch)``.

Shared by the plugins medfairx-fairdro and medfairx-qpnet.
"""

from __future__ import annotations

import math

import numpy as np

from medfairx.errors import ConfigError


def _cycled(rng: np.random.Generator, members: np.ndarray, count: int) -> np.ndarray:
    """``count`` positions from back-to-back random permutations of ``members``."""
    if count <= 0 or members.size == 0:
        return np.empty(0, dtype=np.int64)
    reps = -(-count // members.size)
    return np.concatenate([rng.permutation(members) for _ in range(reps)])[:count].astype(np.int64)


class GroupStratifiedSampler:
    """Epochs of full batches with at least ``min_per_group`` samples of every present group.

    Args:
        groups: ``(N,)`` training group codes (``< 0`` = outside every group; such samples only
            fill free slots).
        batch_size: the training batch size (must equal ``recipe.batch_size``).
        min_per_group: ``m``, guaranteed samples of every present group in every batch.
        seed: the run's seed.

    Attributes:
        present: sorted codes of the groups with at least one training sample.
        free_slots: ``batch_size − K·m`` slots per batch filled from the whole training set.
        n_batches: batches per epoch, ``⌈N / batch_size⌉``.

    Raises:
        ConfigError: ``batch_size < 1``, ``min_per_group < 1``, no grouped sample, or
            ``K·m > batch_size`` (raise the batch size or lower ``min_per_group``).
    """

    def __init__(self, groups: np.ndarray, batch_size: int, *, min_per_group: int = 4, seed: int = 0) -> None:
        g = np.asarray(groups).astype(np.int64).reshape(-1)
        if batch_size < 1 or min_per_group < 1:
            raise ConfigError(
                f"GroupStratifiedSampler: batch_size and min_per_group must be >= 1, got {batch_size} and {min_per_group}."
            )
        self.present: tuple[int, ...] = tuple(int(k) for k in np.unique(g[g >= 0]))
        if not self.present:
            raise ConfigError("GroupStratifiedSampler: no training sample belongs to a group (all codes are -1).")
        need = len(self.present) * int(min_per_group)
        if need > batch_size:
            raise ConfigError(
                f"GroupStratifiedSampler: {len(self.present)} groups x min_per_group={min_per_group} = {need} "
                f"samples do not fit in a batch of {batch_size}; raise recipe.batch_size to >= {need} or lower "
                "min_per_group."
            )
        self.n = int(g.size)
        self.batch_size = int(batch_size)
        self.min_per_group = int(min_per_group)
        self.seed = int(seed)
        self.free_slots = self.batch_size - need
        self.n_batches = max(1, math.ceil(self.n / self.batch_size))
        self._members = {k: np.flatnonzero(g == k) for k in self.present}

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """``n_batches·batch_size`` positions; every consecutive ``batch_size`` chunk is one batch."""
        rng = np.random.default_rng([self.seed, int(epoch), 1453])
        m, nb = self.min_per_group, self.n_batches
        per_group = [_cycled(rng, self._members[k], nb * m).reshape(nb, m) for k in self.present]
        pooled = _cycled(rng, np.arange(self.n, dtype=np.int64), nb * self.free_slots).reshape(nb, self.free_slots)
        batches = np.concatenate([*per_group, pooled], axis=1)
        return rng.permuted(batches, axis=1).reshape(-1)
