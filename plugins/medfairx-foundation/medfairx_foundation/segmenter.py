"""The :class:`PromptableSegmenter` interface and the evaluation-only method around it.

A promptable segmenter maps ``(image, prompt) → mask``: ``image`` is one ``(C, H, W)``
array as in :class:`~medfairx.methods.base.TaskData` (``uint8`` or float), ``prompt`` a
:class:`~medfairx.prompts.Prompt`, and the result an ``(H, W)`` float array of foreground
probabilities in ``[0, 1]`` (a hard mask is a valid probability map). Segmenters that can
share work between the prompts of one image (SAM encodes the image once) also implement
``predict_many(image, prompts) → (K, H, W)``.

:class:`PromptedSegmentationMethod` turns a segmenter into a platform method: ``fit`` only
builds (or loads) the segmenter; ``predict_scores`` reads ``data.prompts`` (attached by the
framework, see :mod:`medfairx.prompts`) and never the labels, and merges the per-prompt
masks into ``(N, C, H, W)`` class probabilities. A sample without any prompt (empty
ground truth) is predicted as background.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from medfairx.errors import ConfigError
from medfairx.methods.base import Method, RunContext, TaskData
from medfairx.prompts import Prompt, PromptConfig, PromptSet


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
    for p, m in zip(prompts, masks):
        if not 0 < p.label < num_classes:
            raise ConfigError(f"Prompt label {p.label} is outside the foreground classes 1..{num_classes - 1}.")
        np.maximum(out[p.label], m, out=out[p.label])
    out[0] = 1.0 - out[1:].max(axis=0)
    total = out.sum(axis=0, keepdims=True)
    return out / np.maximum(total, 1e-12)


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
                "(medfairx.prompts.attach_prompts(masked, truth, method.prompt_config(), seed))."
            )
        if not isinstance(prompts, PromptSet) or len(prompts) != len(data):
            raise ConfigError(f"data.prompts must be a PromptSet with one entry per sample ({len(data)}).")
        if not np.array_equal(np.asarray(prompts.sample_ids), np.asarray(data.sample_ids)):
            raise ConfigError("data.prompts were derived for other samples than data.sample_ids.")
        return prompts


class PromptedSegmentationMethod(PromptedMixin, Method):
    """An evaluation-only method around a :class:`PromptableSegmenter`.

    Subclasses implement :meth:`build_segmenter` and declare their extra hyper-parameters in
    ``__init__`` (stored unchanged).

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
        """Raise :class:`ConfigError` unless the run is 2D segmentation."""
        if ctx.task != "segmentation" or ctx.spatial_dims != 2:
            raise ConfigError(
                f"{type(self).__name__} segments 2D images from prompts; this run is {ctx.spatial_dims}D {ctx.task}."
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
        """``(N, C, H, W)`` probabilities from the images and ``data.prompts`` only.

        Raises:
            ConfigError: ``data.prompts`` is missing or does not match the samples.
        """
        self.check_fitted("predict_scores")
        prompts = self.prompts_of(data)
        shape = tuple(data.images.shape[2:])
        out = np.empty((len(data), self.num_classes_, *shape), dtype=np.float32)
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
        for k, v in state.get("params", {}).items():
            if k in self._param_names():
                setattr(self, k, copy.deepcopy(v))
        self.check_task(ctx)
        self.segmenter_ = self.build_segmenter(ctx)
        self.num_classes_ = int(ctx.num_classes)
        self.fitted_ = True
        return self
