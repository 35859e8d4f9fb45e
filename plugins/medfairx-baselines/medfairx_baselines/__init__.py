"""medfairx-baselines: the standard bias-mitigation baselines as a stand-alone medfairx plugin distribution.

Importing this module is cheap: the specs name lazy targets, so torch is imported only when
a method is used. Each method class reads its name, tags, summary and reference from the
spec below (one source of truth).
"""

from __future__ import annotations

from medfairx import Choice, IntRange, LogUniform, MethodSpec, MethodTags, Register, Uniform, hookimpl

__all__ = ["ERM_SPEC", "GROUPDRO_SPEC", "SPECS", "register_methods"]

_BOTH_TASKS = ("classification", "segmentation")

ERM_SPEC = MethodSpec(
    name="erm",
    target="medfairx_baselines.erm:ERM",
    tags=MethodTags(tasks=_BOTH_TASKS, spatial_dims=(2, 3)),
    summary="Empirical risk minimisation: mean per-sample task loss on the pooled training data.",
    reference="Vapnik 1992; the ERM baseline of FairDi (Step 0) and MEDFAIR (Zong et al., ICLR 2023).",
)

GROUPDRO_SPEC = MethodSpec(
    name="groupdro",
    target="medfairx_baselines.groupdro:GroupDRO",
    tags=MethodTags(uses_groups_in_fit=True, tasks=_BOTH_TASKS, spatial_dims=(2, 3)),
    summary=(
        "Group distributionally robust optimisation: online exponentiated-gradient weights q "
        "over groups, loss = sum_g q_g * L_g (eta=0.01, optional C/sqrt(N_g) adjustment)."
    ),
    reference=(
        "Sagawa, Koh, Hashimoto, Liang. Distributionally Robust Neural Networks for Group "
        "Shifts. ICLR 2020 (Algorithm 1; code loss.py LossComputer)."
    ),
    search_space={"eta": LogUniform(1e-3, 1e-1), "c": Uniform(0.0, 4.0)},
)

SPECS: tuple[MethodSpec, ...] = (ERM_SPEC, GROUPDRO_SPEC)


@hookimpl
def register_methods(register: Register) -> None:
    """Register every baseline (lazy targets)."""
    for spec in SPECS:
        register(spec)


# --- the remaining baselines (lazy targets; one module per method) ----------------------

RESAMPLING_SPEC = MethodSpec(
    name="resampling",
    target="medfairx_baselines.resampling:Resampling",
    tags=MethodTags(uses_groups_in_fit=True, tasks=_BOTH_TASKS, spatial_dims=(2, 3)),
    summary=(
        "Group-balanced resampling: ERM on epochs of N_train draws with replacement, sample "
        "weight 1/N_k for stratum k = group (default), group x label, or class."
    ),
    reference=(
        "MEDFAIR (Zong et al., ICLR 2023) WeightedRandomSampler; Idrissi et al. Simple data "
        "balancing achieves competitive worst-group-accuracy. CLeaR 2022."
    ),
    search_space={"resample_which": Choice(("group", "balanced"))},
    # a segmentation label map has no class per sample to balance on
    task_search_space={"segmentation": {"resample_which": None}},
)

SWAD_SPEC = MethodSpec(
    name="swad",
    target="medfairx_baselines.swad:SWAD",
    tags=MethodTags(uses_groups_in_fit=True, tasks=_BOTH_TASKS, spatial_dims=(2, 3)),
    summary=(
        "ERM with dense weight averaging over a validation loss valley (LossValley N_s=3, "
        "N_e=6, r=0.3; v = 1 - worst-group val AUC or val loss), then BatchNorm recalibration."
    ),
    reference=(
        "Cha et al. SWAD: Domain Generalization by Seeking Flat Minima. NeurIPS 2021; MEDFAIR "
        "models/SWAD (per-epoch worst-group-AUC variant)."
    ),
    search_space={"n_converge": IntRange(1, 5), "n_tolerance": IntRange(3, 10), "tolerance_ratio": Uniform(0.1, 0.5)},
)

ADV_SPEC = MethodSpec(
    name="adv",
    target="medfairx_baselines.adv:ADV",
    tags=MethodTags(uses_groups_in_fit=True, tasks=_BOTH_TASKS, spatial_dims=(2, 3)),
    summary=(
        "Adversarial fair representations: gradient-reversal adversary MLP(d-128-K) predicts the "
        "group from encoder features (segmentation: pooled UNet bottleneck of tiny_unet / "
        "basic_unet), lambda ramp 2/(1+exp(-10p))-1."
    ),
    reference=(
        "Ganin et al. Domain-Adversarial Training of Neural Networks. JMLR 2016; Madras et al. "
        "Learning Adversarially Fair and Transferable Representations (LAFTR). ICML 2018."
    ),
    search_space={"adv_weight": LogUniform(0.1, 10.0), "lambda_max": Uniform(0.1, 1.0)},
)

