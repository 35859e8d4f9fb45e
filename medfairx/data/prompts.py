"""Prompts for promptable segmenters, derived from the ground truth in one audited step.

Promptable segmenters (SAM, MedSAM, the weight-free baselines of ``medfairx-foundation``)
are evaluated the way the foundation-model fairness papers do it (docs/methods.md §7): every
object of the ground truth is turned into a prompt (a tight box, the centre point, random
foreground points, or box + point, with seeded jitter) and the model segments the object
from the image and the prompt alone.

The platform masks labels at predict time, so such a method cannot derive prompts itself.
Instead the framework calls :func:`attach_prompts` once per evaluated split: it reads the
*unmasked* ground truth, builds a :class:`PromptSet`, and hands the method a copy of the
masked :class:`~medfairx.methods.base.TaskData` whose ``prompts`` field carries only
boxes and points (never a mask). :meth:`PromptSet.describe` is the audit record stored
with the run. Results of such methods are an upper bound on interactive performance
("prompted from ground truth") and leaderboards must flag them (tag ``needs_prompts``).

Conventions: 2D label maps ``(H, W)`` (0 = background); boxes are inclusive pixel
indices ``(x0, y0, x1, y1)`` (x = column, y = row), as SAM's and MedSAM's box prompts;
points are ``(x, y)`` pixel indices with label 1 (foreground) or 0 (background).
Jitter is drawn from a generator seeded by ``(seed, crc32(sample_id))``, so a sample's
prompts do not depend on the order or the subset of samples.

3D volumes ``(D, H, W)`` are prompted slice by slice (docs/methods.md §7, [INFERRED]): slices
are taken along the first spatial axis (:data:`SLICE_AXIS`, ``D``), slice ``k`` being the
2D label map ``volume[k]`` (and the image ``images[i][:, k]``). Only slices whose mask is
non-empty get prompts, per class and per connected component *within the slice*, exactly
as a 2D image; every such prompt records its slice in :attr:`Prompt.slice_index` (``None``
for 2D). Slice ``k`` draws its jitter from its own generator, seeded by the ``k``-th of
``D`` integers drawn first from the sample's generator, so a slice's prompts depend only on
``(seed, sample_id, k)`` and that slice's mask. A method predicts the unprompted slices as
empty, so they cannot contain false positives: slice-wise ground-truth prompting hides
every false positive outside the prompted slices, and volumetric scores are an upper bound
(:meth:`PromptSet.describe` records how many slices were prompted).

This module imports numpy and scipy only (no torch).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from medfairx.errors import ConfigError
from medfairx.specs import MethodTags

if TYPE_CHECKING:
    from medfairx.contracts import TaskData

PROMPT_MODES: tuple[str, ...] = ("box", "point", "box+point", "points")
"""``box``: tight box; ``point``: centre point (distance-transform maximum); ``box+point``:
both; ``points``: ``n_points`` random foreground points."""

PROMPT_SOURCE = "ground truth (upper bound on interactive performance)"
BOX_VALUE = 0.5
"""Value of box pixels in :func:`rasterise` (points get 1.0)."""

Box = tuple[int, int, int, int]
Point = tuple[int, int]

SLICE_AXIS = 0
"""Axis of a ``(D, H, W)`` volume along which 3D label maps are prompted slice by slice
(the first spatial axis; axis 1 of ``(N, D, H, W)`` labels, axis 2 of ``(N, C, D, H, W)``
images)."""


def PromptedMethodTags(**tags: Any) -> MethodTags:  # reads like the tags class it builds
    """:class:`~medfairx.specs.MethodTags` of a method prompted from the ground truth.

    ``needs_prompts`` tells the runner to call :func:`attach_prompts` and the leaderboard to
    flag the method ("prompted from ground truth: upper bound").
    """
    return MethodTags(needs_prompts=True, **tags)


def needs_prompts(obj: Any) -> bool:
    """Whether a method (class, instance, spec or its tags) needs ground-truth prompts."""
    tags = getattr(obj, "tags", obj)
    return bool(getattr(tags, "needs_prompts", False))


@dataclass(frozen=True)
class Prompt:
    """One prompt: the object of class ``label`` that the segmenter must delineate.

    Attributes:
        label: class index of the object (1 for binary segmentation).
        box: ``(x0, y0, x1, y1)`` inclusive pixel indices, or ``None``.
        points: ``((x, y), ...)`` pixel indices.
        point_labels: one label per point: 1 = foreground, 0 = background.
        slice_index: for a 3D volume, the index along :data:`SLICE_AXIS` of the 2D slice
            the prompt belongs to (box and points are pixel indices of that slice);
            ``None`` for a 2D image.
    """

    label: int
    box: Box | None = None
    points: tuple[Point, ...] = ()
    point_labels: tuple[int, ...] = ()
    slice_index: int | None = None

    def __post_init__(self) -> None:
        if len(self.points) != len(self.point_labels):
            raise ConfigError(
                f"Prompt: {len(self.points)} point(s) but {len(self.point_labels)} point label(s); give one per point."
            )
        if self.box is None and not self.points:
            raise ConfigError("Prompt: give a box, at least one point, or both.")
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            if x1 < x0 or y1 < y0:
                raise ConfigError(f"Prompt: box {self.box} has x1 < x0 or y1 < y0; boxes are (x0, y0, x1, y1).")
        if self.slice_index is not None and (int(self.slice_index) != self.slice_index or self.slice_index < 0):
            raise ConfigError(f"Prompt: slice_index must be a non-negative integer or None, got {self.slice_index!r}.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (``slice_index`` only for prompts of a 3D volume)."""
        out: dict[str, Any] = {
            "label": self.label,
            "box": None if self.box is None else list(self.box),
            "points": [list(p) for p in self.points],
            "point_labels": list(self.point_labels),
        }
        if self.slice_index is not None:
            out["slice_index"] = int(self.slice_index)
        return out


