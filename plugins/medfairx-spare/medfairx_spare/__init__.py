"""medfairx-spare: SPARE (Subgroup Performance Aware Re-weighting, docs/methods.md §5) as a plugin.

Importing this module is cheap: the spec names a lazy target, so torch is imported only
when the method is used. The method class reads its name, tags, summary and reference from
the spec below (one source of truth).
"""

from __future__ import annotations

from medfairx import Choice, ClaimComparison, ClaimSpec, LogUniform, MethodSpec, MethodTags, Register, Uniform, hookimpl

__all__ = ["SPARE_CLAIM", "SPARE_SPEC", "SPECS", "register_claims", "register_methods"]

SPARE_SPEC = MethodSpec(
    name="spare",
    target="medfairx_spare.method:Spare",
    tags=MethodTags(
        uses_groups_in_fit=True,
        uses_groups_in_predict=True,
        tasks=("classification",),
        spatial_dims=(2, 3),
        multi_group=True,
    ),
    summary=(
        "One model per group t trained on ALL data with fixed weights w = exp(-(alpha*d_u + (1-alpha)*d_s)) "
        "from minimal perturbations (utility: flip f_t^ref; similarity: make the group predictor say t); "
        "alpha=0.5, beta=100; inference routes each sample to its true group's model."
    ),
    reference=(
        "Xu et al. SPARE: Subgroup Performance Aware Re-weighting. Medical Image Analysis 109:103950, 2026 "
        "(Algorithm 1, Sec. 4.3, 5.1-5.2)."
    ),
    search_space={"alpha": Uniform(0.0, 1.0), "beta": LogUniform(10.0, 1000.0), "sharing": Choice(("none", "mini", "half", "full"))},
    # a frozen protocol's linear head has no layers that 'half' could split
    backbone_search_space={"linear": {"sharing": Choice(("none", "mini", "full"))}},
)

SPECS: tuple[MethodSpec, ...] = (SPARE_SPEC,)


@hookimpl
def register_methods(register: Register) -> None:
    """Register SPARE (lazy target)."""
    for spec in SPECS:
        register(spec)


SPARE_CLAIM = ClaimSpec(
    name="spare",
    method="spare",
    title="SPARE",
    text="Every group's F1 goes up over ERM.",
    comparisons=(ClaimComparison("f1", "group", "erm", "up", "every", "F1"),),
)
"""The paper's claim, checked on every leaderboard that has SPARE and ERM."""


@hookimpl
def register_claims(register: Register) -> None:
    """Register the paper's claim about SPARE."""
    register(SPARE_CLAIM)