CUTMIX_SPEC = MethodSpec(
    name="cutmix",
    target="medfairx_baselines.cutmix:CutMixERM",
    tags=MethodTags(tasks=_BOTH_TASKS, spatial_dims=(2, 3), inputs=("images",)),  # mixes pixels
    summary=(
        "ERM with CutMix (beta=1, p=0.5): paste a random box of a partner image, loss "
        "lam'*l(y_i) + (1-lam')*l(y_pi(i)); segmentation pastes the mask too."
    ),
    reference=(
        "Yun et al. CutMix: Regularization Strategy to Train Strong Classifiers with Localizable "
        "Features. ICCV 2019."
    ),
    search_space={"beta": LogUniform(0.25, 4.0), "prob": Uniform(0.1, 1.0)},
)

STRATIFIED_SPEC = MethodSpec(
    name="stratified",
    target="medfairx_baselines.stratified:Stratified",
    tags=MethodTags(
        uses_groups_in_fit=True, uses_groups_in_predict=True, tasks=_BOTH_TASKS, spatial_dims=(2, 3)
    ),
    summary=(
        "Divide-and-conquer: one ERM model per group, each sample scored by its TRUE group's "
        "model (attribute-aware inference). Flag: the overall AUC pools differently calibrated models."
    ),
    reference="QP-Net (divide-and-conquer baseline, eqs. 6-7); MEDFAIR DomainInd is a related variant.",
)

FIS_SPEC = MethodSpec(
    name="fis",
    target="medfairx_baselines.fis:FIS",
    tags=MethodTags(uses_groups_in_fit=True, tasks=_BOTH_TASKS, spatial_dims=(2, 3)),
    summary=(
        "Fair Identity Scaling: loss weights (1-c)*softmax(l/T) + c*softmax(o_g/T), o_g = debiased "
        "Sinkhorn divergence between group and pooled loss samples (c=0.5, blur=0.1, m=64)."
    ),
    reference=(
        "Luo et al. FairVision: Equitable Deep Learning for Eye Disease Screening via Fair "
        "Identity Scaling. 2024 (code src/modules.py Fair_Loss_Scaler); FairDi eq. (1)."
    ),
    search_space={"c": Uniform(0.0, 1.0), "temperature": LogUniform(0.25, 4.0), "blur": LogUniform(0.01, 1.0)},
)

FEBS_SPEC = MethodSpec(
    name="febs",
    target="medfairx_baselines.febs:FEBS",
    tags=MethodTags(uses_groups_in_fit=True, tasks=("segmentation",), spatial_dims=(2, 3)),
    summary=(
        "Fair Error-Bound Scaling: 0.5*CE + 0.5*Dice with probabilities scaled by "
        "w_g = tanh(min E / E_g) from each group's batch Dice error (min over groups present)."
    ),
    reference=(
        "Tian et al. FairSeg: A Large-Scale Medical Image Segmentation Dataset for Fairness "
        "Learning Using Segment Anything Model with Fair Error-Bound Scaling. ICLR 2024."
    ),
    search_space={"gamma": Uniform(0.5, 2.0), "ce_weight": Uniform(0.25, 0.75)},
)

KNN_SPEC = MethodSpec(
    name="knn",
    target="medfairx_baselines.knn:KNNProbe",
    tags=MethodTags(inputs=("features",)),
    summary=(
        "k-nearest-neighbour probe on frozen-encoder features (k=20, cosine distance, majority vote; "
        "scores are neighbour class shares)."
    ),
    reference=(
        "Wu et al. Unsupervised Feature Learning via Non-Parametric Instance Discrimination. CVPR 2018; "
        "the kNN protocol of Caron et al. (DINO), ICCV 2021."
    ),
    search_space={"k": IntRange(5, 50, 5), "metric": Choice(("cosine", "euclidean"))},
)

SPECS = (*SPECS, RESAMPLING_SPEC, SWAD_SPEC, ADV_SPEC, CUTMIX_SPEC, STRATIFIED_SPEC, FIS_SPEC, FEBS_SPEC, KNN_SPEC)
__all__ += [
    "ADV_SPEC", "CUTMIX_SPEC", "FEBS_SPEC", "FIS_SPEC", "RESAMPLING_SPEC", "STRATIFIED_SPEC", "SWAD_SPEC",
]
