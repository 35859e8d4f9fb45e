"""Shared fixtures: synthetic blobs with known geometry, a CPU run context.

The repository runs pytest with ``--import-mode=importlib``, so test modules cannot import
helpers from here; the helpers are handed out as factory fixtures.
"""

from __future__ import annotations

import numpy as np
import pytest

from medfairx.contracts import TaskData, TrainRecipe
from medfairx.methods.base import RunContext


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread: None) -> None:
    """Every test of this plugin on one torch thread (the kit's fixture)."""


def ellipse(shape: tuple[int, int], cx: float, cy: float, a: float, b: float) -> np.ndarray:
    """Boolean mask of pixels with ``((x-cx)/a)² + ((y-cy)/b)² ≤ 1``."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2 <= 1.0


def blobs(n: int = 24, size: int = 32, seed: int = 0, channels: int = 1) -> TaskData:
    """Bright ellipses (the masks) on dark noise; group 1 (a third) has lower contrast."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, channels, size, size), dtype=np.uint8)
    labels = np.zeros((n, size, size), dtype=np.int64)
    groups = (np.arange(n) % 3 == 0).astype(np.int64)
    for i in range(n):
        cx, cy = rng.uniform(10, size - 10, size=2)
        a, b = rng.uniform(4, 8, size=2)
        m = ellipse((size, size), cx, cy, a, b)
        bright = 150 if groups[i] else 200
        img = rng.integers(20, 70, size=(size, size))
        img[m] = rng.integers(bright - 20, bright + 20, size=int(m.sum()))
        images[i] = img.astype(np.uint8)
        labels[i] = m
    ids = np.array([f"b{i}" for i in range(n)])
    return TaskData(images, labels, groups, ids, 2, ("high", "low"))


def seg_ctx(in_channels: int = 1, size: int = 32, **recipe: object) -> RunContext:
    """A CPU segmentation context with a short recipe."""
    base = dict(epochs=2, batch_size=8, lr=3e-3, scheduler="none", patience=0, criterion="dice")
    base.update(recipe)
    return RunContext(
        task="segmentation",
        num_classes=2,
        in_channels=in_channels,
        image_size=(size, size),
        recipe=TrainRecipe(**base),  # type: ignore[arg-type]
        log=lambda s: None,
    )


@pytest.fixture
def make_ellipse():
    """Factory: :func:`ellipse`."""
    return ellipse


@pytest.fixture
def make_blobs():
    """Factory: :func:`blobs`."""
    return blobs


@pytest.fixture
def make_ctx():
    """Factory: :func:`seg_ctx`."""
    return seg_ctx