@dataclass(frozen=True)
class PromptConfig:
    """How prompts are derived from a label map.

    Attributes:
        mode: one of :data:`PROMPT_MODES`.
        jitter: maximal jitter in pixels. Boxes grow outwards by ``U{0..jitter}`` per side
            (MedSAM's training augmentation; the paper protocol evaluates with 0); points
            move by ``U{-jitter..jitter}`` per axis. Results stay inside the image.
        n_points: number of random foreground points of mode ``points``.
        per_component: one prompt per connected component (8-connectivity) of each class,
            as in docs/methods.md §7; ``False``: one prompt per class.
        min_component_size: components with fewer pixels get no prompt (when
            ``per_component``), so specks of annotation noise do not become prompts.
    """

    mode: str = "box"
    jitter: int = 0
    n_points: int = 1
    per_component: bool = True
    min_component_size: int = 1

    def __post_init__(self) -> None:
        if self.mode not in PROMPT_MODES:
            raise ConfigError(f"Unknown prompt mode {self.mode!r}; use one of {', '.join(PROMPT_MODES)}.")
        if int(self.jitter) != self.jitter or self.jitter < 0:
            raise ConfigError(f"Prompt jitter must be a non-negative integer number of pixels, got {self.jitter!r}.")
        if int(self.n_points) != self.n_points or self.n_points < 1:
            raise ConfigError(f"Prompt n_points must be a positive integer, got {self.n_points!r}.")
        if self.min_component_size < 1:
            raise ConfigError(f"Prompt min_component_size must be >= 1, got {self.min_component_size!r}.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "mode": self.mode,
            "jitter": int(self.jitter),
            "n_points": int(self.n_points),
            "per_component": bool(self.per_component),
            "min_component_size": int(self.min_component_size),
        }


