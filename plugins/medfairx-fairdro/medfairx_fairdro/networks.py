"""dMoE-UNet: a residual UNet of monai blocks with an attribute-routed SparseMoE after every
encoder stage (docs/methods.md §6, "Network"), for 2D and 3D.

Architecture (``L = len(channels)`` stages, ``c_i = channels[i]``):

* encoder stage 0: ``ResidualUnit(C_in → c_0, stride 1)``; stage ``i > 0``:
  ``ResidualUnit(c_{i−1} → c_i, stride 2)``;
* after every encoder stage ``i``: ``h ← h + MoE_i(h; a)``, a separate :class:`SparseMoE`
  with ``d = c_i`` over the stage's voxel (pixel) tokens;
* decoder level ``i`` (from ``L−2`` down to 0): transposed ``Convolution(c_{i+1} → c_i,
  stride 2)``, concatenation with the encoder skip, ``ResidualUnit(2c_i → c_i)``;
* a ``1×1`` convolution to ``num_classes`` logits.

Inputs whose size is not a multiple of ``2^{L−1}`` are zero-padded and the logits cropped.

Deviations from the official code (documented, [INFERRED] where the source is silent):

* **2D.** The official 2D dMoE is TransUNet (ViT-B/16) with one shared SparseMoE after every
  transformer block over patch tokens. A ViT-B/16 is too heavy for CPU runs, so medfairx uses
  the 3D placement (a separate MoE after each encoder stage, pixel tokens) on a 2D CNN UNet.
* **Residual.** The MoE is added residually (``h + MoE(h)``) as in the 2D code; for 3D the
  spec only says "after each encoder stage".
* **Sizes.** :func:`channels_for_backbone` sizes the network like the run's backbone, so a
  comparison with ERM on the same suite compares like with like: ``tiny_unet`` (CPU smoke
  suites) → ``(8, 16, 32)``; ``unet`` and anything else → monai ``UNet``'s
  ``(16, 32, 64, 128, 256)`` (five encoder stages, as in the 3D code). Normalisation is
  batch norm (instance norm cannot train on the 1-voxel bottleneck of tiny volumes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from medfairx.errors import ConfigError
from medfairx_fairdro.moe import SparseMoE

#: Default encoder channels (monai ``UNet``'s defaults; five stages as in the 3D code).
DEFAULT_CHANNELS: tuple[int, ...] = (16, 32, 64, 128, 256)


def channels_for_backbone(backbone: str, backbone_kwargs: Mapping[str, Any] | None = None) -> tuple[int, ...]:
    """Encoder channels matching the size class of a run's segmentation backbone.

    * ``tiny_unet``: ``(w, 2w, 4w)`` with its ``width`` (default 8), the CPU smoke size;
    * ``unet``: its ``channels`` (default :data:`DEFAULT_CHANNELS`);
    * anything else: :data:`DEFAULT_CHANNELS`.
    """
    kw = dict(backbone_kwargs or {})
    if backbone == "tiny_unet":
        w = int(kw.get("width", 8))
        return (w, 2 * w, 4 * w)
    if backbone == "unet" and "channels" in kw:
        return tuple(int(c) for c in kw["channels"])
    return DEFAULT_CHANNELS


class DMoEUNet(nn.Module):
    """A residual UNet with an attribute-routed SparseMoE after each encoder stage.

    ``forward(x, attr)`` returns ``(N, num_classes, *spatial)`` logits; ``attr`` is an
    ``(N,)`` tensor of attribute codes (negative codes and ``attr=None`` use router 0).

    Args:
        in_channels: image channels.
        num_classes: output classes (background included).
        spatial_dims: 2 or 3.
        channels: encoder channels per stage (at least 2 stages).
        n_routers: routers per MoE (attribute values; 1 = single-router ablation).
        n_experts: experts per MoE ``E``.
        top_k: experts per token ``k``.
        expert_width: expert hidden-size factor (``4`` → ``4d``).
        expert_dropout: dropout at the end of every expert.
        router_noise_eval: add router noise in eval mode too (the official code's behaviour).
        num_res_units: convolution sub-units per residual unit.
        norm: monai normalisation name for the convolution blocks.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        spatial_dims: int = 2,
        channels: Sequence[int] = DEFAULT_CHANNELS,
        n_routers: int = 1,
        n_experts: int = 8,
        top_k: int = 2,
        expert_width: int = 4,
        expert_dropout: float = 0.1,
        router_noise_eval: bool = False,
        num_res_units: int = 2,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        from monai.networks.blocks import Convolution, ResidualUnit

        chans = tuple(int(c) for c in channels)
        if spatial_dims not in (2, 3):
            raise ConfigError(f"DMoEUNet: spatial_dims must be 2 or 3, got {spatial_dims!r}.")
        if len(chans) < 2 or min(chans) < 1:
            raise ConfigError(f"DMoEUNet: channels needs at least two positive entries, got {list(channels)}.")
        if in_channels < 1 or num_classes < 2:
            raise ConfigError(
                f"DMoEUNet needs in_channels >= 1 and num_classes >= 2; got {in_channels}, {num_classes}."
            )
        self.spatial_dims = spatial_dims
        self.channels = chans
        self.n_routers = int(n_routers)
        units = max(int(num_res_units), 1)
        self.encoders = nn.ModuleList(
            ResidualUnit(
                spatial_dims, in_channels if i == 0 else chans[i - 1], c,
                strides=1 if i == 0 else 2, subunits=units, norm=norm,
            )
            for i, c in enumerate(chans)
        )
        self.moes = nn.ModuleList(
            SparseMoE(
                c, n_routers=n_routers, n_experts=n_experts, top_k=top_k, width=expert_width,
                dropout=expert_dropout, noise_eval=router_noise_eval,
            )
            for c in chans
        )
        levels = range(len(chans) - 2, -1, -1)
        self.ups = nn.ModuleList(
            Convolution(spatial_dims, chans[i + 1], chans[i], strides=2, kernel_size=3, is_transposed=True, norm=norm)
            for i in levels
        )
        self.decoders = nn.ModuleList(
            ResidualUnit(spatial_dims, 2 * chans[i], chans[i], strides=1, subunits=units, norm=norm) for i in levels
        )
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        self.head = conv(chans[0], num_classes, kernel_size=1)

    @property
    def multiple(self) -> int:
        """Input sizes are padded to a multiple of this (``2^{L−1}``)."""
        return 2 ** (len(self.channels) - 1)

    def forward(self, x: torch.Tensor, attr: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(N, num_classes, *spatial)`` of images routed by their attribute codes."""
        spatial = x.shape[2:]
        pad: list[int] = []
        for s in reversed(spatial):
            pad += [0, (-s) % self.multiple]
        if any(pad):
            x = nn.functional.pad(x, pad)
        skips: list[torch.Tensor] = []
        h = x
        for enc, moe in zip(self.encoders, self.moes, strict=False):
            h = enc(h)
            h = h + moe.forward_map(h, attr)
            skips.append(h)
        h = skips.pop()
        for up, dec in zip(self.ups, self.decoders, strict=False):
            h = dec(torch.cat([up(h), skips.pop()], dim=1))
        logits = self.head(h)
        if any(pad):
            logits = logits[(slice(None), slice(None), *(slice(0, s) for s in spatial))]
        return logits
