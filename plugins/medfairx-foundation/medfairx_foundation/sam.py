"""SAM and MedSAM adapters: a user-supplied checkpoint through ``segment_anything.modeling``.

Route (why no ``SamPredictor``): ``segment-anything`` 1.0 declares no dependency, and its
model classes (``segment_anything.modeling``: ``Sam``, ``ImageEncoderViT``,
``PromptEncoder``, ``MaskDecoder``, ``TwoWayTransformer``) need only torch. The package's
``__init__`` however imports ``SamPredictor`` and the automatic mask generator, which import
torchvision, and torchvision would force another torch build. The adapter therefore builds
the model from ``segment_anything.modeling`` (through the normal import when torchvision is
installed, else without running the package ``__init__``) with the hyper-parameters of
``segment_anything.build_sam``, loads the checkpoint's state dict strictly, and does the
preprocessing itself:

* **SAM** (``SamPredictor.set_image`` / ``predict``): RGB ``uint8``; longest side resized to
  the encoder size (``ResizeLongestSide``: bilinear with antialiasing, rounded to
  ``uint8``); ``Sam.preprocess`` (pixel mean/std, zero pad to a square); prompts scaled by
  the resize factors; ``Sam.postprocess_masks`` back to the original size; probability =
  ``sigmoid(logit)`` (SAM's mask threshold 0 ↔ 0.5). ``multimask="auto"`` asks for three
  masks and keeps the one with the best predicted IoU when the prompt is a single point
  (SAM's advice for ambiguous prompts), one mask otherwise.
* **MedSAM** (``MedSAM_Inference.py``): image resized to the encoder's square size, 1024²
  (bicubic, antialiased), min-max
  scaled to ``[0, 1]`` and fed to the encoder without mean/std; box scaled likewise;
  single-mask output; ``sigmoid`` of the 256² low-resolution logits upsampled bilinearly to
  the original size. MedSAM was trained with boxes only, so it accepts box prompts only.

Grey images are repeated to three channels; float images are min-max scaled to 0–255 per
image. 3D volumes are segmented slice by slice
(:func:`medfairx_foundation.segmenter.segment_volume`): every prompted slice is encoded as
its own image (a float slice min-max scaled on its own), unprompted slices are predicted
empty. Nothing is downloaded: the checkpoint is ``checkpoint=PATH`` or the environment
variable of :mod:`medfairx_foundation.availability`.
"""

from __future__ import annotations

import importlib
import importlib.util
import pickle
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medfairx.data.prompts import Prompt
from medfairx.errors import ConfigError
from medfairx.methods import RunContext, resolve_device
from medfairx_foundation import MEDSAM_SPEC, SAM_SPEC
from medfairx_foundation.availability import (
    SAM_PACKAGE,
    MethodUnavailableError,
    package_missing_reason,
    require_available,
)
from medfairx_foundation.segmenter import (
    PromptableSegmenter,
    PromptedSegmentationMethod,
)

MULTIMASK_CHOICES: tuple[str, ...] = ("auto", "always", "never")


@dataclass(frozen=True)
class SamConfig:
    """Architecture of a SAM model (``segment_anything.build_sam._build_sam``'s constants).

    ``tiny`` is not a released model: it is a small random-weight architecture for tests
    and smoke runs of the adapter (no checkpoint of it exists anywhere but where a test
    writes one).
    """

    encoder_embed_dim: int
    encoder_depth: int
    encoder_num_heads: int
    encoder_global_attn_indexes: tuple[int, ...]
    image_size: int = 1024
    patch_size: int = 16
    window_size: int = 14
    prompt_embed_dim: int = 256
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    decoder_num_heads: int = 8
    mask_in_chans: int = 16
    iou_head_hidden_dim: int = 256
    pixel_mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    pixel_std: tuple[float, float, float] = (58.395, 57.12, 57.375)


