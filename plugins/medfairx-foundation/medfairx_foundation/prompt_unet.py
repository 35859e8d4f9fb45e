"""TinyPromptUNet: a small monai ``BasicUNet`` that takes the rasterised prompt as input.

docs/methods.md §7. The network sees the image plus one prompt channel per foreground class
(:func:`medfairx.data.prompts.rasterise`: boxes 0.5, points 1.0) and is trained by the framework
loop (:class:`~medfairx.methods.TrainableMethod`). ``fit`` derives the training
and validation prompts itself from their labels, which ``fit`` may read, with
``train_jitter`` pixels of jitter (as MedSAM trains with jittered boxes); at predict time
the prompts come from ``data.prompts``, attached by the framework, never from labels.

2D only (tags ``spatial_dims=(2,)``): unlike the evaluation-only methods, which segment 3D
volumes slice by slice with an unchanged 2D segmenter, this network is trained, and 3D
support would need slice-wise training data (sampling the prompted slices of the training
volumes) in the trainer; it is not implemented.

Search space (``medfairx bench --trials``, on top of the recipe's ``lr`` / ``weight_decay``):
``train_jitter`` 0-4 pixels (2).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from medfairx.data.prompts import PromptSet, derive_prompts, rasterise
from medfairx.errors import ConfigError
from medfairx.methods import (
    RunContext,
    TaskData,
    TrainableMethod,
    eval_batch_size,
    images_to_float,
    predict_proba,
)
from medfairx_foundation import PROMPT_UNET_SPEC
from medfairx_foundation.segmenter import PromptedMixin

DEFAULT_FEATURES: tuple[int, ...] = (8, 8, 16, 32, 64, 8)


def prompt_channels(prompts: PromptSet, num_classes: int) -> np.ndarray:
    """``(N, num_classes − 1, H, W)`` float32: the prompts of class ``c`` rasterised in channel ``c − 1``."""
    h, w = prompts.shape
    out = np.zeros((len(prompts), max(num_classes - 1, 1), h, w), dtype=np.float32)
    for i, sample in enumerate(prompts.prompts):
        for c in range(1, max(num_classes, 2)):
            mine = [p for p in sample if p.label == c]
            if mine:
                out[i, c - 1] = rasterise(mine, (h, w))
    return out


def with_prompt_channels(data: TaskData, prompts: PromptSet, num_classes: int) -> TaskData:
    """``data`` with float32 images (normalised like the trainer does) plus prompt channels."""
    images = images_to_float(torch.from_numpy(np.ascontiguousarray(data.images))).numpy()
    stacked = np.concatenate([images, prompt_channels(prompts, num_classes)], axis=1)
    return replace(data, images=stacked, prompts=None)


class PadToMultiple(nn.Module):
    """Zero-pads inputs to at least ``minimum`` pixels and a multiple of ``multiple`` per
    side (BasicUNet pools four times), and crops the output back."""

    def __init__(self, net: nn.Module, multiple: int = 16, minimum: int = 32) -> None:
        super().__init__()
        self.net = net
        self.multiple = multiple
        self.minimum = minimum

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``net`` on the padded input, cropped to the input's size."""
        h, w = x.shape[-2:]
        th, tw = (max(self.minimum, -(-s // self.multiple) * self.multiple) for s in (h, w))
        out = self.net(torch.nn.functional.pad(x, (0, tw - w, 0, th - h)))
        return out[..., :h, :w]


class TinyPromptUNet(PromptedMixin, TrainableMethod, spec=PROMPT_UNET_SPEC):
    """A BasicUNet trained with ground-truth prompts as extra input channels.

    Args:
        recipe: :class:`~medfairx.methods.TrainRecipe` overrides.
        prompt: prompt mode at evaluation (and training) time.
        jitter: evaluation prompt jitter in pixels (applied by the framework).
        n_points: points per object for ``prompt="points"``.
        train_jitter: jitter of the training / validation prompts.
        features: BasicUNet feature sizes (6 values).
    """

    default_recipe: ClassVar[dict[str, Any]] = {"criterion": "dice"}

    def __init__(
        self,
        recipe: dict[str, Any] | None = None,
        prompt: str = "box",
        jitter: int = 0,
        n_points: int = 1,
        train_jitter: int = 2,
        features: tuple[int, ...] | list[int] = DEFAULT_FEATURES,
    ) -> None:
        super().__init__(recipe=recipe)
        self.prompt = prompt
        self.jitter = jitter
        self.n_points = n_points
        self.train_jitter = train_jitter
        self.features = features

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        """Two short epochs."""
        return {"recipe": {"epochs": 2, "max_steps_per_epoch": 3, "batch_size": 16}}

    def build_model(self, ctx: RunContext) -> nn.Module:
        """BasicUNet over image channels + one prompt channel per foreground class (inputs
        padded to a multiple of 16, at least 32 pixels)."""
        if ctx.task != "segmentation" or ctx.spatial_dims != 2:
            raise ConfigError(f"prompt_unet segments 2D images; this run is {ctx.spatial_dims}D {ctx.task}.")
        from monai.networks.nets import BasicUNet

        net = BasicUNet(
            spatial_dims=2,
            in_channels=ctx.in_channels + max(ctx.num_classes - 1, 1),
            out_channels=ctx.num_classes,
            features=tuple(self.features),
        )
        return PadToMultiple(net)

    def fit(self, train: TaskData, val: TaskData, ctx: RunContext) -> TinyPromptUNet:
        """Derive jittered prompts from the train / val labels and train the network.

        Raises:
            ConfigError: the run is not 2D segmentation (3D slice-wise prompting is
                implemented for the evaluation-only methods only).
        """
        if ctx.task != "segmentation" or ctx.spatial_dims != 2:
            raise ConfigError(
                f"prompt_unet segments 2D images (a trained 2D network; 3D volumes are not supported); "
                f"this run is {ctx.spatial_dims}D {ctx.task}."
            )
        cfg = replace(self.prompt_config(), jitter=self.train_jitter)
        if train.labels is None or val.labels is None:
            raise ConfigError("prompt_unet: train and val must carry labels (their prompts come from them).")
        prompted = [
            with_prompt_channels(d, derive_prompts(d.labels, d.sample_ids, cfg, seed=ctx.seed + k), ctx.num_classes)
            for k, d in enumerate((train, val))
        ]
        super().fit(prompted[0], prompted[1], ctx)
        return self

    def predict_scores(self, data: TaskData, ctx: RunContext) -> np.ndarray:
        """``(N, C, H, W)`` probabilities from the images and ``data.prompts`` only."""
        self.check_fitted("predict_scores")
        inputs = with_prompt_channels(data.without_labels(), self.prompts_of(data), ctx.num_classes)
        return predict_proba(self.model_, inputs, batch_size=eval_batch_size(self.recipe_for(ctx)), amp=ctx.amp)

