"""Reading images and masks from disk into fixed-size uint8 arrays (PIL)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_RESAMPLE = "bilinear (PIL, antialiased when downsampling)"
MASK_RESAMPLE = "nearest"


def load_rgb(path: str | Path, size: tuple[int, int]) -> np.ndarray:
    """Decode an image as RGB, resize it to ``size`` = (h, w) bilinearly; ``(3, h, w)`` uint8."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        if im.size != (size[1], size[0]):
            im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        result: np.ndarray = np.asarray(im, dtype=np.uint8).transpose(2, 0, 1).copy()
        return result


def load_mask(path: str | Path, size: tuple[int, int], threshold: int = 127) -> np.ndarray:
    """Read a binary mask as ``(h, w)`` uint8 in {0, 1}.

    Always converts to greyscale first: palette PNGs with an inverted palette (HAM10000 has
    197) would otherwise read as their indices, i.e. inverted. Resized with nearest
    neighbour; foreground is ``grey > threshold``.
    """
    with Image.open(path) as im:
        im = im.convert("L")
        if im.size != (size[1], size[0]):
            im = im.resize((size[1], size[0]), Image.Resampling.NEAREST)
        return (np.asarray(im) > threshold).astype(np.uint8)
