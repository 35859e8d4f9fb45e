"""The :class:`PromptableSegmenter` interface and the evaluation-only method around it.

A promptable segmenter maps ``(image, prompt) → mask``: ``image`` is one ``(C, H, W)``
array as in :class:`~medfairx.methods.TaskData` (``uint8`` or float), ``prompt`` a
:class:`~medfairx.data.prompts.Prompt`, and the result an ``(H, W)`` float array of foreground
probabilities in ``[0, 1]`` (a hard mask is a valid probability map). Segmenters that can
share work between the prompts of one image (SAM encodes the image once) also implement
``predict_many(image, prompts) → (K, H, W)``.

:class:`PromptedSegmentationMethod` turns a segmenter into a platform method: ``fit`` only
builds (or loads) the segmenter; ``predict_scores`` reads ``data.prompts`` (attached by the
framework, see :mod:`medfairx.data.prompts`) and never the labels, and merges the per-prompt
masks into ``(N, C, H, W)`` class probabilities. A sample without any prompt (empty
ground truth) is predicted as background.

3D volumes (docs/methods.md §7, slice-wise prompting, [INFERRED]): segmenters stay 2D. For a
``(N, C, D, H, W)`` split the framework derives prompts per slice along the first spatial
axis ``D`` (:data:`medfairx.data.prompts.SLICE_AXIS`), only for slices with a non-empty
ground-truth mask, each prompt carrying its ``slice_index``. :func:`segment_volume` calls
the 2D segmenter on every prompted slice ``image[:, k]`` with that slice's prompts, predicts
every unprompted slice as background, and stacks the slices back into ``(C, D, H, W)``;
the platform then scores the volume (volumetric Dice / IoU). **Unprompted slices cannot
contain false positives**: the prompts tell the method which slices hold the object, so
every false positive outside them is hidden. 3D scores are therefore an upper bound on two
counts: ground-truth prompts, and no false positives outside the prompted slices. The
number of prompted and of all slices is logged at every 3D prediction, kept in
``slice_counts_`` and recorded with the prompts (:meth:`medfairx.data.prompts.PromptSet.describe`,
stored in ``run.json``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from medfairx.data.prompts import SLICE_AXIS, Prompt, PromptConfig, PromptSet
from medfairx.errors import ConfigError
from medfairx.methods import Method, RunContext, TaskData


@runtime_checkable
class PromptableSegmenter(Protocol):
    """``predict(image (C, H, W), prompt) → (H, W)`` foreground probabilities."""

    def predict(self, image: np.ndarray, prompt: Prompt) -> np.ndarray:
        """Segment the object that ``prompt`` designates in ``image``."""
        ...


def segment_prompts(segmenter: PromptableSegmenter, image: np.ndarray, prompts: Sequence[Prompt]) -> np.ndarray:
    """``(K, H, W)`` probabilities of the ``K`` prompts of one image (``predict_many`` if any)."""
    shape = tuple(image.shape[1:])
    if not prompts:
        return np.zeros((0, *shape), dtype=np.float32)
    many = getattr(segmenter, "predict_many", None)
    out = many(image, list(prompts)) if callable(many) else np.stack([segmenter.predict(image, p) for p in prompts])
    out = np.asarray(out, dtype=np.float32)
    if out.shape != (len(prompts), *shape):
        raise ConfigError(
            f"{type(segmenter).__name__} returned masks of shape {out.shape}; expected {(len(prompts), *shape)}."
        )
    return np.clip(out, 0.0, 1.0)


def merge_masks(prompts: Sequence[Prompt], masks: np.ndarray, num_classes: int, shape: tuple[int, ...]) -> np.ndarray:
    """``(C, H, W)`` class probabilities from per-prompt foreground probabilities.

    ``p_c`` is the pixel-wise maximum over the prompts of class ``c``; background is
    ``1 − max_c p_c``; the stack is normalised to sum to 1, so the argmax is class ``c``
    where ``p_c > 0.5`` (for one class) and background where no prompt claims the pixel.
    """
    out = np.zeros((num_classes, *shape), dtype=np.float32)
    for p, m in zip(prompts, masks, strict=False):
        if not 0 < p.label < num_classes:
            raise ConfigError(f"Prompt label {p.label} is outside the foreground classes 1..{num_classes - 1}.")
        np.maximum(out[p.label], m, out=out[p.label])
    out[0] = 1.0 - out[1:].max(axis=0)
    total = out.sum(axis=0, keepdims=True)
    return out / np.maximum(total, 1e-12)


def segment_volume(
    segmenter: PromptableSegmenter, volume: np.ndarray, prompts: Sequence[Prompt], num_classes: int
) -> tuple[np.ndarray, tuple[int, ...]]:
    """``(num_classes, D, H, W)`` class probabilities of one ``(C, D, H, W)`` volume, slice by slice.

    Every slice ``k`` that carries prompts (``prompt.slice_index == k``) is segmented as a 2D
    image ``volume[:, k]`` with its prompts (:func:`segment_prompts`, :func:`merge_masks`);
    every other slice is predicted as background (probability 1), so it cannot contain a
    false positive. Also returns the sorted indices of the prompted slices.

    Raises:
        ConfigError: a prompt has no ``slice_index`` or one outside ``0..D-1``.
    """
    vol = np.asarray(volume)
    if vol.ndim != 4:
        raise ConfigError(f"segment_volume: expected a (C, D, H, W) volume, got shape {vol.shape}.")
    depth = vol.shape[1 + SLICE_AXIS]
    by_slice: dict[int, list[Prompt]] = {}
    for p in prompts:
        if p.slice_index is None or not 0 <= p.slice_index < depth:
            raise ConfigError(
                f"segment_volume: prompt {p} has slice_index {p.slice_index!r}; prompts of a volume with {depth} "
                "slices need a slice_index in 0..D-1 (derive them with medfairx.data.prompts.derive_prompts on 3D labels)."
            )
        by_slice.setdefault(int(p.slice_index), []).append(p)
    out = np.zeros((num_classes, *vol.shape[1:]), dtype=np.float32)
    out[0] = 1.0  # unprompted slices: background
    for k, mine in by_slice.items():  # SLICE_AXIS is 0: slice k of a (C, D, H, W) volume is vol[:, k]
        image = vol[:, k]
        out[:, k] = merge_masks(mine, segment_prompts(segmenter, image, mine), num_classes, image.shape[1:])
    return out, tuple(sorted(by_slice))


class PromptedMixin:
    """What every method prompted from the ground truth shares.

    The class sets ``prompt``, ``jitter`` and ``n_points`` in ``__init__``; the framework
    calls :meth:`prompt_config` to derive the prompts it attaches to the predicted data.
    """

    needs_prompts: ClassVar[bool] = True
    prompt: str
    jitter: int
    n_points: int

    def prompt_config(self) -> PromptConfig:
        """How the framework must derive this method's prompts (validates the parameters)."""
        return PromptConfig(mode=self.prompt, jitter=self.jitter, n_points=self.n_points)

    def prompts_of(self, data: TaskData) -> PromptSet:
        """``data.prompts``, checked against the samples.

        Raises:
            ConfigError: no prompts, or prompts of other samples.
        """
        prompts = data.prompts
        if prompts is None:
            raise ConfigError(
                f"{type(self).__name__} needs prompts derived from the ground truth, but the data carry none. "
                "The framework attaches them for methods tagged needs_prompts "
                "(medfairx.data.prompts.attach_prompts(masked, truth, method.prompt_config(), seed))."
            )
        if not isinstance(prompts, PromptSet) or len(prompts) != len(data):
            raise ConfigError(f"data.prompts must be a PromptSet with one entry per sample ({len(data)}).")
        if not np.array_equal(np.asarray(prompts.sample_ids), np.asarray(data.sample_ids)):
            raise ConfigError("data.prompts were derived for other samples than data.sample_ids.")
        if tuple(prompts.shape) != tuple(data.images.shape[2:]):
            raise ConfigError(
                f"data.prompts were derived for images of shape {tuple(prompts.shape)}, but the images are "
                f"{tuple(data.images.shape[2:])}."
            )
        return prompts


