"""medfairx-fairdro: dMoE, its single-router MoE ablation and FairDRO (docs/methods.md §6).

* ``dmoe``: a UNet with an attribute-routed sparse mixture of experts after every encoder
  stage (one noisy top-k router per attribute value, shared experts), trained with the plain
  segmentation loss ``0.5·CE + 0.5·Dice``. Needs the attribute at inference.
* ``moe``: the same network with a single router (``vmoe`` in the official code); it never
  reads the groups.
* ``fairdro``: dMoE trained with FairDRO's subgroup-conditioned aggregation (per-group exact
  discrete CVaR_α of the per-image losses, equal weights over the groups of the batch) on
  group-stratified batches (at least 4 samples per present group).

Importing this module is cheap: the specs name lazy targets, so torch and monai are imported
only when a method is used.
"""

from __future__ import annotations

from medfairx import ClaimComparison, ClaimSpec, IntRange, MethodSpec, MethodTags, Register, Uniform, hookimpl

__all__ = ["DMOE_SPEC", "FAIRDRO_CLAIM", "FAIRDRO_SPEC", "MOE_SPEC", "SPECS", "register_claims", "register_methods"]

_SEG = ("segmentation",)
_DIMS = (2, 3)
_DMOE_REF = (
    "Oh et al. Distribution-aware Fairness Learning in Medical Image Segmentation From A "
    "Control-Theoretic Perspective (dMoE). ICML 2025, arXiv 2502.00619 (official code "
    "vit_seg_modeling.py, dmoeunet.py)."
)

DMOE_SPEC = MethodSpec(
    name="dmoe",
    target="medfairx_fairdro.dmoe:DMoE",
    tags=MethodTags(uses_groups_in_fit=True, uses_groups_in_predict=True, tasks=_SEG, spatial_dims=_DIMS),
    summary=(
        "Distribution-aware mixture of experts: UNet with a SparseMoE (E=8 shared experts, top-2, "
        "one noisy router per attribute value) after every encoder stage; loss 0.5*CE + 0.5*Dice. "
        "Attribute-aware inference."
    ),
    reference=_DMOE_REF,
    search_space={"top_k": IntRange(1, 4), "expert_dropout": Uniform(0.0, 0.3)},
)

MOE_SPEC = MethodSpec(
    name="moe",
    target="medfairx_fairdro.vmoe:MoE",
    tags=MethodTags(tasks=_SEG, spatial_dims=_DIMS),
    summary=(
        "Ablation of dMoE with a single router (the code's 'vmoe'): the same MoE-UNet, routing "
        "independent of the attribute; loss 0.5*CE + 0.5*Dice. Group-unaware."
    ),
    reference=_DMOE_REF,
    search_space={"top_k": IntRange(1, 4), "expert_dropout": Uniform(0.0, 0.3)},
)

FAIRDRO_SPEC = MethodSpec(
    name="fairdro",
    target="medfairx_fairdro.fairdro:FairDRO",
    tags=MethodTags(uses_groups_in_fit=True, uses_groups_in_predict=True, tasks=_SEG, spatial_dims=_DIMS),
    summary=(
        "FairDRO / DuetFair: dMoE + subgroup-conditioned DRO. Per group R_g = (1-w)*mean + "
        "w*CVaR_alpha of per-image losses (alpha=0.25, w=1), equal weights over present groups "
        "(option GroupDRO weights; option KL tail), group-stratified batches (>= 4 per group). "
        "Attribute-aware inference."
    ),
    reference=(
        "Tian et al. DuetFair: Coupling Inter- and Intra-Subgroup Robustness for Fair Medical Image "
        "Segmentation. arXiv 2605.10521, 2026 (abstract only; the DRO aggregation is [INFERRED], "
        "docs/methods.md §6) on dMoE (Oh et al., ICML 2025). Not Jung et al.'s classwise FairDRO (ICLR 2023)."
    ),
    search_space={"alpha": Uniform(0.1, 0.5), "omega": Uniform(0.0, 1.0), "top_k": IntRange(1, 4)},
)

SPECS: tuple[MethodSpec, ...] = (FAIRDRO_SPEC, DMOE_SPEC, MOE_SPEC)


@hookimpl
def register_methods(register: Register) -> None:
    """Register fairdro, dmoe and moe (lazy targets)."""
    for spec in SPECS:
        register(spec)


FAIRDRO_CLAIM = ClaimSpec(
    name="fairdro",
    method="fairdro",
    title="FairDRO (DuetFair)",
    text=(
        "Worst-group Dice and worst-group tail Dice (the mean Dice of a group's worst 10% of cases) go up "
        "over ERM and over dMoE: the attribute-routed experts add inter-subgroup robustness, the per-group "
        "tail risk intra-subgroup robustness on top (dMoE is the same network without it)."
    ),
    comparisons=tuple(
        ClaimComparison(metric, "summary", baseline, "up", label=label)
        for baseline in ("erm", "dmoe")
        for metric, label in (("worst_group_dice", "worst-group Dice"), ("worst_group_tail_dice", "worst-group tail Dice"))
    ),
)
"""The paper's claim (its abstract: worst-group and tail robustness), checked where FairDRO, ERM and dMoE ran."""


@hookimpl
def register_claims(register: Register) -> None:
    """Register the paper's claim about FairDRO."""
    register(FAIRDRO_CLAIM)
