"""dMoE (docs/methods.md §6): a UNet with attribute-routed sparse experts, plain segmentation loss.

The network is :class:`~medfairx_fairdro.networks.DMoEUNet`, called as ``model(x, a)``: the
method overrides :meth:`TrainableMethod.forward` so that training, validation and
``predict_scores`` pass every sample's group code ``a`` (``batch.g``). The method owns its
architecture; the run's ``ctx.backbone`` only sets its size when ``channels`` is ``None``.

Routing fallback: samples whose group code is ``-1`` (outside every group of the grouping)
are routed by router 0 (see :mod:`medfairx_fairdro.moe`). The number of routers is the
training grouping's group count, or ``max_attr`` when given (the 3D code allocates 5).

Search space (``medfairx bench --trials``, on top of the recipe's ``lr`` / ``weight_decay``):
``top_k`` 1-4 of the 8 experts (2 in Oh et al.); ``expert_dropout`` uniform on [0, 0.3] (0.1).
The ``moe`` ablation searches the same space.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from medfairx.errors import ConfigError
from medfairx.methods import Batch, RunContext, TaskData, TrainableMethod, group_count
from medfairx_fairdro import DMOE_SPEC
from medfairx_fairdro.networks import DMoEUNet, channels_for_backbone


class DMoE(TrainableMethod, spec=DMOE_SPEC):
    """Distribution-aware mixture of experts with the ``0.5·CE + 0.5·Dice`` loss.

    Args:
        n_experts: experts per MoE layer ``E`` (shared across attribute values).
        top_k: experts per token ``k``.
        expert_width: expert hidden-size factor (hidden size ``expert_width·d``).
        expert_dropout: dropout at the end of every expert.
        router_noise_eval: also add router noise at inference, as the official code does
            (medfairx's default adds it only in training).
        max_attr: routers per MoE layer; ``None`` = the training grouping's group count.
        channels: encoder channels of the dMoE-UNet (one MoE per stage); ``None`` sizes it
            like the run's backbone (``tiny_unet`` → ``(8, 16, 32)``, otherwise
            ``(16, 32, 64, 128, 256)``; see :func:`~medfairx_fairdro.networks.channels_for_backbone`).
        recipe: optional :class:`~medfairx.methods.TrainRecipe` overrides.

    Attributes:
        n_routers_: routers per MoE layer of the fitted network.
        channels_: encoder channels of the fitted network.
    """


    #: ``True``: one router per attribute value (dMoE); ``False``: a single router (MoE).
    attribute_routing: bool = True

    def __init__(
        self,
        n_experts: int = 8,
        top_k: int = 2,
        expert_width: int = 4,
        expert_dropout: float = 0.1,
        router_noise_eval: bool = False,
        max_attr: int | None = None,
        channels: Sequence[int] | None = None,
        recipe: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(recipe=recipe)
        self.n_experts = n_experts
        self.top_k = top_k
        self.expert_width = expert_width
        self.expert_dropout = expert_dropout
        self.router_noise_eval = router_noise_eval
        self.max_attr = max_attr
        self.channels = channels

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        """A three-stage ``(8, 16, 32)`` network and two short epochs."""
        return {"channels": (8, 16, 32), "recipe": {"epochs": 2, "max_steps_per_epoch": 3, "batch_size": 16}}

    # -- routing ---------------------------------------------------------------------------

    def _label(self) -> str:
        return self.name or type(self).__name__

    def count_routers(self, train: TaskData) -> int:
        """Routers per MoE layer: 1 without attribute routing, else ``max_attr`` or the
        training grouping's group count.

        Raises:
            ConfigError: no group codes, or ``max_attr`` smaller than the group count.
        """
        if not self.attribute_routing:
            return 1
        if train.groups is None:
            raise ConfigError(
                f"{self._label()} routes every sample by its group but train.groups is None; run it "
                "with a training grouping (it is tagged uses_groups_in_fit)."
            )
        needed = group_count(train, minimum=1)
        if self.max_attr is None:
            return needed
        if int(self.max_attr) < needed:
            raise ConfigError(
                f"{self._label()}: max_attr={self.max_attr} routers cannot serve the grouping's {needed} groups; "
                "raise max_attr or leave it None."
            )
        return int(self.max_attr)

    def route(self, groups: torch.Tensor | None) -> torch.Tensor | None:
        """The attribute codes handed to the network (``None`` without attribute routing).

        Raises:
            ConfigError: attribute routing without group codes.
        """
        if not self.attribute_routing:
            return None
        if groups is None:
            raise self.missing_groups_error()
        return groups

    def missing_groups_error(self) -> ConfigError:
        """The error raised when an attribute-routed method gets no group codes."""
        return ConfigError(
            f"{self._label()} needs every sample's group code (attribute-aware inference) but got none; "
            "it is tagged uses_groups_in_predict and must get data.groups."
        )

    # -- TrainableMethod hooks -------------------------------------------------------------

    def network_channels(self, ctx: RunContext) -> tuple[int, ...]:
        """``channels``, or the size class of ``ctx.backbone`` when it is ``None``."""
        if self.channels is None:
            return channels_for_backbone(ctx.backbone, ctx.backbone_kwargs)
        return tuple(int(c) for c in self.channels)

    def build_model(self, ctx: RunContext) -> nn.Module:
        """The dMoE-UNet for ``ctx`` (segmentation only, 2D or 3D)."""
        if ctx.task != "segmentation":
            raise ConfigError(f"{self._label()} is a segmentation method; got task {ctx.task!r}.")
        return DMoEUNet(
            in_channels=ctx.in_channels,
            num_classes=ctx.num_classes,
            spatial_dims=ctx.spatial_dims,
            channels=getattr(self, "channels_", None) or self.network_channels(ctx),
            n_routers=getattr(self, "n_routers_", 1),
            n_experts=self.n_experts,
            top_k=self.top_k,
            expert_width=self.expert_width,
            expert_dropout=self.expert_dropout,
            router_noise_eval=self.router_noise_eval,
        )

    def forward(self, model: nn.Module, batch: Batch, ctx: RunContext) -> Any:
        """``model(x, a)``: logits with every sample routed by its group code."""
        return model(batch.x, self.route(batch.g))

    def on_fit_start(self, train: TaskData, val: TaskData, ctx: RunContext) -> None:
        """Log the architecture."""
        ctx.log(
            f"[{self._label()}] dMoE-UNet channels={list(self.channels_)} routers={self.n_routers_} "
            f"experts={self.n_experts} top_k={self.top_k} (own architecture, sized for backbone {ctx.backbone!r})"
        )

    def extra_state(self) -> dict[str, Any]:
        """Router count and encoder channels (needed to rebuild the network)."""
        return {"n_routers": self.n_routers_, "channels": list(self.channels_)}

    # -- Method API ------------------------------------------------------------------------

    def fit(self, train: TaskData, val: TaskData, ctx: RunContext) -> DMoE:
        """Size the routers and the network, then train (see TrainableMethod.fit)."""
        self.n_routers_ = self.count_routers(train)
        self.channels_ = self.network_channels(ctx)
        super().fit(train, val, ctx)
        return self

    def predict_scores(self, data: TaskData, ctx: RunContext) -> np.ndarray:
        """Softmax probabilities ``(N, C, *spatial)``, routed by ``data.groups``.

        Raises:
            NotFittedError: before ``fit``.
            ConfigError: attribute routing and ``data.groups is None``.
        """
        self.check_fitted("predict_scores")
        if self.attribute_routing and data.groups is None:
            raise self.missing_groups_error()
        return super().predict_scores(data if self.attribute_routing else data.without_groups(), ctx)

    def load_state_dict(self, state: dict[str, Any], ctx: RunContext) -> DMoE:
        """Rebuild the network with the saved router count and channels and restore it."""
        extra = state.get("extra", {})
        self.n_routers_ = int(extra.get("n_routers", 1))
        self.channels_ = tuple(int(c) for c in extra.get("channels", ())) or self.network_channels(ctx)
        super().load_state_dict(state, ctx)
        return self
