"""medfairx-fairdi: FairDi (Fair Distillation, METHODS.md §3) as a medfairx plugin.

Importing this module is cheap: the spec names a lazy target, so torch is imported only
when the method is used. The method class reads its name, tags, summary and reference from
the spec below (one source of truth).
"""

from __future__ import annotations

from medfairx import MethodSpec, MethodTags, hookimpl
from medfairx.specs import Register

__all__ = ["FAIRDI_SPEC", "SPECS", "register_methods"]

FAIRDI_SPEC = MethodSpec(
    name="fairdi",
    target="medfairx_fairdi.method:FairDi",
    tags=MethodTags(
        uses_groups_in_fit=True,
        uses_groups_in_predict=False,
        tasks=("classification", "segmentation"),
        spatial_dims=(2, 3),
        multi_group=True,
    ),
    summary=(
        "Fair distillation: (0) backbone+head with FIS (c=0.5) and CutMix; (1) one teacher head per "
        "group on the frozen backbone (D_g only, FIS c=0); (2) a student head distilled from the teacher "
        "of each sample's group, L = lam*tau^2*KL + (1-lam)*w_FIS*l (lam=0.95, tau=1.5)."
    ),
    reference=(
        "FairDi: fair distillation for medical image analysis (seed 002; eqs. 1-3, Sec. 3.1-3.3, 4.1); "
        "Hinton et al. Distilling the Knowledge in a Neural Network. 2015."
    ),
)

SPECS: tuple[MethodSpec, ...] = (FAIRDI_SPEC,)


@hookimpl
def register_methods(register: Register) -> None:
    """Register FairDi (lazy target)."""
    for spec in SPECS:
        register(spec)
