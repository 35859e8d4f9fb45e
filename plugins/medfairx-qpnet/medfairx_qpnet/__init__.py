"""medfairx-qpnet: QP-Net (Quasi-Pareto improvement, METHODS.md §4) as a medfairx plugin.

Importing this module is cheap: the spec names a lazy target, so torch is imported only
when the method is used. The method class reads its name, tags, summary and reference from
the spec below (one source of truth).
"""

from __future__ import annotations

from medfairx import MethodSpec, MethodTags, hookimpl
from medfairx.specs import Register

__all__ = ["QPNET_SPEC", "SPECS", "register_methods"]

QPNET_SPEC = MethodSpec(
    name="qpnet",
    target="medfairx_qpnet.method:QPNet",
    tags=MethodTags(
        uses_groups_in_fit=True,
        uses_groups_in_predict=False,
        tasks=("classification",),
        spatial_dims=(2, 3),
        multi_group=True,
    ),
    summary=(
        "Quasi-Pareto improvement: (A) Mixed ERM model; (B) transfer to F_z(+Linear->100), F_y MLP and a "
        "GRL domain head, L = d*L_domi + (1-d)*L_less + 0.2*L_d + 0.8*MMD + 0.5*BSS with adaptive "
        "d = 1/(1+exp((A_domi-A_mix)/0.05)) from validation AUC; batches half less-prevalent."
    ),
    reference=(
        "QP-Net: Quasi-Pareto improvement for fairness in medical imaging (seed 004; eqs. 11-20, code "
        "scripts/model.py, QuasiPareto_loss.py); Ganin et al. JMLR 2016 (GRL); Chen et al. NeurIPS 2019 (BSS)."
    ),
)

SPECS: tuple[MethodSpec, ...] = (QPNET_SPEC,)


@hookimpl
def register_methods(register: Register) -> None:
    """Register QP-Net (lazy target)."""
    for spec in SPECS:
        register(spec)