@dataclass(frozen=True)
class PromptSet:
    """The prompts of one split: ``prompts[i]`` is the tuple of prompts of sample ``i``.

    Attributes:
        prompts: one tuple of :class:`Prompt` per sample (empty: nothing to segment).
        sample_ids: the samples, in the order of the split.
        shape: spatial shape of the images.
        config: how the prompts were derived.
        seed: the jitter seed.
        source: where the prompts come from (always the ground truth here).
    """

    prompts: tuple[tuple[Prompt, ...], ...]
    sample_ids: np.ndarray
    shape: tuple[int, ...]
    config: PromptConfig = field(default_factory=PromptConfig)
    seed: int = 0
    source: str = PROMPT_SOURCE

    def __len__(self) -> int:
        return len(self.prompts)

    def __getitem__(self, i: int) -> tuple[Prompt, ...]:
        return self.prompts[i]

    @property
    def spatial_dims(self) -> int:
        """2 for images ``(H, W)``, 3 for volumes ``(D, H, W)`` (prompted slice by slice)."""
        return len(self.shape)

    @property
    def n_slices(self) -> int:
        """Slices per volume along :data:`SLICE_AXIS` (3D only).

        Raises:
            ConfigError: the prompts are of 2D images.
        """
        self._require_3d("n_slices")
        return int(self.shape[SLICE_AXIS])

    def _require_3d(self, what: str) -> None:
        if self.spatial_dims != 3:
            raise ConfigError(f"PromptSet.{what}: the prompts are of {self.spatial_dims}D images, not 3D volumes.")

    def prompted_slices(self, i: int) -> tuple[int, ...]:
        """Sorted indices of the slices of volume ``i`` that carry at least one prompt (3D only)."""
        self._require_3d("prompted_slices")
        return tuple(sorted({int(p.slice_index) for p in self.prompts[i] if p.slice_index is not None}))

    def slice_prompts(self, i: int, k: int) -> tuple[Prompt, ...]:
        """The prompts of slice ``k`` of volume ``i`` (3D only; empty: the slice is unprompted)."""
        self._require_3d("slice_prompts")
        return tuple(p for p in self.prompts[i] if p.slice_index == k)

    def subset(self, index: np.ndarray) -> PromptSet:
        """Rows ``index`` (integer positions or boolean mask), like :meth:`TaskData.subset`."""
        idx = np.arange(len(self))[np.asarray(index)]
        return replace(self, prompts=tuple(self.prompts[int(i)] for i in idx), sample_ids=self.sample_ids[idx])

    def describe(self) -> dict[str, Any]:
        """The audit record of the derivation (stored in ``run.json``).

        For 3D volumes it adds the slice axis, the total number of slices (``n_volumes × D``)
        and how many of them carry prompts: the others are predicted empty.
        """
        counts = np.array([len(p) for p in self.prompts], dtype=np.int64)
        out: dict[str, Any] = {
            "source": self.source,
            "config": self.config.to_dict(),
            "seed": int(self.seed),
            "n_samples": int(len(self)),
            "n_prompts": int(counts.sum()),
            "n_unprompted_samples": int((counts == 0).sum()),
            "note": "samples without any prompt are predicted empty, so they cannot contain false positives",
        }
        if self.spatial_dims == 3:
            prompted = sum(len(self.prompted_slices(i)) for i in range(len(self)))
            total = len(self) * self.n_slices
            out.update(
                spatial_dims=3,
                slice_axis=f"{SLICE_AXIS} (first spatial axis, D)",
                n_slices=int(total),
                n_prompted_slices=int(prompted),
                n_unprompted_slices=int(total - prompted),
                note=(
                    "3D volumes prompted slice by slice: only slices with a non-empty ground-truth mask get "
                    "prompts; unprompted slices (and samples) are predicted empty, so they cannot contain false "
                    "positives; volumetric scores are an upper bound"
                ),
            )
        return out


# --- geometry ------------------------------------------------------------------------------


def box_of(mask: np.ndarray) -> Box:
    """Tight box ``(x0, y0, x1, y1)`` (inclusive) of a non-empty 2D boolean mask.

    Raises:
        ConfigError: the mask is empty or not 2D.
    """
    m = _check_2d(mask)
    rows = np.flatnonzero(m.any(axis=1))
    cols = np.flatnonzero(m.any(axis=0))
    if rows.size == 0:
        raise ConfigError("box_of: the mask is empty; an empty object has no box.")
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


def centre_point(mask: np.ndarray) -> Point:
    """The pixel ``(x, y)`` of the mask farthest from the background (distance transform).

    The image border counts as background. Ties go to the first pixel in row-major order.

    Raises:
        ConfigError: the mask is empty or not 2D.
    """
    from scipy.ndimage import distance_transform_edt

    m = _check_2d(mask)
    if not m.any():
        raise ConfigError("centre_point: the mask is empty; an empty object has no centre.")
    dist = distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1]
    r, c = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return int(c), int(r)


def random_points(mask: np.ndarray, n: int, rng: np.random.Generator) -> tuple[Point, ...]:
    """``n`` foreground pixels ``(x, y)`` drawn uniformly (without replacement while possible)."""
    m = _check_2d(mask)
    rows, cols = np.nonzero(m)
    if rows.size == 0:
        raise ConfigError("random_points: the mask is empty.")
    pick = rng.choice(rows.size, size=n, replace=n > rows.size)
    return tuple((int(cols[i]), int(rows[i])) for i in pick)