SAM_CONFIGS: dict[str, SamConfig] = {
    "vit_b": SamConfig(768, 12, 12, (2, 5, 8, 11)),
    "vit_l": SamConfig(1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": SamConfig(1280, 32, 16, (7, 15, 23, 31)),
    "tiny": SamConfig(
        32, 2, 2, (1,), image_size=64, patch_size=8, window_size=4, prompt_embed_dim=32,
        decoder_mlp_dim=64, decoder_num_heads=2, mask_in_chans=4, iou_head_hidden_dim=32,
    ),
}


def import_sam_modeling() -> ModuleType:
    """``segment_anything.modeling``, importable without torchvision.

    With torchvision installed this is a plain import. Without it, the package ``__init__``
    (which imports the torchvision-based predictor) is bypassed: a bare package module is
    placed in ``sys.modules`` only while ``modeling`` is imported, then removed again.

    Raises:
        MethodUnavailableError: ``segment-anything`` is not installed.
    """
    missing = package_missing_reason()
    if missing:
        raise MethodUnavailableError(f"SAM adapters are unavailable: {missing}.")
    name = f"{SAM_PACKAGE}.modeling"
    if name in sys.modules:
        return sys.modules[name]
    if importlib.util.find_spec("torchvision") is not None:
        return importlib.import_module(name)
    spec = importlib.util.find_spec(SAM_PACKAGE)
    assert spec is not None
    bare = importlib.util.module_from_spec(spec)  # __path__ set, __init__ not executed
    sys.modules[SAM_PACKAGE] = bare
    try:
        return importlib.import_module(name)
    finally:
        if sys.modules.get(SAM_PACKAGE) is bare:
            del sys.modules[SAM_PACKAGE]


def sam_config(model_type: str) -> SamConfig:
    """The architecture of ``model_type``.

    Raises:
        ConfigError: unknown model type.
    """
    if model_type not in SAM_CONFIGS:
        raise ConfigError(f"Unknown SAM model_type {model_type!r}; use one of {', '.join(SAM_CONFIGS)}.")
    return SAM_CONFIGS[model_type]


def build_sam_model(config: SamConfig) -> nn.Module:
    """A randomly initialised ``segment_anything.modeling.Sam`` of ``config`` (eval mode)."""
    m = import_sam_modeling()
    ped = config.prompt_embed_dim
    grid = config.image_size // config.patch_size
    model = m.Sam(
        image_encoder=m.ImageEncoderViT(
            depth=config.encoder_depth,
            embed_dim=config.encoder_embed_dim,
            img_size=config.image_size,
            mlp_ratio=4,
            norm_layer=partial(nn.LayerNorm, eps=1e-6),
            num_heads=config.encoder_num_heads,
            patch_size=config.patch_size,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=tuple(config.encoder_global_attn_indexes),
            window_size=config.window_size,
            out_chans=ped,
        ),
        prompt_encoder=m.PromptEncoder(
            embed_dim=ped,
            image_embedding_size=(grid, grid),
            input_image_size=(config.image_size, config.image_size),
            mask_in_chans=config.mask_in_chans,
        ),
        mask_decoder=m.MaskDecoder(
            num_multimask_outputs=3,
            transformer=m.TwoWayTransformer(
                depth=config.decoder_depth,
                embedding_dim=ped,
                mlp_dim=config.decoder_mlp_dim,
                num_heads=config.decoder_num_heads,
            ),
            transformer_dim=ped,
            iou_head_depth=3,
            iou_head_hidden_dim=config.iou_head_hidden_dim,
        ),
        pixel_mean=list(config.pixel_mean),
        pixel_std=list(config.pixel_std),
    )
    return model.eval()


def load_sam_checkpoint(path: str | Path, model_type: str, device: torch.device | str = "cpu") -> nn.Module:
    """Build ``model_type`` and load the state dict saved at ``path`` (strict).

    Accepts a bare state dict (the official SAM / MedSAM files) or one wrapped under
    ``"model"`` or ``"state_dict"``. Loaded with ``weights_only=True``.

    Raises:
        ConfigError: unreadable file or weights that do not fit ``model_type``.
    """
    model = build_sam_model(sam_config(model_type))
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        raise ConfigError(f"Cannot read SAM checkpoint {str(path)!r}: {str(exc).splitlines()[0]}") from None
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise ConfigError(
            f"Checkpoint {str(path)!r} does not fit SAM model_type {model_type!r} "
            f"({str(exc).splitlines()[0]}); pass the model_type the checkpoint was trained with."
        ) from None
    return model.to(device)


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """``(3, H, W)`` uint8 of a ``(C, H, W)`` image: grey repeated; float min-max scaled."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        x = img.astype(np.float64)
        lo, hi = float(x.min()), float(x.max())
        img = np.round((x - lo) / max(hi - lo, 1e-12) * 255.0).astype(np.uint8)
    if img.shape[0] == 1:
        img = np.repeat(img, 3, axis=0)
    if img.shape[0] != 3:
        raise ConfigError(f"SAM takes grey or RGB images; got {img.shape[0]} channels.")
    return img


def preprocess_shape(h: int, w: int, long_side: int) -> tuple[int, int]:
    """``ResizeLongestSide.get_preprocess_shape``: the longest side becomes ``long_side``."""
    scale = long_side / max(h, w)
    return int(h * scale + 0.5), int(w * scale + 0.5)


@dataclass
class _Embedding:
    features: torch.Tensor
    input_size: tuple[int, int]
    original_size: tuple[int, int]


class SamSegmenter:
    """A loaded SAM-family model as a :class:`~medfairx_foundation.segmenter.PromptableSegmenter`.

    Args:
        model: a ``segment_anything.modeling.Sam``.
        variant: ``"sam"`` or ``"medsam"`` (preprocessing and prompt rules, see module doc).
        multimask: ``"auto"``, ``"always"`` (best of three by predicted IoU) or ``"never"``.
    """

    def __init__(self, model: nn.Module, variant: str = "sam", multimask: str = "auto") -> None:
        if variant not in ("sam", "medsam"):
            raise ConfigError(f"SamSegmenter variant {variant!r}; use 'sam' or 'medsam'.")
        if multimask not in MULTIMASK_CHOICES:
            raise ConfigError(f"multimask {multimask!r}; use one of {', '.join(MULTIMASK_CHOICES)}.")
        self.model = model.eval()
        self.variant = variant
        self.multimask = multimask

    @property
    def device(self) -> torch.device:
        """Where the model lives."""
        return next(self.model.parameters()).device

    @torch.inference_mode()
    def embed(self, image: np.ndarray) -> _Embedding:
        """Encode one ``(C, H, W)`` image."""
        rgb = torch.from_numpy(to_rgb_uint8(image)).to(self.device, torch.float32)[None]
        h, w = rgb.shape[-2:]
        size = int(self.model.image_encoder.img_size)
        if self.variant == "medsam":
            x = F.interpolate(rgb, (size, size), mode="bicubic", align_corners=False, antialias=True)
            x = (x - x.min()) / (x.max() - x.min()).clamp_min(1e-8)
            return _Embedding(self.model.image_encoder(x), (size, size), (h, w))
        nh, nw = preprocess_shape(h, w, size)
        x = F.interpolate(rgb, (nh, nw), mode="bilinear", align_corners=False, antialias=True).round().clamp(0, 255)
        return _Embedding(self.model.image_encoder(self.model.preprocess(x)), (nh, nw), (h, w))

    def _scale(self, emb: _Embedding) -> tuple[float, float]:
        (ih, iw), (h, w) = emb.input_size, emb.original_size
        return iw / w, ih / h

    @torch.inference_mode()
    def predict_embedded(self, emb: _Embedding, prompt: Prompt) -> np.ndarray:
        """``(H, W)`` foreground probabilities of ``prompt`` on an encoded image."""
        sx, sy = self._scale(emb)
        dev = self.device
        if self.variant == "medsam" and (prompt.box is None or prompt.points):
            raise ConfigError("MedSAM was trained with box prompts only; use prompt='box'.")
        boxes = points = None
        if prompt.box is not None:
            x0, y0, x1, y1 = prompt.box
            boxes = torch.tensor([[x0 * sx, y0 * sy, x1 * sx, y1 * sy]], dtype=torch.float32, device=dev)
        if prompt.points:
            coords = torch.tensor([[[x * sx, y * sy] for x, y in prompt.points]], dtype=torch.float32, device=dev)
            labels = torch.tensor([list(prompt.point_labels)], dtype=torch.int64, device=dev)
            points = (coords, labels)
        single_point = prompt.box is None and len(prompt.points) == 1
        multimask = self.multimask == "always" or (self.multimask == "auto" and single_point)
        if self.variant == "medsam":
            multimask = False
        sparse, dense = self.model.prompt_encoder(points=points, boxes=boxes, masks=None)
        low_res, iou = self.model.mask_decoder(
            image_embeddings=emb.features,
            image_pe=self.model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
        )
        best = int(torch.argmax(iou[0])) if multimask else 0
        low_res = low_res[:, best : best + 1]
        if self.variant == "medsam":
            prob = F.interpolate(torch.sigmoid(low_res), emb.original_size, mode="bilinear", align_corners=False)
        else:
            prob = torch.sigmoid(self.model.postprocess_masks(low_res, emb.input_size, emb.original_size))
        return prob[0, 0].float().cpu().numpy()

    def predict(self, image: np.ndarray, prompt: Prompt) -> np.ndarray:
        """``(H, W)`` foreground probabilities of one prompt."""
        return self.predict_embedded(self.embed(image), prompt)

    def predict_many(self, image: np.ndarray, prompts: list[Prompt]) -> np.ndarray:
        """``(K, H, W)`` probabilities of several prompts; the image is encoded once."""
        emb = self.embed(image)
        return np.stack([self.predict_embedded(emb, p) for p in prompts])


class SAM(PromptedSegmentationMethod, spec=SAM_SPEC):
    """Segment Anything from a local checkpoint, evaluated with ground-truth prompts.

    Args:
        checkpoint: path of the checkpoint (state dict); default: the environment variable
            ``MEDFAIRX_SAM_CHECKPOINT`` (``MEDFAIRX_MEDSAM_CHECKPOINT`` for MedSAM).
        model_type: ``vit_b``, ``vit_l``, ``vit_h`` or ``tiny`` (tests).
        prompt: prompt mode (see :class:`PromptedSegmentationMethod`).
        jitter: prompt jitter in pixels.
        n_points: points per object for ``prompt="points"``.
        multimask: ``"auto"``, ``"always"`` or ``"never"`` (see :class:`SamSegmenter`).
    """

    variant = "sam"

    def __init__(
        self,
        checkpoint: str | None = None,
        model_type: str = "vit_b",
        prompt: str = "box",
        jitter: int = 0,
        n_points: int = 1,
        multimask: str = "auto",
    ) -> None:
        super().__init__(prompt=prompt, jitter=jitter, n_points=n_points)
        self.checkpoint = checkpoint
        self.model_type = model_type
        self.multimask = multimask

    def build_segmenter(self, ctx: RunContext) -> PromptableSegmenter:
        """Load the checkpoint onto ``ctx.device``.

        Raises:
            MethodUnavailableError: no ``segment-anything`` or no checkpoint file.
            ConfigError: the checkpoint does not fit ``model_type``.
        """
        path = require_available(self.variant, self.checkpoint)
        self.checkpoint_path_ = str(path)
        model = load_sam_checkpoint(path, self.model_type, resolve_device(ctx.device))
        return SamSegmenter(model, variant=self.variant, multimask=self.multimask)

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        """The tiny architecture (a checkpoint must still be supplied)."""
        return {"model_type": "tiny"}


class MedSAM(SAM, spec=MEDSAM_SPEC):
    """MedSAM (SAM ViT-B fine-tuned on medical images) from a local checkpoint; box prompts.

    Args: as :class:`SAM`; ``prompt`` must be ``"box"``.
    """

    variant = "medsam"

    def __init__(
        self,
        checkpoint: str | None = None,
        model_type: str = "vit_b",
        prompt: str = "box",
        jitter: int = 0,
        n_points: int = 1,
        multimask: str = "never",
    ) -> None:
        super().__init__(
            checkpoint=checkpoint, model_type=model_type, prompt=prompt, jitter=jitter, n_points=n_points,
            multimask=multimask,
        )

    def build_segmenter(self, ctx: RunContext) -> PromptableSegmenter:
        """As :meth:`SAM.build_segmenter`, after checking that prompts are boxes."""
        if self.prompt != "box":
            raise ConfigError(f"medsam was trained with box prompts only; got prompt={self.prompt!r}. Use prompt='box'.")
        return super().build_segmenter(ctx)
