"""Per-sample spatial error metrics of label maps: HD95, NSD and the boundary-error share.

Pure numpy / scipy (never torch or monai; monai is the independent reference in the tests).
Definitions (docs/methods.md §7 and §8.2), per sample and per foreground class ``c`` with
``G = (true == c)`` the ground truth and ``P = (pred == c)`` the prediction:

* **surface** of a mask: its voxels with at least one *face-adjacent* neighbour (4 in 2D,
  6 in 3D) that is background or lies outside the image, i.e. ``M & ~erode(M)`` with
  scipy's default cross-shaped structuring element and background beyond the border.
  This is the edge definition of ``monai.metrics.utils.get_mask_edges`` (without
  subvoxels), so objects cut by the image border have a surface along the border.
* **surface distances**: from every surface voxel of ``P`` to the nearest surface voxel
  of ``G`` and vice versa (exact Euclidean distances, scaled by ``spacing``; one k-d tree
  search per chunk of samples, see :func:`_surface_points`).
* **HD95** = ``max(q95(P -> G), q95(G -> P))``, ``q95`` the linearly interpolated 95th
  percentile (``np.percentile`` / ``torch.quantile``), as
  ``monai.metrics.compute_hausdorff_distance(..., percentile=95)``.
* **NSD** at tolerance ``tau`` = (surface distances ``<= tau`` in both directions) / (all
  surface distances), as ``monai.metrics.compute_surface_dice(class_thresholds=[tau])``
  (``use_subvoxels=False``: a surface's size is its number of surface voxels).
* **boundary-error share** = ``|E & S| / |E|``: the share of the error voxels
  ``E = P xor G`` (false positives and false negatives) that lie in the boundary shell
  ``S`` of the ground truth. ``S`` holds the voxels within ``shell`` voxels of the
  ground-truth boundary on either side: object voxels whose Euclidean distance to the
  nearest background voxel (outside the image counts as background) is ``<= shell``, and
  background voxels whose distance to the nearest object voxel is ``<= shell``. This is
  ``dilate(G) & ~erode(G)`` with a Euclidean ball of radius ``shell``; ``shell = 2`` gives
  two voxel layers inside and two outside the ground-truth boundary. The shell is measured
  in voxels, whatever ``spacing`` is. The complement ``1 - share`` is the interior
  (far-from-boundary) error share. It describes *where* errors are; lower is not
  necessarily better.

Empty-mask policy (per class):

* ``G`` and ``P`` both empty: HD95 = 0, NSD = 1, boundary share NaN (no error voxels);
* exactly one empty: HD95 NaN (undefined; NaN samples are excluded from means, and the
  Dice-based fail rate covers such cases), NSD = 0; the boundary share is defined: with
  ``G`` empty there is no shell and it is 0, with ``P`` empty every ground-truth voxel is
  an error;
* no error voxel at all (``P == G``): boundary share NaN.

monai differs on the empty cases only: it gives NaN (both empty) and inf (one empty) for
HD95, and NaN for NSD when both are empty. Otherwise the surface-distance sets are
identical; values differ only by monai's float32 arithmetic (HD95 through
``torch.quantile`` in float32: relative differences of order 1e-6).

Per sample, each metric is the mean over the foreground classes ``1..C-1`` whose value is
not NaN (NaN when every class is NaN), as :func:`medfairx.metrics.basic.dice_iou_per_sample`
averages Dice over classes.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from scipy.spatial import KDTree

HD_PERCENTILE = 95.0
DEFAULT_TOLERANCE = 2.0
DEFAULT_SHELL = 2
CHUNK_VOXELS = 1 << 21
"""Samples are processed in chunks of about this many voxels (bounds scipy's work arrays)."""
SURFACE_COLUMNS: tuple[str, ...] = ("hd95", "nsd", "boundary_error_share")
BAD_SHAPES = "pred and true must have the same shape (N, H, W) or (N, D, H, W); got {pred} and {true}."
BAD_SPACING = "spacing must be one positive number or one per spatial axis ({dims}); got {spacing!r}."
BAD_TOLERANCE = "tolerance must be a finite number >= 0; got {tolerance!r}."
BAD_SHELL = "shell must be >= 0 voxels; got {shell!r}."


def surface_metrics_per_sample(
    pred: np.ndarray,
    true: np.ndarray,
    num_classes: int,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    shell: float = DEFAULT_SHELL,
    spacing: float | Sequence[float] | None = None,
) -> dict[str, np.ndarray]:
    """Per-sample HD95, NSD and boundary-error share of label maps (see the module docstring).

    Args:
        pred: predicted label maps ``(N, H, W)`` or ``(N, D, H, W)`` (class indices).
        true: ground-truth label maps of the same shape.
        num_classes: number of classes including background 0; classes ``1..C-1`` are scored
            (class 1 when ``num_classes < 2``).
        tolerance: NSD tolerance ``tau``, in ``spacing`` units (pixels by default).
        shell: half-width of the boundary shell, in voxels.
        spacing: voxel size, one number or one per spatial axis; ``None`` = 1 (pixels).

    Returns:
        ``{"hd95", "nsd", "boundary_error_share"}``, each a float64 array ``(N,)``; NaN where
        undefined (empty-mask policy in the module docstring).

    Raises:
        ValueError: on mismatched or unsupported shapes, or invalid ``spacing`` /
            ``tolerance`` / ``shell``.
    """
    pred = np.asarray(pred)
    true = np.asarray(true)
    if pred.shape != true.shape or pred.ndim not in (3, 4):
        raise ValueError(BAD_SHAPES.format(pred=pred.shape, true=true.shape))
    dims = pred.ndim - 1
    sampling = _sampling(spacing, dims)
    if not (isinstance(tolerance, (int, float, np.number)) and math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(BAD_TOLERANCE.format(tolerance=tolerance))
    if not shell >= 0:
        raise ValueError(BAD_SHELL.format(shell=shell))
    n = pred.shape[0]
    classes = range(1, max(int(num_classes), 2))
    per_class = {k: np.full((len(classes), n), np.nan) for k in SURFACE_COLUMNS}
    step = max(1, CHUNK_VOXELS // max(1, int(np.prod(pred.shape[1:]))))
    for start in range(0, n, step):
        sl = slice(start, min(start + step, n))
        for i, c in enumerate(classes):
            hd, nsd, share = _one_class(pred[sl] == c, true[sl] == c, sampling, float(tolerance), float(shell))
            per_class["hd95"][i, sl] = hd
            per_class["nsd"][i, sl] = nsd
            per_class["boundary_error_share"][i, sl] = share
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN samples stay NaN
        return {k: np.nanmean(v, axis=0) for k, v in per_class.items()}


def _sampling(spacing: float | Sequence[float] | None, dims: int) -> np.ndarray:
    """Voxel size per spatial axis."""
    if spacing is None:
        return np.ones(dims)
    s = np.atleast_1d(np.asarray(spacing, dtype=np.float64))
    if s.size == 1:
        s = np.repeat(s, dims)
    if s.shape != (dims,) or not np.all(np.isfinite(s) & (s > 0)):
        raise ValueError(BAD_SPACING.format(dims=dims, spacing=spacing))
    return s


def _surface(mask: np.ndarray) -> np.ndarray:
    """Surface voxels of every sample of a ``(n, *spatial)`` stack (face connectivity)."""
    dims = mask.ndim - 1
    cross = ndimage.generate_binary_structure(dims, 1)[None]  # no extent along the sample axis
    result: np.ndarray = mask & ~ndimage.binary_erosion(mask, structure=cross, border_value=0)
    return result


def _surface_points(surface: np.ndarray, sampling: np.ndarray, far: float) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of the surface voxels of a stack, and the sample each belongs to.

    Spatial coordinates are scaled by ``sampling``; the sample index becomes an extra
    coordinate scaled by ``far`` (larger than any within-sample distance), so one
    nearest-neighbour search over the whole stack only ever pairs voxels of one sample
    (every sample searched has at least one surface voxel).
    """
    idx = np.argwhere(surface)
    pts = idx.astype(np.float64)
    pts[:, 0] *= far
    pts[:, 1:] *= sampling
    return pts, idx[:, 0]


def _far(spatial: tuple[int, ...], sampling: np.ndarray) -> float:
    """A distance larger than any within-sample distance."""
    return 2.0 * float(np.sqrt(np.sum(((np.asarray(spatial) + 1) * sampling) ** 2))) + 1.0


def _quantiles(values: np.ndarray, owner: np.ndarray, n: int, q: float) -> np.ndarray:
    """Linearly interpolated quantile ``q`` of ``values`` per owner ``0..n-1`` (NaN if none)."""
    counts = np.bincount(owner, minlength=n)
    out = np.full(n, np.nan)
    has = counts > 0
    if not has.any():
        return out
    order = np.lexsort((values, owner))
    v = values[order]
    start = np.cumsum(counts) - counts
    h = (counts - 1) * q
    lo = np.floor(h)
    hi = np.minimum(lo + 1, counts - 1)
    a = v[np.where(has, start + lo, 0).astype(np.int64)]
    b = v[np.where(has, start + hi, 0).astype(np.int64)]
    t = h - lo
    val = a + t * (b - a)
    out[has] = val[has]
    return out


def _one_class(p: np.ndarray, g: np.ndarray, sampling: np.ndarray, tau: float,
               shell: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """HD95, NSD and boundary share of one class for a chunk of binary masks ``(n, *spatial)``."""
    axes = tuple(range(1, p.ndim))
    has_p, has_g = p.any(axis=axes), g.any(axis=axes)
    both = has_p & has_g
    hd = np.where(has_p | has_g, np.nan, 0.0)
    nsd = np.where(has_p | has_g, 0.0, 1.0)
    if both.any():
        keep = np.flatnonzero(both)
        m = keep.size
        far = _far(p.shape[1:], sampling)
        pts_p, own_p = _surface_points(_surface(p[keep]), sampling, far)
        pts_g, own_g = _surface_points(_surface(g[keep]), sampling, far)
        d_pg = KDTree(pts_g, leafsize=32).query(pts_p, k=1)[0]  # pred surface -> nearest GT surface voxel
        d_gp = KDTree(pts_p, leafsize=32).query(pts_g, k=1)[0]  # GT surface -> nearest pred surface voxel
        q = HD_PERCENTILE / 100.0
        hd[keep] = np.fmax(_quantiles(d_pg, own_p, m, q), _quantiles(d_gp, own_g, m, q))
        close = np.bincount(own_p, weights=d_pg <= tau, minlength=m) + np.bincount(
            own_g, weights=d_gp <= tau, minlength=m)
        total = np.bincount(own_p, minlength=m) + np.bincount(own_g, minlength=m)
        nsd[keep] = close / total
    return hd, nsd, _boundary_share(p, g, shell)


def _ball(dims: int, radius: float) -> np.ndarray:
    """Euclidean ball of ``radius`` voxels as a structuring element, flat along the sample axis."""
    r = int(math.floor(radius))
    grid = np.indices((2 * r + 1,) * dims) - r
    result: np.ndarray = ((grid**2).sum(axis=0) <= radius**2)[None]
    return result


def _boundary_share(p: np.ndarray, g: np.ndarray, shell: float) -> np.ndarray:
    """Share of error voxels (``p xor g``) within ``shell`` voxels of ``g``'s boundary, per sample."""
    axes = tuple(range(1, p.ndim))
    err = p ^ g
    n_err = err.sum(axis=axes).astype(np.float64)
    out = np.full(p.shape[0], np.nan)
    rows = np.flatnonzero(n_err > 0)
    if rows.size == 0:
        return out
    out[rows] = (err[rows] & boundary_shell(g[rows], shell)).sum(axis=axes) / n_err[rows]
    return out


def boundary_shell(masks: np.ndarray, width: float = DEFAULT_SHELL) -> np.ndarray:
    """Voxels within ``width`` voxels (Euclidean) of the boundary of each mask, inside or outside.

    ``dilate(M) & ~erode(M)`` with a Euclidean ball of radius ``width``; beyond the image
    border counts as background, as for the surface.

    Args:
        masks: ``(N, H, W)`` or ``(N, D, H, W)`` boolean masks (one per sample).
        width: shell half-width in voxels.
    """
    m = np.asarray(masks).astype(bool)
    ball = _ball(m.ndim - 1, width)
    result: np.ndarray = ndimage.binary_dilation(m, structure=ball) & ~ndimage.binary_erosion(m, structure=ball, border_value=0)
    return result


__all__ = ["DEFAULT_SHELL", "DEFAULT_TOLERANCE", "SURFACE_COLUMNS", "boundary_shell", "surface_metrics_per_sample"]