def jitter_box(box: Box, shape: tuple[int, int], jitter: int, rng: np.random.Generator) -> Box:
    """Grow each side of ``box`` outwards by ``U{0..jitter}`` pixels, clipped to the image."""
    if jitter == 0:
        return box
    h, w = shape
    d = rng.integers(0, jitter + 1, size=4)
    x0, y0, x1, y1 = box
    return max(x0 - int(d[0]), 0), max(y0 - int(d[1]), 0), min(x1 + int(d[2]), w - 1), min(y1 + int(d[3]), h - 1)


def jitter_point(point: Point, shape: tuple[int, int], jitter: int, rng: np.random.Generator) -> Point:
    """Move ``point`` by ``U{-jitter..jitter}`` pixels per axis, clipped to the image."""
    if jitter == 0:
        return point
    h, w = shape
    dx, dy = (int(v) for v in rng.integers(-jitter, jitter + 1, size=2))
    return min(max(point[0] + dx, 0), w - 1), min(max(point[1] + dy, 0), h - 1)


def components(mask: np.ndarray, min_size: int = 1) -> list[np.ndarray]:
    """Connected components (8-connectivity) of a 2D mask with at least ``min_size`` pixels,
    largest first (ties: order of appearance)."""
    from scipy.ndimage import label as cc_label

    m = _check_2d(mask)
    lab, n = cc_label(m, structure=np.ones((3, 3), dtype=bool))
    if n == 0:
        return []
    sizes = np.bincount(lab.ravel())[1:]
    order = sorted(range(n), key=lambda k: (-sizes[k], k))
    return [lab == k + 1 for k in order if sizes[k] >= min_size]


def sample_rng(seed: int, sample_id: Any) -> np.random.Generator:
    """The jitter generator of one sample: seeded by ``(seed, crc32(str(sample_id)))``."""
    return np.random.default_rng([int(seed), zlib.crc32(str(sample_id).encode("utf-8"))])


# --- derivation ----------------------------------------------------------------------------


def prompt_for_object(mask: np.ndarray, label: int, config: PromptConfig, rng: np.random.Generator) -> Prompt:
    """The prompt of one object (a boolean mask) under ``config``."""
    shape = mask.shape
    box = None
    point: tuple[Point, ...] | None = None
    if config.mode in ("box", "box+point"):
        box = jitter_box(box_of(mask), shape, config.jitter, rng)
    if config.mode in ("point", "box+point"):
        point = (jitter_point(centre_point(mask), shape, config.jitter, rng),)
    if config.mode == "points":
        point = tuple(jitter_point(p, shape, config.jitter, rng) for p in random_points(mask, config.n_points, rng))
    pts = point or ()
    return Prompt(label=int(label), box=box, points=pts, point_labels=(1,) * len(pts))


def prompts_for_label_map(label_map: np.ndarray, config: PromptConfig, rng: np.random.Generator) -> tuple[Prompt, ...]:
    """Prompts of every object of a 2D label map ``(H, W)`` (classes in increasing order),
    or of every non-empty slice of a 3D volume ``(D, H, W)`` (see :func:`prompts_for_volume`)."""
    lm = np.asarray(label_map)
    if lm.ndim == 3:
        return prompts_for_volume(lm, config, rng)
    if lm.ndim != 2:
        raise ConfigError(
            f"Prompts are derived from 2D label maps (H, W) or 3D volumes (D, H, W); got shape {lm.shape}."
        )
    out: list[Prompt] = []
    for c in (int(v) for v in np.unique(lm) if v > 0):
        mask = lm == c
        objects = components(mask, config.min_component_size) if config.per_component else [mask]
        out.extend(prompt_for_object(obj, c, config, rng) for obj in objects)
    return tuple(out)


def slice_rngs(rng: np.random.Generator, n_slices: int) -> list[np.random.Generator]:
    """One jitter generator per slice of a volume, seeded by ``n_slices`` integers drawn
    from the sample's generator ``rng`` (drawn for every slice, empty or not)."""
    seeds = rng.integers(0, 2**63 - 1, size=n_slices, dtype=np.int64)
    return [np.random.default_rng(int(s)) for s in seeds]


