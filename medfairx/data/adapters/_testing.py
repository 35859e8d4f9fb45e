"""Fixture helpers for adapter tests: placeholder images and the shared data folder."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image


def data_root() -> Path:
    """``$MEDFAIRX_DATA``, else ``../shared/data`` relative to the repository root."""
    env = os.environ.get("MEDFAIRX_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


def placeholder_images(root: Path, relpaths: Iterable[str], *, size: int = 12, mask: bool = False, seed: int = 0) -> list[Path]:
    """Write tiny images (or binary masks, 0/255) at ``root / relpath``; the format follows the suffix."""
    rng = np.random.default_rng(seed)
    written = []
    for rel in relpaths:
        path = Path(root) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if mask:
            arr = np.zeros((size, size), np.uint8)
            arr[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 255
            Image.fromarray(arr, "L").save(path, format="PNG")
        else:
            arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(arr, "RGB").save(path, format="PNG" if path.suffix.lower() == ".png" else "JPEG")
        written.append(path)
    return written
