"""MoE (docs/methods.md §6, baseline "MoE" = ``vmoe`` in the official code): dMoE with one router.

The same dMoE-UNet, but every sample is routed by the single router (as if all ``a = 0``),
so the method never reads group codes (``uses_groups_in_fit`` and ``uses_groups_in_predict``
are False). Loss ``0.5·CE + 0.5·Dice``.
"""

from __future__ import annotations

from medfairx_fairdro import MOE_SPEC
from medfairx_fairdro.dmoe import DMoE


class MoE(DMoE, spec=MOE_SPEC):
    """Single-router sparse mixture of experts (the attribute-free ablation of dMoE).

    Takes the same hyper-parameters as :class:`~medfairx_fairdro.dmoe.DMoE`; ``max_attr``
    is ignored (there is one router).
    """


    attribute_routing = False
