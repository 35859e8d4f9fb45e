"""Weight-free promptable segmenters: BoxEllipse and the Otsu box-threshold baseline.

Both run offline, deterministically and in milliseconds, so they give every benchmark a
reference for what the prompt alone explains:

* :class:`EllipseSegmenter` fills the ellipse inscribed in the box (docs/methods.md §7): it
  ignores the image, so its Dice measures how much a box prompt gives away.
* :class:`OtsuSegmenter` thresholds the grey image inside the box with Otsu's threshold,
  decides the object's polarity from a thin ring just outside the box (background for
  a tight box), keeps the connected component that holds the prompt point (else the
  largest) and fills its holes.

A prompt without a box uses a square window of ``point_window`` pixels around its first
foreground point instead (``BoxEllipse`` then draws the inscribed disk).

On 3D volumes both work slice by slice (:func:`medfairx_foundation.segmenter.segment_volume`):
each prompted slice is segmented as a 2D image (the ellipse is a per-slice ellipse, not an
ellipsoid), and unprompted slices are predicted empty.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medfairx.data.prompts import Box, Prompt
from medfairx.methods import RunContext
from medfairx_foundation import BOX_ELLIPSE_SPEC, BOX_THRESHOLD_SPEC
from medfairx_foundation.segmenter import (
    PromptableSegmenter,
    PromptedSegmentationMethod,
)

POLARITIES: tuple[str, ...] = ("auto", "bright", "dark")
RING = 2
"""Width in pixels of the ring around the box that decides the polarity."""


def grey(image: np.ndarray) -> np.ndarray:
    """``(H, W)`` float64 intensity of a ``(C, H, W)`` image (mean over channels)."""
    return np.asarray(image, dtype=np.float64).mean(axis=0)


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold: maximises the between-class variance ``w0·w1·(μ0 − μ1)²``.

    Candidate splits are the edges of ``bins`` equal bins over ``[min, max]``; class means
    use the values themselves (per-bin sums), so for integer data such as ``uint8`` images
    the result is the exact Otsu split. The threshold is the lower edge of the first bin of
    the upper class, so ``values >= t`` is the upper class. A constant input returns its
    value (everything is one class, the upper one).
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        return lo
    counts, edges = np.histogram(v, bins=bins, range=(lo, hi))
    sums, _ = np.histogram(v, bins=bins, range=(lo, hi), weights=v)
    w0 = np.cumsum(counts)[:-1].astype(np.float64)
    w1 = v.size - w0
    s0 = np.cumsum(sums)[:-1]
    valid = (w0 > 0) & (w1 > 0)
    mu0 = s0 / np.maximum(w0, 1)
    mu1 = (v.sum() - s0) / np.maximum(w1, 1)
    between = np.where(valid, w0 * w1 * (mu0 - mu1) ** 2, -1.0)
    return float(edges[1 + int(np.argmax(between))])


def window_box(point: tuple[int, int], shape: tuple[int, int], size: int) -> Box:
    """A ``size``-pixel square box centred on ``point`` ``(x, y)``, clipped to the image."""
    h, w = shape
    r = max(size // 2, 1)
    x, y = point
    return max(x - r, 0), max(y - r, 0), min(x + r, w - 1), min(y + r, h - 1)


def prompt_box(prompt: Prompt, shape: tuple[int, int], point_window: int) -> Box:
    """The prompt's box, or a window around its first foreground point."""
    if prompt.box is not None:
        return prompt.box
    fg = [p for p, lab in zip(prompt.points, prompt.point_labels, strict=False) if lab == 1] or list(prompt.points)
    return window_box(fg[0], shape, point_window)


def ellipse_mask(box: Box, shape: tuple[int, int]) -> np.ndarray:
    """Boolean ``(H, W)`` mask of the ellipse inscribed in the inclusive ``box``.

    Centre ``((x0+x1)/2, (y0+y1)/2)``, semi-axes ``((x1−x0+1)/2, (y1−y0+1)/2)``; a pixel is
    inside when its centre satisfies ``(dx/a)² + (dy/b)² ≤ 1``.
    """
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    a, b = (x1 - x0 + 1) / 2, (y1 - y0 + 1) / 2
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2 <= 1.0


class EllipseSegmenter:
    """Fills the ellipse inscribed in the prompt box (image ignored).

    Args:
        point_window: side of the square used for a prompt without a box.
    """

    def __init__(self, point_window: int = 9) -> None:
        self.point_window = point_window

    def predict(self, image: np.ndarray, prompt: Prompt) -> np.ndarray:
        """``(H, W)`` float32 mask of the inscribed ellipse."""
        shape = tuple(image.shape[1:])
        return ellipse_mask(prompt_box(prompt, shape, self.point_window), shape).astype(np.float32)  # type: ignore[arg-type]


