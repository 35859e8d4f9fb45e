"""medfairx-foundation: fairness evaluation of promptable (foundation) segmenters.

docs/methods.md §7. Every method here is prompted from the ground truth (tag ``needs_prompts``):
the framework derives boxes / points from the ground truth in an audited step
(:func:`medfairx.data.prompts.attach_prompts`) and the method sees only those prompts and the
image, so its scores are an upper bound on interactive performance.

The evaluation-only methods (``box_ellipse``, ``box_threshold``, ``sam``, ``medsam``) also
run on 3D volumes, by slice-wise prompting along the first spatial axis (``D``): prompts are
derived for every slice with a non-empty ground-truth mask, the 2D segmenter segments each
prompted slice, and the slices are stacked back into the volume with every unprompted slice
predicted empty (:mod:`medfairx_foundation.segmenter`). Unprompted slices therefore cannot
contain false positives, so 3D scores are an upper bound twice over. ``prompt_unet`` stays
2D: it is a trained 2D network whose training loop takes whole images, and slice-wise
training would need its own slice sampling (not implemented).

Importing this module is cheap (no torch): the specs name lazy targets. The SAM and MedSAM
specs are always registered; when the optional ``segment-anything`` package or a
checkpoint is missing, ``MethodSpec.unavailable`` holds the reason (the planner skips them with it), and
``fit`` raises :class:`~medfairx_foundation.availability.MethodUnavailableError`.
"""

from __future__ import annotations

from medfairx import IntRange, MethodSpec, Register, hookimpl
from medfairx.data.prompts import PromptedMethodTags
from medfairx_foundation.availability import unavailable_reason

__all__ = [
    "BOX_ELLIPSE_SPEC",
    "BOX_THRESHOLD_SPEC",
    "MEDSAM_SPEC",
    "PROMPT_UNET_SPEC",
    "SAM_SPEC",
    "SPECS",
    "register_methods",
]

_SEG_2D = {"tasks": ("segmentation",), "spatial_dims": (2,)}
_SEG_2D_3D = {"tasks": ("segmentation",), "spatial_dims": (2, 3)}  # 3D: slice-wise prompting
EVAL_TAGS = PromptedMethodTags(evaluation_only=True, **_SEG_2D_3D)  # type: ignore[arg-type]
TRAINED_TAGS = PromptedMethodTags(**_SEG_2D)  # type: ignore[arg-type]
GT_NOTE = "Prompted from ground truth (upper bound)."
SLICE_NOTE = (
    "3D volumes: prompted slice by slice along D (slices with a non-empty ground-truth mask only); "
    "unprompted slices are predicted empty and cannot contain false positives (upper bound)."
)
SAM_PAPER = "Kirillov et al. Segment Anything. ICCV 2023"

BOX_ELLIPSE_SPEC = MethodSpec(
    name="box_ellipse",
    target="medfairx_foundation.classical:BoxEllipse",
    tags=EVAL_TAGS,
    summary=f"Weight-free lower bound: fills the ellipse inscribed in each prompt box. {GT_NOTE} {SLICE_NOTE}",
    reference="docs/methods.md §7; protocol of Li et al. MICCAI 2024 (arXiv 2406.12646).",
)

BOX_THRESHOLD_SPEC = MethodSpec(
    name="box_threshold",
    target="medfairx_foundation.classical:BoxThreshold",
    tags=EVAL_TAGS,
    summary=(
        "Weight-free classical promptable baseline: Otsu threshold inside the prompt box (polarity "
        f"from a ring around the box), largest (or point-containing) connected component, holes filled. {GT_NOTE} "
        f"{SLICE_NOTE}"
    ),
    reference="Otsu. A threshold selection method from gray-level histograms. IEEE TSMC 1979.",
)

PROMPT_UNET_SPEC = MethodSpec(
    name="prompt_unet",
    target="medfairx_foundation.prompt_unet:TinyPromptUNet",
    tags=TRAINED_TAGS,
    summary=(
        "monai BasicUNet with the rasterised prompt as an extra input channel, trained briefly on the "
        f"training split with jittered ground-truth prompts; 2D only. {GT_NOTE}"
    ),
    reference="docs/methods.md §7; protocol of Li et al. MICCAI 2024 (arXiv 2406.12646).",
    search_space={"train_jitter": IntRange(0, 4)},
)

SAM_SPEC = MethodSpec(
    name="sam",
    target="medfairx_foundation.sam:SAM",
    tags=EVAL_TAGS,
    summary=(
        "Segment Anything from a user-supplied checkpoint (checkpoint=PATH, model_type=vit_b|vit_l|vit_h|tiny); "
        f"SAM preprocessing (longest side, pixel mean/std, pad). {GT_NOTE} {SLICE_NOTE}"
    ),
    unavailable=unavailable_reason("sam"),
    reference=f"{SAM_PAPER}; evaluated as in Li et al. MICCAI 2024 (arXiv 2406.12646).",
)

MEDSAM_SPEC = MethodSpec(
    name="medsam",
    target="medfairx_foundation.sam:MedSAM",
    tags=EVAL_TAGS,
    unavailable=unavailable_reason("medsam"),
    summary=(
        "MedSAM (SAM vit_b fine-tuned on medical images) from a user-supplied checkpoint; box prompts, "
        f"MedSAM preprocessing (1024² resize, min-max to [0, 1]). {GT_NOTE} {SLICE_NOTE}"
    ),
    reference=f"Ma et al. Segment anything in medical images. Nat Commun 2024; {SAM_PAPER}.",
)

SPECS: tuple[MethodSpec, ...] = (BOX_ELLIPSE_SPEC, BOX_THRESHOLD_SPEC, PROMPT_UNET_SPEC, SAM_SPEC, MEDSAM_SPEC)


@hookimpl
def register_methods(register: Register) -> None:
    """Register the promptable-segmenter methods (lazy targets)."""
    for spec in SPECS:
        register(spec)
