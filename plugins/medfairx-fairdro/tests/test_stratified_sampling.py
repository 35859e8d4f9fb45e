"""medfairx.methods.stratified_sampling.GroupStratifiedSampler (used by FairDRO)."""

from __future__ import annotations

import numpy as np
import pytest

from medfairx.errors import ConfigError
from medfairx.methods.sampling import IndexSampler, iter_batches, steps_per_epoch
from medfairx.methods.stratified_sampling import GroupStratifiedSampler


def _groups() -> np.ndarray:
    # 70 majority, 20 minority, 6 tiny group, 4 outside every group
    return np.array([0] * 70 + [1] * 20 + [2] * 6 + [-1] * 4)


def test_every_batch_holds_min_per_group_of_every_present_group() -> None:
    g = _groups()
    s = GroupStratifiedSampler(g, 16, min_per_group=4, seed=0)
    assert isinstance(s, IndexSampler)
    assert s.present == (0, 1, 2) and s.free_slots == 4 and s.n_batches == 7
    for epoch in range(3):
        idx = s.epoch_indices(epoch)
        assert len(idx) == 7 * 16 and idx.min() >= 0 and idx.max() < len(g)
        batches = list(iter_batches(idx, 16))
        assert len(batches) == steps_per_epoch(len(idx), 16) == 7
        for b in batches:
            assert len(b) == 16
            counts = np.bincount(g[b] + 1, minlength=4)[1:]
            assert (counts >= 4).all(), counts


def test_pure_function_of_seed_and_epoch() -> None:
    g = _groups()
    a = GroupStratifiedSampler(g, 16, seed=3)
    b = GroupStratifiedSampler(g, 16, seed=3)
    b.epoch_indices(5)  # consuming other epochs changes nothing
    assert np.array_equal(a.epoch_indices(1), b.epoch_indices(1))
    assert not np.array_equal(a.epoch_indices(0), a.epoch_indices(1))
    assert not np.array_equal(a.epoch_indices(0), GroupStratifiedSampler(g, 16, seed=4).epoch_indices(0))


def test_group_stream_cycles_through_permutations() -> None:
    """The minority group's guaranteed slots visit all its members before repeating."""
    g = np.array([0] * 40 + [1] * 8)
    s = GroupStratifiedSampler(g, 8, min_per_group=4, seed=0)  # 0 free slots
    idx = s.epoch_indices(0).reshape(s.n_batches, 8)
    minority = [i for row in idx for i in row if g[i] == 1]
    assert sorted(minority[:8]) == list(range(40, 48))


def test_ungrouped_samples_only_fill_free_slots() -> None:
    g = np.array([0] * 10 + [1] * 10 + [-1] * 30)
    s = GroupStratifiedSampler(g, 10, min_per_group=5, seed=0)  # no free slot
    assert s.free_slots == 0
    assert (g[s.epoch_indices(0)] >= 0).all()


def test_too_many_groups_for_the_batch_raise() -> None:
    with pytest.raises(ConfigError, match="raise recipe.batch_size"):
        GroupStratifiedSampler(np.arange(5).repeat(4), 16, min_per_group=4)
    with pytest.raises(ConfigError, match="no training sample"):
        GroupStratifiedSampler(np.full(5, -1), 16)
    with pytest.raises(ConfigError):
        GroupStratifiedSampler(np.zeros(5), 0)


def test_small_training_sets_still_give_a_full_batch() -> None:
    g = np.array([0, 0, 0, 1, 1])
    s = GroupStratifiedSampler(g, 8, min_per_group=2, seed=0)
    idx = s.epoch_indices(0)
    assert len(idx) == 8 and set(np.unique(g[idx])) == {0, 1}