class OtsuSegmenter:
    """Otsu threshold inside the box, polarity from the ring around it, one component, no holes.

    Args:
        polarity: ``"bright"`` (object above the threshold), ``"dark"`` or ``"auto"``: the
            object is the side that holds fewer of the pixels of a :data:`RING`-pixel ring
            just outside the box.
        point_window: side of the square used for a prompt without a box.
        fill_holes: fill holes of the kept component.
    """

    def __init__(self, polarity: str = "auto", point_window: int = 9, fill_holes: bool = True) -> None:
        self.polarity = polarity
        self.point_window = point_window
        self.fill_holes = fill_holes

    def predict(self, image: np.ndarray, prompt: Prompt) -> np.ndarray:
        """``(H, W)`` float32 mask of the object designated by ``prompt``."""
        from scipy.ndimage import binary_fill_holes
        from scipy.ndimage import label as cc_label

        intensity = grey(image)
        shape = intensity.shape
        x0, y0, x1, y1 = prompt_box(prompt, shape, self.point_window)  # type: ignore[arg-type]
        crop = intensity[y0 : y1 + 1, x0 : x1 + 1]
        t = otsu_threshold(crop)
        fg = crop >= t if self._bright(intensity, (x0, y0, x1, y1), t) else crop < t
        lab, n = cc_label(fg, structure=np.ones((3, 3), dtype=bool))
        out = np.zeros(shape, dtype=np.float32)
        if n == 0:
            return out
        keep = self._component(lab, n, prompt, (x0, y0))
        obj = lab == keep
        if self.fill_holes:
            obj = binary_fill_holes(obj)
        out[y0 : y1 + 1, x0 : x1 + 1] = obj
        return out

    def _bright(self, intensity: np.ndarray, box: Box, t: float) -> bool:
        """Polarity: the object is the class that the ring around the box mostly is not.

        The ring is the ``RING`` pixels just outside the box (background for a tight or
        grown box); a box covering the whole image uses its own border instead.
        """
        if self.polarity != "auto":
            return self.polarity == "bright"
        x0, y0, x1, y1 = box
        h, w = intensity.shape
        outer = intensity[max(y0 - RING, 0) : y1 + RING + 1, max(x0 - RING, 0) : x1 + RING + 1]
        inside = np.zeros(outer.shape, dtype=bool)
        inside[y0 - max(y0 - RING, 0) : y1 - max(y0 - RING, 0) + 1, x0 - max(x0 - RING, 0) : x1 - max(x0 - RING, 0) + 1] = True
        ring = outer[~inside]
        if ring.size == 0:
            crop = intensity[y0 : y1 + 1, x0 : x1 + 1]
            ring = np.concatenate([crop[0], crop[-1], crop[:, 0], crop[:, -1]])
        return bool((ring >= t).mean() <= 0.5)

    @staticmethod
    def _component(lab: np.ndarray, n: int, prompt: Prompt, origin: tuple[int, int]) -> int:
        """The label of the component under the first foreground point, else the largest."""
        for (x, y), pl in zip(prompt.points, prompt.point_labels, strict=False):
            r, c = y - origin[1], x - origin[0]
            if pl == 1 and 0 <= r < lab.shape[0] and 0 <= c < lab.shape[1] and lab[r, c] > 0:
                return int(lab[r, c])
        sizes = np.bincount(lab.ravel(), minlength=n + 1)[1:]
        return 1 + int(np.argmax(sizes))


class BoxEllipse(PromptedSegmentationMethod, spec=BOX_ELLIPSE_SPEC):
    """The inscribed-ellipse lower bound as an evaluation-only method.

    Args:
        prompt: prompt mode (see :class:`PromptedSegmentationMethod`).
        jitter: prompt jitter in pixels.
        n_points: points per object for ``prompt="points"``.
        point_window: side of the square used for a prompt without a box.
    """


    def __init__(self, prompt: str = "box", jitter: int = 0, n_points: int = 1, point_window: int = 9) -> None:
        super().__init__(prompt=prompt, jitter=jitter, n_points=n_points)
        self.point_window = point_window

    def build_segmenter(self, ctx: RunContext) -> PromptableSegmenter:
        """An :class:`EllipseSegmenter`."""
        return EllipseSegmenter(point_window=self.point_window)


class BoxThreshold(PromptedSegmentationMethod, spec=BOX_THRESHOLD_SPEC):
    """The Otsu box-threshold baseline as an evaluation-only method.

    Args:
        prompt: prompt mode (see :class:`PromptedSegmentationMethod`).
        jitter: prompt jitter in pixels.
        n_points: points per object for ``prompt="points"``.
        polarity: ``"auto"``, ``"bright"`` or ``"dark"`` (see :class:`OtsuSegmenter`).
        point_window: side of the square used for a prompt without a box.
        fill_holes: fill holes of the kept component.
    """


    def __init__(
        self,
        prompt: str = "box",
        jitter: int = 0,
        n_points: int = 1,
        polarity: str = "auto",
        point_window: int = 9,
        fill_holes: bool = True,
    ) -> None:
        super().__init__(prompt=prompt, jitter=jitter, n_points=n_points)
        self.polarity = polarity
        self.point_window = point_window
        self.fill_holes = fill_holes

    def build_segmenter(self, ctx: RunContext) -> PromptableSegmenter:
        """An :class:`OtsuSegmenter` (validates ``polarity``)."""
        from medfairx.errors import ConfigError

        if self.polarity not in POLARITIES:
            raise ConfigError(f"box_threshold: polarity {self.polarity!r}; use one of {', '.join(POLARITIES)}.")
        return OtsuSegmenter(polarity=self.polarity, point_window=self.point_window, fill_holes=self.fill_holes)

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        """The defaults (already fast)."""
        return {}