class PromptedSegmentationMethod(PromptedMixin, Method):
    """An evaluation-only method around a :class:`PromptableSegmenter`.

    Subclasses implement :meth:`build_segmenter` and declare their extra hyper-parameters in
    ``__init__`` (stored unchanged). A subclass whose tags declare ``spatial_dims`` 3 also
    predicts volumes, slice by slice (:func:`segment_volume`; see the module docstring:
    unprompted slices are predicted empty, so they cannot contain false positives). After
    each 3D prediction ``slice_counts_`` holds ``{"n_volumes", "n_slices",
    "n_prompted_slices", "slice_axis"}`` (also written to ``ctx.log``).

    Args:
        prompt: ``"box"``, ``"point"``, ``"box+point"`` or ``"points"``.
        jitter: prompt jitter in pixels (0 = the paper protocol).
        n_points: random points per object for ``prompt="points"``.
    """

    def __init__(self, prompt: str = "box", jitter: int = 0, n_points: int = 1) -> None:
        self.prompt = prompt
        self.jitter = jitter
        self.n_points = n_points

    def build_segmenter(self, ctx: RunContext) -> PromptableSegmenter:
        """The segmenter for this run (load weights here; raise if it cannot run)."""
        raise NotImplementedError

    def check_task(self, ctx: RunContext) -> None:
        """Raise :class:`ConfigError` unless the run is segmentation in a dimensionality the
        tags declare (2D images; 3D volumes slice by slice)."""
        dims = tuple(self.tags.spatial_dims)
        if ctx.task != "segmentation" or ctx.spatial_dims not in dims:
            what = "2D images (and 3D volumes slice by slice)" if 3 in dims else "2D images"
            raise ConfigError(
                f"{type(self).__name__} segments {what} from prompts; this run is {ctx.spatial_dims}D {ctx.task}."
            )

    def fit(self, train: TaskData, val: TaskData, ctx: RunContext) -> PromptedSegmentationMethod:
        """Build the segmenter; no training (the data are not read)."""
        self.check_task(ctx)
        self.prompt_config()
        self.segmenter_ = self.build_segmenter(ctx)
        self.num_classes_ = int(ctx.num_classes)
        self.fitted_ = True
        return self

    def predict_scores(self, data: TaskData, ctx: RunContext) -> np.ndarray:
        """``(N, C, H, W)`` (or ``(N, C, D, H, W)``, slice by slice) probabilities from the
        images and ``data.prompts`` only.

        Raises:
            ConfigError: ``data.prompts`` is missing or does not match the samples.
        """
        self.check_fitted("predict_scores")
        prompts = self.prompts_of(data)
        shape = tuple(data.images.shape[2:])
        out = np.empty((len(data), self.num_classes_, *shape), dtype=np.float32)
        if len(shape) == 3:
            prompted = 0
            for i in range(len(data)):
                out[i], slices = segment_volume(self.segmenter_, data.images[i], prompts[i], self.num_classes_)
                prompted += len(slices)
            self.slice_counts_ = {
                "n_volumes": len(data),
                "n_slices": len(data) * shape[SLICE_AXIS],
                "n_prompted_slices": prompted,
                "slice_axis": SLICE_AXIS,
            }
            ctx.log(
                f"{self.name or type(self).__name__}: slice-wise prompting along axis {SLICE_AXIS} (D): "
                f"{prompted} of {len(data) * shape[SLICE_AXIS]} slices prompted in {len(data)} volumes; "
                "unprompted slices predicted empty (they cannot contain false positives: upper bound)"
            )
            return out
        for i in range(len(data)):
            masks = segment_prompts(self.segmenter_, data.images[i], prompts[i])
            out[i] = merge_masks(prompts[i], masks, self.num_classes_, shape)
        return out

    def state_dict(self) -> dict[str, Any]:
        """Hyper-parameters only: the segmenter is rebuilt from them (weights stay in their file)."""
        self.check_fitted("state_dict")
        return {"format": 1, "method": self.name or type(self).__name__, "params": copy.deepcopy(self.get_params())}

    def load_state_dict(self, state: dict[str, Any], ctx: RunContext) -> PromptedSegmentationMethod:
        """Restore the hyper-parameters and rebuild the segmenter for ``ctx``."""
        self.restore_params(state)
        self.check_task(ctx)
        self.segmenter_ = self.build_segmenter(ctx)
        self.num_classes_ = int(ctx.num_classes)
        self.fitted_ = True
        return self
