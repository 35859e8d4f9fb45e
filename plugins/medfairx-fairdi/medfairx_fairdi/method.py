"""FairDi — Fair Distillation (docs/methods.md §3): FIS backbone, per-group teachers, one student.

Stages (each trained with the framework loop :func:`~medfairx.methods.train_model`):

0. **backbone** — the whole network with FIS (variant ``fairdi``, ``c = 0.5``) and CutMix;
   early stopping on validation worst-group AUC (patience 5).
1. **teachers** — for every group ``g`` present in training, a new random head on the frozen
   backbone (BatchNorm in eval mode), trained on ``D_g`` only with FIS ``c = 0`` (individual
   weights within the group's batch), SGD momentum 0.9, CutMix; early stopping on the group's
   own validation AUC.
2. **student** — a new random head on the frozen backbone with eq. (3)
   ``(1/n) Σ_i [λτ²·KL_i + (1−λ)·w_i·ℓ_i]``, the KL taken against the teacher of the
   sample's own group (base image's group under CutMix) and ``w`` the FIS weight
   (``c = 0.5``) of the student's losses; early stopping on validation worst-group AUC.

Prediction is ``head_s(f_θ*(x))`` — no attribute is needed.

Segmentation [INFERRED]: the heads are the network's final convolution, the KL is per pixel
averaged over pixels, FIS weights use the per-image losses, and every stage runs the
recipe's full length (no early stopping; the best validation checkpoint is kept).

History: stages 0 and 1 train on ``ctx.child()`` contexts as intermediate stages
(``deployed=False``) whose records (``stage`` = ``backbone`` / ``teacher:<group>``) are
appended to ``ctx.history``; the student is the deployed stage, so only its epochs are
observed for after-the-fact model selection.

Search space (``medfairx bench --trials``, on top of the recipe's ``lr`` / ``weight_decay``):
``tau`` uniform on [1, 4] around the paper's 1.5; ``lam`` uniform on [0.5, 0.99] around 0.95;
``c_student`` uniform on [0, 1] around 0.5.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from medfairx.errors import ConfigError
from medfairx.methods import (
    Batch,
    CutMix,
    FairIdentityScaler,
    Method,
    RunContext,
    TaskData,
    TrainRecipe,
    TrainResult,
    build_backbone,
    cpu_state,
    default_augment,
    fis_loss,
    group_count,
    layered_recipe,
    mixed_per_sample_loss,
    predict_proba,
    resolve_device,
    seed_everything,
    train_model,
)
from medfairx_fairdi import FAIRDI_SPEC
from medfairx_fairdi.distill import (
    KD_DIRECTIONS,
    distillation_kl,
    distillation_objective,
    select_by_group,
)
from medfairx_fairdi.heads import HeadOnFrozenBackbone, fresh_head, split_head

#: Head optimiser of Steps 1 and 2 (SGD momentum 0.9 [FD §4.1]; lr 1e-3 [INFERRED]).
HEAD_RECIPE: dict[str, Any] = {"optimizer": "sgd", "momentum": 0.9}


class FairDi(Method, spec=FAIRDI_SPEC):
    """Fair Distillation (three stages, see the module docstring).

    Args:
        lam: ``λ``, weight of the distillation term in eq. (3).
        tau: ``τ``, the teacher temperature.
        kd_direction: ``"paper"`` — ``KL(p_s ‖ p_t^τ)`` (eq. (3) literally) or ``"hinton"`` —
            ``KL(p_t^τ ‖ p_s^τ)``.
        c_backbone: FIS mixing coefficient of Step 0.
        c_teacher: FIS mixing coefficient of Step 1 (0: individual weights only, eq. (2)).
        c_student: FIS mixing coefficient of Step 2.
        patience: early-stopping patience of every stage (classification).
        head_lr: learning rate of the head stages (SGD, momentum 0.9).
        cutmix: use CutMix in every stage (only while ``recipe.augment`` is on, and only on images:
            under a frozen-feature protocol the inputs are vectors and no batch is mixed).
        cutmix_beta: ``β`` of CutMix's ``λ ~ Beta(β, β)``.
        cutmix_prob: probability of mixing a batch.
        fis_blur: blur of FIS's Sinkhorn divergence (``ε = blur²``).
        ot_backend: FIS's OT backend (``"sinkhorn"``, ``"pot"``, ``"wasserstein_1d"``).
        detach_weights: make FIS's individual weights constants for autograd.
        teacher_rescale: multiply the teachers' eq. (2) loss by the batch size, i.e. use
            ``Σ_i s^I_i·ℓ_i`` (a softmax-weighted mean) instead of the literal
            ``(1/n) Σ_i s^I_i·ℓ_i``. With ``c = 0`` the literal loss is ≈ ``mean ℓ / n``, so under
            SGD at the inferred lr 1e-3 and a short recipe a new head barely leaves its random
            initialisation (synthetic suite: teacher val AUC ≈ 0.51), and the student copies
            useless teachers (AUC 0.34). Default ``True`` with ``head_lr=1e-2`` [INFERRED: the
            paper reports neither]; ``teacher_rescale=False, head_lr=1e-3`` is the literal form.
        recipe: :class:`~medfairx.methods.TrainRecipe` overrides for every stage.
        head_recipe: further overrides for Steps 1 and 2 only (e.g. ``{"epochs": 10}``).

    Attributes:
        backbone_: the frozen ``f_θ*``.
        student_: the student head; ``model_`` = student head on the backbone.
        teachers_: ``{group code: teacher head}``.
        stage_results_: ``{stage name: TrainResult summary}``.
        selected_epoch_, epochs_trained_: of the student stage.
    """


    def __init__(
        self,
        lam: float = 0.95,
        tau: float = 1.5,
        kd_direction: str = "paper",
        c_backbone: float = 0.5,
        c_teacher: float = 0.0,
        c_student: float = 0.5,
        patience: int = 5,
        head_lr: float = 1e-2,
        cutmix: bool = True,
        cutmix_beta: float = 1.0,
        cutmix_prob: float = 0.5,
        fis_blur: float = 0.1,
        ot_backend: str = "sinkhorn",
        detach_weights: bool = False,
        teacher_rescale: bool = True,
        recipe: dict[str, Any] | None = None,
        head_recipe: dict[str, Any] | None = None,
    ) -> None:
        self.lam = lam
        self.tau = tau
        self.kd_direction = kd_direction
        self.c_backbone = c_backbone
        self.c_teacher = c_teacher
        self.c_student = c_student
        self.patience = patience
        self.head_lr = head_lr
        self.cutmix = cutmix
        self.cutmix_beta = cutmix_beta
        self.cutmix_prob = cutmix_prob
        self.fis_blur = fis_blur
        self.ot_backend = ot_backend
        self.detach_weights = detach_weights
        self.teacher_rescale = teacher_rescale
        self.recipe = recipe
        self.head_recipe = head_recipe

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        """Two short epochs per stage, every batch mixed, the cheap 1-D OT approximation."""
        return {
            "cutmix_prob": 1.0,
            "ot_backend": "wasserstein_1d",
            "recipe": {"epochs": 2, "max_steps_per_epoch": 3, "batch_size": 16},
        }

    # -- configuration -------------------------------------------------------------------

    def _recipe(self, ctx: RunContext, stage: str) -> TrainRecipe:
        """The recipe of ``stage`` (``backbone``, ``teacher`` or ``student``).

        ``ctx.recipe`` ⊕ stage defaults ⊕ ``recipe`` (backbone) or ``ctx.recipe`` ⊕ ``recipe``
        ⊕ head defaults ⊕ ``head_recipe`` (heads).
        """
        seg = ctx.task == "segmentation"
        patience = 0 if seg else self.patience
        criterion = "auc" if stage == "teacher" else "worst_group_auc"
        if stage == "backbone":
            layers = [{"criterion": criterion, "patience": patience}, self.recipe or {}]
        else:
            stage_defaults = {**HEAD_RECIPE, "lr": self.head_lr, "criterion": criterion, "patience": patience}
            layers = [self.recipe or {}, stage_defaults, self.head_recipe or {}]
        return layered_recipe(ctx.recipe, *layers, owner="FairDi")

    def _scaler(self, c: float, rescale: bool = False) -> FairIdentityScaler:
        return FairIdentityScaler(
            c=c, variant="fairdi", blur=self.fis_blur, ot_backend=self.ot_backend, detach_weights=self.detach_weights,
            rescale=rescale,
        )

    def _validate(self, train: TaskData, val: TaskData) -> None:
        if self.kd_direction not in KD_DIRECTIONS:
            raise ConfigError(f"FairDi: unknown kd_direction {self.kd_direction!r}; use one of {', '.join(KD_DIRECTIONS)}.")
        if not 0.0 <= self.lam <= 1.0 or not self.tau > 0:
            raise ConfigError(f"FairDi: need 0 <= lam <= 1 and tau > 0, got lam={self.lam}, tau={self.tau}.")
        if train.groups is None or val.groups is None:
            raise ConfigError(
                "FairDi needs group codes in train and val but they are missing; run it with a training "
                "grouping (it is tagged uses_groups_in_fit)."
            )
        if not np.any(np.asarray(train.groups) >= 0):
            raise ConfigError("FairDi: no training sample belongs to a group; check the training grouping.")

    def _augment_fn(self, ctx: RunContext, recipe: TrainRecipe) -> Any:
        # CutMix cuts boxes out of images: on frozen-encoder features (no spatial axes) it is off
        cutmix = self.cutmix_ if self.cutmix and len(ctx.image_size) else None

        def augment(batch: Batch) -> Batch:
            if not recipe.augment:
                return batch
            batch = default_augment(batch, spatial_dims=ctx.spatial_dims)
            return cutmix(batch) if cutmix is not None else batch

        return augment

    def _group_name(self, data: TaskData, g: int) -> str:
        return data.group_names[g] if g < len(data.group_names) else str(g)

    # -- stages --------------------------------------------------------------------------

    def _run_stage(
        self,
        model: nn.Module,
        train: TaskData,
        val: TaskData,
        ctx: RunContext,
        *,
        stage: str,
        recipe: TrainRecipe,
        loss_fn: Any,
        params: Any = None,
        forward: Any = None,
        record_in: RunContext | None = None,
    ) -> TrainResult:
        """Train one stage; a sub-stage (``record_in`` given) trains on a child context as an
        intermediate (not deployed) stage and its records are appended to ``record_in.history``."""
        run_ctx = ctx.child() if record_in is not None else ctx
        result = train_model(
            model, train, val, run_ctx, loss_fn=loss_fn, params=params, recipe=recipe,
            augment=self._augment_fn(ctx, recipe), forward=forward, name=self.name, stage=stage,
            deployed=record_in is None,
        )
        if record_in is not None:
            record_in.history.extend(run_ctx.history)
        self.stage_results_[stage] = {
            "selected_epoch": result.selected_epoch,
            "epochs_trained": result.epochs_trained,
            "best_value": result.best_value,
            "seconds": result.seconds,
        }
        return result

    def _fit_backbone(self, train: TaskData, val: TaskData, ctx: RunContext) -> nn.Module:
        """Step 0: the whole network with FIS (``c_backbone``) and CutMix."""
        model = build_backbone(
            ctx.backbone, in_channels=ctx.in_channels, num_classes=ctx.num_classes,
            spatial_dims=ctx.spatial_dims, task=ctx.task, **dict(ctx.backbone_kwargs),
        ).to(self.device_)
        scaler = self._scaler(self.c_backbone)

        def loss_fn(out: torch.Tensor, b: Batch) -> torch.Tensor:
            losses = mixed_per_sample_loss(out, b, ctx.task)
            return fis_loss(losses, scaler.weights(losses, b.g))

        self._run_stage(model, train, val, ctx, stage="backbone", recipe=self._recipe(ctx, "backbone"),
                        loss_fn=loss_fn, record_in=ctx)
        return model

    def _fit_teachers(self, train: TaskData, val: TaskData, ctx: RunContext, template: nn.Module) -> None:
        """Step 1: one new head per group on the frozen backbone, data ``D_g`` only."""
        tg, vg = np.asarray(train.groups), np.asarray(val.groups)
        recipe = self._recipe(ctx, "teacher")
        scaler = self._scaler(self.c_teacher, rescale=bool(self.teacher_rescale))

        def loss_fn(out: torch.Tensor, b: Batch) -> torch.Tensor:
            losses = mixed_per_sample_loss(out, b, ctx.task)
            return fis_loss(losses, scaler.weights(losses, b.g), rescale=scaler.rescale)

        self.teachers_ = nn.ModuleDict()
        for g in sorted(int(v) for v in np.unique(tg[tg >= 0])):
            name = self._group_name(train, g)
            rows = tg == g
            if int(rows.sum()) < 2:
                ctx.log(f"[{self.name}] group {name!r} has {int(rows.sum())} training sample(s); no teacher.")
                continue
            if np.any(vg == g):
                sub_val = val.subset(vg == g)
            else:
                ctx.log(f"[{self.name}] group {name!r} has no validation samples; its teacher is selected on all of val.")
                sub_val = val
            head = fresh_head(template).to(self.device_)
            self._run_stage(
                HeadOnFrozenBackbone(self.backbone_, head), train.subset(rows), sub_val, ctx,
                stage=f"teacher:{name}", recipe=recipe, loss_fn=loss_fn, params=head.parameters(), record_in=ctx,
            )
            head.requires_grad_(False)
            self.teachers_[str(g)] = head

    def _teacher_index(self, n_codes: int) -> torch.Tensor:
        """Map group codes ``0..n_codes-1`` to rows of the teacher stack (−1: no teacher)."""
        codes = sorted(int(k) for k in self.teachers_)
        index = torch.full((max(n_codes, max(codes, default=-1) + 1),), -1, dtype=torch.long)
        for row, g in enumerate(codes):
            index[g] = row
        return index

    def student_loss(
        self,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor,
        batch: Batch,
        task: str,
        *,
        scaler: FairIdentityScaler | None = None,
        teacher_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Eq. (3) on a batch: ``(1/n) Σ_i [λτ²·KL(s_i, t_{a_i}) + (1−λ)·w_i·ℓ_i]``.

        Args:
            student_logits: ``(n, C, ...)`` student logits.
            teacher_logits: ``(T, n, C, ...)`` logits of the ``T`` teachers on the batch.
            batch: the (possibly CutMix-ed) batch; ``batch.g`` holds the base images' groups.
            task: the task (for the per-sample loss).
            scaler: the FIS scaler (default: variant ``fairdi`` with ``c_student``).
            teacher_index: ``(K,)`` row of each group code's teacher in ``teacher_logits``
                (−1: none); default the identity (teacher ``g`` for group ``g``).

        Returns:
            A scalar; samples without a teacher contribute only their FIS-weighted loss.
        """
        scaler = scaler or self._scaler(self.c_student)
        losses = mixed_per_sample_loss(student_logits, batch, task)
        weights = scaler.weights(losses, batch.g)
        g = batch.g.long()
        if teacher_index is None:
            teacher_index = torch.arange(teacher_logits.shape[0], device=g.device)
        known = (g >= 0) & (g < teacher_index.numel())
        rows = torch.where(known, teacher_index.to(g.device)[g.clamp(0, teacher_index.numel() - 1)], torch.full_like(g, -1))
        selected, has_teacher = select_by_group(teacher_logits, rows)
        kl = distillation_kl(student_logits, selected, tau=float(self.tau), direction=self.kd_direction)
        return distillation_objective(kl, losses, weights, lam=float(self.lam), tau=float(self.tau), kl_mask=has_teacher)

    def _fit_student(self, train: TaskData, val: TaskData, ctx: RunContext, template: nn.Module) -> TrainResult:
        """Step 2: a new head with eq. (3), the teacher of each sample's own group."""
        scaler = self._scaler(self.c_student)
        teachers = [self.teachers_[k] for k in sorted(self.teachers_, key=int)]
        index = self._teacher_index(group_count(train)).to(self.device_)
        head = fresh_head(template).to(self.device_)
        self.student_ = head
        model = HeadOnFrozenBackbone(self.backbone_, head)

        def forward(m: nn.Module, b: Batch) -> tuple[torch.Tensor, torch.Tensor]:
            feats = m.features(b.x)
            with torch.no_grad():
                zt = torch.stack([t(feats) for t in teachers]).float()
            return m.head(feats), zt

        def loss_fn(out: tuple[torch.Tensor, torch.Tensor], b: Batch) -> torch.Tensor:
            return self.student_loss(out[0], out[1], b, ctx.task, scaler=scaler, teacher_index=index)

        result = self._run_stage(
            model, train, val, ctx, stage="student", recipe=self._recipe(ctx, "student"), loss_fn=loss_fn,
            params=head.parameters(), forward=forward,
        )
        self.model_ = model
        return result

    # -- Method API ----------------------------------------------------------------------

    def fit(self, train: TaskData, val: TaskData, ctx: RunContext) -> FairDi:
        """Run Steps 0-2; return ``self``.

        Raises:
            ConfigError: invalid options, missing group codes, or a backbone without a
                known head.
        """
        self._validate(train, val)
        seed_everything(ctx.seed)
        self.device_ = resolve_device(ctx.device)
        self.cutmix_ = CutMix(self.cutmix_beta, self.cutmix_prob, seed=ctx.seed)
        self.stage_results_: dict[str, dict[str, Any]] = {}
        network = self._fit_backbone(train, val, ctx)
        backbone, head = split_head(network, ctx.task)
        self.backbone_ = backbone.requires_grad_(False).eval()
        self._fit_teachers(train, val, ctx, head)
        if not len(self.teachers_):
            raise ConfigError("FairDi: no group has enough training samples (>= 2) for a teacher.")
        result = self._fit_student(train, val, ctx, head)
        self.selected_epoch_ = result.selected_epoch
        self.epochs_trained_ = result.epochs_trained
        self.fitted_ = True
        ctx.log(
            f"[{self.name}] stages: "
            + ", ".join(f"{k} (epoch {v['selected_epoch']}/{v['epochs_trained']}, {v['seconds']:.1f}s)"
                        for k, v in self.stage_results_.items())
        )
        return self

    def predict_scores(self, data: TaskData, ctx: RunContext) -> np.ndarray:
        """Student probabilities ``(N, C)`` or ``(N, C, *spatial)``; reads images only."""
        self.check_fitted("predict_scores")
        bs = max(2 * self._recipe(ctx, "student").batch_size, 1)
        return predict_proba(self.model_, data.without_labels().without_groups(), batch_size=bs, amp=ctx.amp)

    def state_dict(self) -> dict[str, Any]:
        """Backbone, student and teacher weights (CPU), hyper-parameters, stage summaries."""
        self.check_fitted("state_dict")

        return {
            "format": 1,
            "method": self.name,
            "params": copy.deepcopy(self.get_params()),
            "backbone": cpu_state(self.backbone_),
            "student": cpu_state(self.student_),
            "teachers": {k: cpu_state(v) for k, v in self.teachers_.items()},
            "stages": copy.deepcopy(self.stage_results_),
            "selected_epoch": self.selected_epoch_,
            "epochs_trained": self.epochs_trained_,
        }

    def load_state_dict(self, state: dict[str, Any], ctx: RunContext) -> FairDi:
        """Rebuild the network for ``ctx``, split it and restore every head.

        Raises:
            ConfigError: the weights do not fit ``ctx``'s backbone.
        """
        self.restore_params(state)
        self.device_ = resolve_device(ctx.device)
        network = build_backbone(
            ctx.backbone, in_channels=ctx.in_channels, num_classes=ctx.num_classes,
            spatial_dims=ctx.spatial_dims, task=ctx.task, **dict(ctx.backbone_kwargs),
        )
        backbone, head = split_head(network, ctx.task)
        with self.loading_weights(ctx):
            backbone.load_state_dict(state["backbone"])
            student = fresh_head(head)
            student.load_state_dict(state["student"])
            teachers = nn.ModuleDict()
            for k, sd in state.get("teachers", {}).items():
                t = fresh_head(head)
                t.load_state_dict(sd)
                teachers[str(k)] = t.requires_grad_(False)
        self.backbone_ = backbone.to(self.device_).requires_grad_(False).eval()
        self.student_ = student.to(self.device_)
        self.teachers_ = teachers.to(self.device_)
        self.model_ = HeadOnFrozenBackbone(self.backbone_, self.student_)
        self.stage_results_ = copy.deepcopy(state.get("stages", {}))
        self.selected_epoch_ = state.get("selected_epoch")
        self.epochs_trained_ = state.get("epochs_trained")
        self.fitted_ = True
        return self
