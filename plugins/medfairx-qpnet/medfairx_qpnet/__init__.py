"""medfairx-qpnet: QP-Net (Quasi-Pareto improvement, docs/methods.md §4) as a medfairx plugin.

Importing this module is cheap: the spec names a lazy target, so torch is imported only
when the method is used. The method class reads its name, tags, summary and reference from
the spec below (one source of truth).
"""

from __future__ import annotations

from medfairx import ClaimComparison, ClaimSpec, LogUniform, MethodSpec, MethodTags, Register, Uniform, hookimpl

__all__ = ["QPNET_CLAIM", "QPNET_SPEC", "SPECS", "register_claims", "register_methods"]

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
        "Yao et al. Enhancing the fairness of AI prediction models by Quasi-Pareto improvement among "
        "heterogeneous thyroid nodule population. Nat. Commun. 15:1958, 2024 (eqs. 11-20, code "
        "scripts/model.py, QuasiPareto_loss.py); Ganin et al. JMLR 2016 (GRL); Chen et al. NeurIPS 2019 (BSS)."
    ),
    search_space={
        "gamma_d": Uniform(0.05, 0.5),
        "gamma_mmd": Uniform(0.2, 1.6),
        "gamma_bss": Uniform(0.1, 1.0),
        "lr": LogUniform(1e-5, 1e-3),
        "weight_decay": LogUniform(3e-3, 1e-1),
    },
)

SPECS: tuple[MethodSpec, ...] = (QPNET_SPEC,)


@hookimpl
def register_methods(register: Register) -> None:
    """Register QP-Net (lazy target)."""
    for spec in SPECS:
        register(spec)


QPNET_CLAIM = ClaimSpec(
    name="qpnet",
    method="qpnet",
    title="QP-Net",
    text="Minority-group AUC goes up over ERM without the dominant (largest) group's AUC going down.",
    comparisons=(
        ClaimComparison("auc", "group", "erm", "up", "minority", "minority-group AUC"),
        ClaimComparison("auc", "group", "erm", "not_down", "dominant", "dominant-group AUC"),
    ),
)
"""The paper's claim, checked on every leaderboard that has QP-Net and ERM."""


@hookimpl
def register_claims(register: Register) -> None:
    """Register the paper's claim about QP-Net."""
    register(QPNET_CLAIM)
