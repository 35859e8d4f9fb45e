"""medfairx-fairdi: FairDi (Fair Distillation, docs/methods.md §3) as a medfairx plugin.

Importing this module is cheap: the spec names a lazy target, so torch is imported only
when the method is used. The method class reads its name, tags, summary and reference from
the spec below (one source of truth).
"""

from __future__ import annotations

from medfairx import ClaimComparison, ClaimSpec, MethodSpec, MethodTags, Register, Uniform, hookimpl

__all__ = ["FAIRDI_CLAIM", "FAIRDI_SPEC", "SPECS", "register_claims", "register_methods"]

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
        "Masroor et al. Fair Distillation: Teaching Fairness from Biased Teachers in Medical Imaging. "
        "arXiv 2411.11939, 2024 (eqs. 1-3, Sec. 3.1-3.3, 4.1); "
        "Hinton et al. Distilling the Knowledge in a Neural Network. 2015."
    ),
    search_space={"tau": Uniform(1.0, 4.0), "lam": Uniform(0.5, 0.99), "c_student": Uniform(0.0, 1.0)},
)

SPECS: tuple[MethodSpec, ...] = (FAIRDI_SPEC,)


@hookimpl
def register_methods(register: Register) -> None:
    """Register FairDi (lazy target)."""
    for spec in SPECS:
        register(spec)


FAIRDI_CLAIM = ClaimSpec(
    name="fairdi",
    method="fairdi",
    title="FairDi",
    text="Higher overall AUC and higher worst-group AUC, with a smaller AUC gap, than FIS and ERM.",
    comparisons=tuple(
        c
        for base in ("fis", "erm")
        for c in (
            ClaimComparison("auc", "overall", base, "up", label="overall AUC"),
            ClaimComparison("worst_group_auc", "summary", base, "up", label="worst-group AUC"),
            ClaimComparison("auc_gap", "summary", base, "down", label="AUC gap (max − min group)"),
        )
    ),
)
"""The paper's claim, checked on every leaderboard that has FairDi, FIS and ERM."""


@hookimpl
def register_claims(register: Register) -> None:
    """Register the paper's claim about FairDi."""
    register(FAIRDI_CLAIM)