def prompts_for_volume(volume: np.ndarray, config: PromptConfig, rng: np.random.Generator) -> tuple[Prompt, ...]:
    """Slice-wise prompts of a 3D label map ``(D, H, W)`` along :data:`SLICE_AXIS`.

    Every slice ``k`` with a non-empty mask is prompted like a 2D label map (per class and
    per connected component within the slice, with the jitter generator of slice ``k``,
    :func:`slice_rngs`); its prompts carry ``slice_index=k``. Empty slices get none. The
    prompts are ordered by slice, then as in 2D.
    """
    vol = np.asarray(volume)
    if vol.ndim != 3:
        raise ConfigError(f"prompts_for_volume: expected a (D, H, W) volume, got shape {vol.shape}.")
    out: list[Prompt] = []
    for k, slice_rng in enumerate(slice_rngs(rng, vol.shape[SLICE_AXIS])):
        sl = np.take(vol, k, axis=SLICE_AXIS)
        if (sl > 0).any():
            out.extend(replace(p, slice_index=k) for p in prompts_for_label_map(sl, config, slice_rng))
    return tuple(out)


def derive_prompts(
    labels: np.ndarray | None, sample_ids: Sequence[Any] | np.ndarray, config: PromptConfig, seed: int = 0
) -> PromptSet:
    """Prompts of a split's ``(N, H, W)`` ground-truth label maps, or of its ``(N, D, H, W)``
    volumes, slice by slice along the first spatial axis (see the module docstring).

    Raises:
        ConfigError: labels missing, neither 2D nor 3D, or not aligned with ``sample_ids``.
    """
    if labels is None:
        raise ConfigError("derive_prompts: the ground truth is missing (labels is None); prompts come from the ground truth.")
    lab = np.asarray(labels)
    ids = np.asarray(sample_ids)
    if lab.ndim not in (3, 4):
        raise ConfigError(
            f"derive_prompts: expected (N, H, W) label maps or (N, D, H, W) volumes, got shape {lab.shape}."
        )
    if len(ids) != lab.shape[0]:
        raise ConfigError(f"derive_prompts: {lab.shape[0]} label maps but {len(ids)} sample ids.")
    prompts = tuple(prompts_for_label_map(lab[i], config, sample_rng(seed, ids[i])) for i in range(lab.shape[0]))
    return PromptSet(prompts=prompts, sample_ids=ids, shape=tuple(lab.shape[1:]), config=config, seed=int(seed))


def attach_prompts(data: TaskData, truth: TaskData, config: PromptConfig, seed: int = 0) -> TaskData:
    """The framework step: ``data`` plus prompts derived from ``truth``'s labels.

    ``data`` is what the method will see (the runner passes it with labels masked); its
    labels are left as they are, only ``prompts`` (boxes and points) is added.

    Raises:
        ConfigError: ``truth`` has no labels or its samples differ from ``data``'s.
    """
    if not np.array_equal(np.asarray(data.sample_ids), np.asarray(truth.sample_ids)):
        raise ConfigError("attach_prompts: the masked data and the ground truth list different samples.")
    prompts = derive_prompts(truth.labels, truth.sample_ids, config, seed)
    return replace(data, prompts=prompts)


def rasterise(prompts: Sequence[Prompt], shape: tuple[int, int], *, point_radius: int = 1) -> np.ndarray:
    """One float32 ``(H, W)`` channel of prompts: boxes filled with :data:`BOX_VALUE`,
    foreground points as ``(2r+1)²`` squares of 1.0 (the maximum wins where they overlap)."""
    h, w = shape
    out = np.zeros((h, w), dtype=np.float32)
    for p in prompts:
        if p.box is not None:
            x0, y0, x1, y1 = p.box
            region = out[y0 : y1 + 1, x0 : x1 + 1]
            np.maximum(region, BOX_VALUE, out=region)
        for (x, y), lab in zip(p.points, p.point_labels, strict=False):
            if lab == 1:
                out[max(y - point_radius, 0) : y + point_radius + 1, max(x - point_radius, 0) : x + point_radius + 1] = 1.0
    return out


def _check_2d(mask: np.ndarray) -> np.ndarray:
    m = np.asarray(mask).astype(bool, copy=False)
    if m.ndim != 2:
        raise ConfigError(f"Expected a 2D mask, got shape {m.shape}.")
    return m
