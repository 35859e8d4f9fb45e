"""CutMix transform (docs/methods.md §1.6): box geometry, λ', consistent pasting, mixed loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medfairx.methods.cutmix import (
    CutMix,
    MixedBatch,
    cutmix_box,
    mixed_per_sample_loss,
)
from medfairx.methods.trainable import Batch


class _FixedRng:
    """Stands in for a numpy Generator: ``integers`` returns scripted centres."""

    def __init__(self, centres: list[int]) -> None:
        self.centres = list(centres)

    def integers(self, high: int) -> int:
        return self.centres.pop(0)


def test_box_by_hand_2d() -> None:
    # 10x10, lam = 0.75 -> cut ratio sqrt(0.25) = 0.5 -> side 5, half 2; centre (5, 5) -> [3, 7)
    box, lam = cutmix_box((10, 10), 0.75, _FixedRng([5, 5]))  # type: ignore[arg-type]
    assert box == (slice(3, 7), slice(3, 7))
    assert lam == pytest.approx(1 - 16 / 100)
    # centre at the corner: clipped to [0, 2) x [8, 10)... (9+2 clipped to 10)
    box, lam = cutmix_box((10, 10), 0.75, _FixedRng([0, 9]))  # type: ignore[arg-type]
    assert box == (slice(0, 2), slice(7, 10))
    assert lam == pytest.approx(1 - 6 / 100)


def test_box_3d_uses_cube_root() -> None:
    # lam = 1 - 1/8 -> ratio (1/8)^(1/3) = 0.5 -> side 4 of 8, half 2; centre 4 -> [2, 6)
    box, lam = cutmix_box((8, 8, 8), 1 - 1 / 8, _FixedRng([4, 4, 4]))  # type: ignore[arg-type]
    assert box == (slice(2, 6),) * 3
    assert lam == pytest.approx(1 - 64 / 512)


def _const_batch(n: int = 6, spatial: tuple[int, ...] = (12, 12), seg: bool = False) -> Batch:
    x = torch.arange(n, dtype=torch.float32).view(n, 1, *([1] * len(spatial))).expand(n, 2, *spatial).clone()
    if seg:
        y = torch.arange(n).view(n, *([1] * len(spatial))).expand(n, *spatial).clone()
    else:
        y = torch.arange(n) % 2
    g = torch.arange(n) % 3
    return Batch(x, y, g, np.arange(n))


@pytest.mark.parametrize("spatial", [(12, 12), (6, 8, 10)])
def test_pasted_fraction_equals_lambda_and_labels_follow(spatial: tuple[int, ...]) -> None:
    cm = CutMix(beta=1.0, prob=1.0, seed=3)
    checked = 0
    for _ in range(20):
        batch = _const_batch(spatial=spatial)
        before = batch.x.clone()
        out = cm(batch)
        assert isinstance(out, MixedBatch)
        assert torch.equal(batch.x, before), "CutMix must not modify the input batch"
        perm = out.perm.numpy()
        assert sorted(perm.tolist()) == list(range(6))
        for i in range(6):
            own = (out.x[i] == i).float().mean().item()
            partner = (out.x[i] == perm[i]).float().mean().item()
            if perm[i] != i:
                assert own == pytest.approx(out.lam)
                assert partner == pytest.approx(1 - out.lam)
                checked += 1
            # inside the box the partner's pixels, outside the base image's
            region = (slice(None), *out.box)
            assert torch.all(out.x[i][region] == perm[i])
        assert torch.equal(out.y_mix, batch.y[out.perm])
        assert torch.equal(out.g, batch.g), "groups stay those of the base images"
    assert checked > 0


def test_segmentation_masks_pasted_with_same_box() -> None:
    cm = CutMix(prob=1.0, seed=0)
    batch = _const_batch(seg=True)
    out = cm(batch)
    assert out.y_mix is None
    perm = out.perm.numpy()
    for i in range(6):
        # image pixel value == label value everywhere: image and mask were pasted identically
        assert torch.equal(out.x[i, 0].long(), out.y[i])
        assert (out.y[i] == perm[i]).float().mean().item() == pytest.approx(1 - out.lam if perm[i] != i else 1.0)


def test_mixed_loss_matches_formula() -> None:
    torch.manual_seed(0)
    batch = _const_batch()
    out = CutMix(prob=1.0, seed=1)(batch)
    assert out.lam < 1.0
    logits = torch.randn(6, 2)
    expected = out.lam * F.cross_entropy(logits, out.y, reduction="none") + (1 - out.lam) * F.cross_entropy(
        logits, out.y_mix, reduction="none"
    )
    torch.testing.assert_close(mixed_per_sample_loss(logits, out, "classification"), expected)
    # a plain batch falls back to the ordinary loss
    torch.testing.assert_close(
        mixed_per_sample_loss(logits, batch, "classification"), F.cross_entropy(logits, batch.y, reduction="none")
    )


def test_prob_zero_and_seeding() -> None:
    batch = _const_batch()
    out = CutMix(prob=0.0, seed=0)(batch)
    assert out.lam == 1.0 and torch.equal(out.x, batch.x) and out.y_mix is None
    a, b = CutMix(prob=1.0, seed=5)(batch), CutMix(prob=1.0, seed=5)(batch)
    assert torch.equal(a.x, b.x) and a.lam == b.lam


def test_same_group_pairs_stay_in_group() -> None:
    batch = _const_batch(n=9)
    out = CutMix(prob=1.0, seed=2, same_group_pairs=True)(batch)
    assert torch.equal(batch.g[out.perm], batch.g)


def test_invalid_parameters() -> None:
    from medfairx.errors import ConfigError

    with pytest.raises(ConfigError):
        CutMix(beta=0.0)
    with pytest.raises(ConfigError):
        CutMix(prob=1.5)


def test_cutmix_on_feature_vectors_is_a_clear_error() -> None:
    """Feature vectors have no box to cut: one clear line, not a division by zero."""
    import pytest
    import torch

    from medfairx.errors import ConfigError
    from medfairx.methods.cutmix import CutMix
    from medfairx.methods.trainable import Batch

    batch = Batch(torch.zeros(4, 16), torch.zeros(4, dtype=torch.long), None, torch.arange(4))
    with pytest.raises(ConfigError, match="cuts boxes out of images"):
        CutMix(prob=1.0)(batch)
