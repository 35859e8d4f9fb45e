"""SPARE — Subgroup Performance Aware Re-weighting (docs/methods.md §5).

For every target group ``t`` (each trained with the framework loop
:func:`~medfairx.methods.train_model`):

* **stage 0** — ``f_t^ref``, a diagnosis model trained on ``D_t`` only (selected on the
  group's validation AUC), and once for all groups ``f_g``, a ``K``-way group predictor
  trained on all of D (selected on validation macro AUC of the group labels);
* **stage 1** — fixed weights ``w = exp(−(α·δ^u + (1−α)·δ^s))`` from minimal perturbations
  (:mod:`medfairx_spare.weights`); the §5.2.2 sanity check (share of in-group weights
  above 0.8) is logged;
* **stage 2** — ``f_t*`` trained on all of D with loss ``(1/n) Σ_i w_i·ℓ_i`` (option
  ``loss_norm="weights"``: ``Σ wℓ / Σ w``), selected on the group's own validation AUC.

Partial sharing (``sharing`` ≠ ``none``, :mod:`medfairx_spare.sharing`) trains one
:class:`~medfairx_spare.sharing.BranchedNet` on the sum of all groups' weighted losses; its
checkpoint is chosen on the worst-group validation AUC of the branch-averaged logits
[INFERRED: the training loop validates ``model(x)`` without group codes].

Inference routes each sample to ``f_{a(x)}*`` by its true group (``route="true"``) or by
``f_g``'s prediction (``route="predicted"``); samples outside every group (code −1) are
routed by ``f_g`` [INFERRED].

History: every stage trains on a ``ctx.child()`` and its records (``stage`` =
``reference:<g>``, ``group_predictor``, ``group_model:<g>`` or ``group_models``) are appended
to ``ctx.history``; the routed ensemble has no single epoch, so ``epochs_are_checkpoints`` is
False and no epoch is observed for after-the-fact model selection.

Search space (``medfairx bench --trials``, on top of the recipe's ``lr`` / ``weight_decay``):
``alpha`` uniform on [0, 1] (0.5); ``beta`` log-uniform on [10, 1000] (100); the sharing depth
``sharing`` in none, mini, half, full.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

from medfairx.errors import ConfigError
from medfairx.methods import (
    Batch,
    Method,
    RunContext,
    TaskData,
    TrainRecipe,
    TrainResult,
    build_backbone,
    cpu_state,
    group_count,
    layered_recipe,
    per_sample_loss,
    predict_proba,
    resolve_device,
    seed_everything,
    train_model,
)
from medfairx_spare import SPARE_SPEC
from medfairx_spare.perturbation import PERTURB_METHODS
from medfairx_spare.sharing import (
    SHARING_MODES,
    BranchedNet,
    BranchView,
    build_branched,
)
from medfairx_spare.weights import IN_GROUP_THRESHOLD, SpareWeights, spare_weights

LOSS_NORMS: tuple[str, ...] = ("mean", "weights")
ROUTES: tuple[str, ...] = ("true", "predicted")


def weighted_loss(losses: torch.Tensor, weights: torch.Tensor, norm: str = "mean") -> torch.Tensor:
    """SPARE's stage-2 loss: ``(1/n) Σ wℓ`` (``"mean"``) or ``Σ wℓ / Σ w`` (``"weights"``)."""
    total = (weights.to(torch.float32) * losses.to(torch.float32)).sum()
    if norm == "weights":
        return total / weights.to(torch.float32).sum().clamp_min(1e-12)
    return total / losses.numel()


class Spare(Method, spec=SPARE_SPEC):
    """SPARE (see the module docstring).

    Args:
        alpha: ``α`` of Eq. (2) (0: similarity only; 1: utility only).
        beta: ``β``, margin weight of the minimal-perturbation objective.
        perturb: ``"adam"`` (Adam on ``r``) or ``"deepfool"``.
        perturb_lr: Adam learning rate on ``r``.
        perturb_steps: maximum Adam steps.
        deepfool_overshoot: DeepFool overshoot.
        deepfool_iters: maximum DeepFool iterations.
        perturb_batch_size: samples per perturbation search batch.
        delta_scale: divide ``δ`` by its median over D before ``exp(−δ)``.
        loss_norm: ``"mean"`` — ``(1/n) Σ wℓ``; ``"weights"`` — ``Σ wℓ / Σ w``.
        sharing: ``"none"`` (separate models), ``"mini"``, ``"half"`` or ``"full"``.
        route: ``"true"`` (true group) or ``"predicted"`` (``f_g``) at inference.
        recipe: :class:`~medfairx.methods.TrainRecipe` overrides for every stage.

    Attributes:
        group_models_: ``{group code: network}`` used at inference.
        group_predictor_: ``f_g``.
        weights_: ``{group code: SpareWeights}`` (stage 1).
        weight_stats_: ``{group code: sanity statistics}``.
        selected_epochs_: ``{stage: selected epoch}``.
    """

    epochs_are_checkpoints = False  # the routed ensemble has no single epoch

    def __init__(
        self,
        alpha: float = 0.5,
        beta: float = 100.0,
        perturb: str = "adam",
        perturb_lr: float = 0.01,
        perturb_steps: int = 100,
        deepfool_overshoot: float = 0.02,
        deepfool_iters: int = 50,
        perturb_batch_size: int = 128,
        delta_scale: bool = False,
        loss_norm: str = "mean",
        sharing: str = "none",
        route: str = "true",
        recipe: dict[str, Any] | None = None,
    ) -> None:
        self.alpha = alpha
        self.beta = beta
        self.perturb = perturb
        self.perturb_lr = perturb_lr
        self.perturb_steps = perturb_steps
        self.deepfool_overshoot = deepfool_overshoot
        self.deepfool_iters = deepfool_iters
        self.perturb_batch_size = perturb_batch_size
        self.delta_scale = delta_scale
        self.loss_norm = loss_norm
        self.sharing = sharing
        self.route = route
        self.recipe = recipe

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        """Two short epochs per model, 5 perturbation steps."""
        return {"perturb_steps": 5, "recipe": {"epochs": 2, "max_steps_per_epoch": 3, "batch_size": 16}}

    # -- configuration -------------------------------------------------------------------

    def _validate(self, train: TaskData, val: TaskData, ctx: RunContext) -> None:
        checks = (
            (self.perturb, PERTURB_METHODS, "perturb"),
            (self.loss_norm, LOSS_NORMS, "loss_norm"),
            (self.sharing, SHARING_MODES, "sharing"),
            (self.route, ROUTES, "route"),
        )
        for value, allowed, what in checks:
            if value not in allowed:
                raise ConfigError(f"SPARE: unknown {what} {value!r}; use one of {', '.join(allowed)}.")
        if ctx.task != "classification":
            raise ConfigError(f"SPARE is a classification method; the task is {ctx.task!r}.")
        if train.groups is None or val.groups is None:
            raise ConfigError(
                "SPARE needs group codes in train and val but they are missing; run it with a training "
                "grouping (it is tagged uses_groups_in_fit)."
            )

    def _recipe(self, ctx: RunContext, criterion: str) -> TrainRecipe:
        return layered_recipe(ctx.recipe, {"criterion": criterion}, self.recipe, owner="SPARE")

    def _solver(self) -> dict[str, Any]:
        if self.perturb == "deepfool":
            return {"method": "deepfool", "overshoot": self.deepfool_overshoot, "max_iter": self.deepfool_iters}
        return {"method": "adam", "beta": self.beta, "lr": self.perturb_lr, "steps": self.perturb_steps}

    def _network(self, ctx: RunContext, num_classes: int | None = None) -> nn.Module:
        return build_backbone(
            ctx.backbone, in_channels=ctx.in_channels, num_classes=num_classes or ctx.num_classes,
            spatial_dims=ctx.spatial_dims, task="classification", **dict(ctx.backbone_kwargs),
        ).to(self.device_)

    def _name(self, g: int) -> str:
        return self.group_names_[g] if g < len(self.group_names_) else str(g)

    def _train(self, model: nn.Module, train: TaskData, val: TaskData, ctx: RunContext, *, stage: str,
               criterion: str, num_classes: int | None = None, **kw: Any) -> TrainResult:
        """Train one stage on a child context; its records are appended to ``ctx.history``."""
        child = ctx.child(num_classes=num_classes or ctx.num_classes)
        result = train_model(model, train, val, child, recipe=self._recipe(ctx, criterion), name=self.name,
                             stage=stage, deployed=False, **kw)
        ctx.history.extend(child.history)
        self.selected_epochs_[stage] = result.selected_epoch
        return result

    def _group_val(self, val: TaskData, g: int, ctx: RunContext) -> TaskData:
        vg = np.asarray(val.groups)
        if np.any(vg == g):
            return val.subset(vg == g)
        ctx.log(f"[{self.name}] group {self._name(g)!r} has no validation samples; selecting on all of val.")
        return val

    # -- stages --------------------------------------------------------------------------

    def _fit_group_predictor(self, train: TaskData, val: TaskData, ctx: RunContext) -> nn.Module:
        """Stage 0: ``f_g``, a ``K``-way group classifier on all of D (codes ≥ 0)."""
        tg, vg = np.asarray(train.groups), np.asarray(val.groups)
        g_train = replace(train.subset(tg >= 0), groups=None)
        g_train = replace(g_train, labels=np.asarray(train.groups)[tg >= 0].astype(np.int64))
        g_val = val.subset(vg >= 0) if np.any(vg >= 0) else val
        g_val = replace(g_val, labels=np.clip(np.asarray(g_val.groups), 0, None).astype(np.int64), groups=None)
        model = self._network(ctx, self.n_groups_)
        self._train(model, g_train, g_val, ctx, stage="group_predictor", criterion="auc", num_classes=self.n_groups_)
        return model

    def _stage1(self, train: TaskData, ctx: RunContext, references: dict[int, nn.Module]) -> None:
        """Stage 1: fixed weights of every target group, and the §5.2.2 sanity log."""
        bs = max(int(self.perturb_batch_size), 1)
        pred_g = predict_proba(self.group_predictor_, train.without_labels(), batch_size=bs, amp=False).argmax(1)
        self.weights_: dict[int, SpareWeights] = {}
        self.weight_stats_: dict[int, dict[str, float]] = {}
        for t, ref in references.items():
            sw = spare_weights(
                ref, self.group_predictor_, train.images, t, alpha=self.alpha, delta_scale=self.delta_scale,
                predicted_groups=pred_g, batch_size=bs, **self._solver(),
            )
            self.weights_[t] = sw
            stats = sw.sanity(np.asarray(train.groups))
            self.weight_stats_[t] = stats
            verdict = "ok" if stats["in_group_share_above"] > 0.5 else "CHECK input scale / delta_scale"
            ctx.log(
                f"[{self.name}] weights for group {self._name(t)!r}: {stats['in_group_share_above']:.0%} of in-group "
                f"weights > {IN_GROUP_THRESHOLD} ({verdict}); mean in-group {stats['in_group_mean']:.3f}, "
                f"out-of-group {stats['out_group_mean']:.3f}; median delta {float(np.median(sw.delta)):.3g}."
            )

    def _stage2_separate(self, train: TaskData, val: TaskData, ctx: RunContext) -> None:
        """Stage 2 without sharing: one network per group on all of D with fixed weights."""
        self.group_models_: dict[int, nn.Module] = {}
        for t, sw in self.weights_.items():
            w = torch.as_tensor(sw.weights, dtype=torch.float32, device=self.device_)

            def loss_fn(out: torch.Tensor, b: Batch, w: torch.Tensor = w) -> torch.Tensor:
                idx = torch.as_tensor(b.index, device=w.device)
                return weighted_loss(per_sample_loss(out, b.y, ctx.task), w[idx], self.loss_norm)

            model = self._network(ctx)
            self._train(model, train, self._group_val(val, t, ctx), ctx, stage=f"group_model:{self._name(t)}",
                        criterion="auc", loss_fn=loss_fn)
            self.group_models_[t] = model

    def _stage2_shared(self, train: TaskData, val: TaskData, ctx: RunContext) -> None:
        """Stage 2 with partial sharing: one branched network, sum of the groups' losses."""
        order = sorted(self.weights_)
        w = torch.stack([torch.as_tensor(self.weights_[t].weights, dtype=torch.float32) for t in order]).to(self.device_)
        net = build_branched(self._network(ctx), self.sharing, len(order)).to(self.device_)

        def forward(m: nn.Module, b: Batch) -> torch.Tensor:
            return m.forward_all(b.x)

        def loss_fn(out: torch.Tensor, b: Batch) -> torch.Tensor:
            idx = torch.as_tensor(b.index, device=w.device)
            return sum(  # type: ignore[return-value]
                weighted_loss(per_sample_loss(out[k], b.y, ctx.task), w[k, idx], self.loss_norm) for k in range(len(order))
            )

        self._train(net, train, val, ctx, stage="group_models", criterion="worst_group_auc",
                    loss_fn=loss_fn, forward=forward)
        self.shared_net_ = net
        self.group_models_ = {t: BranchView(net, k) for k, t in enumerate(order)}

    # -- Method API ----------------------------------------------------------------------

    def fit(self, train: TaskData, val: TaskData, ctx: RunContext) -> Spare:
        """Stages 0-2 for every group; return ``self``.

        Raises:
            ConfigError: invalid options, missing group codes, or a group with fewer than two
                training samples.
        """
        self._validate(train, val, ctx)
        seed_everything(ctx.seed)
        self.device_ = resolve_device(ctx.device)
        tg = np.asarray(train.groups)
        self.n_groups_ = group_count(train)
        self.group_names_ = tuple(train.group_names)
        small = [self._name(g) for g in range(self.n_groups_) if int(np.sum(tg == g)) < 2]
        if small:
            raise ConfigError(
                f"SPARE trains one model per group, but group(s) {small} have fewer than 2 training samples; "
                "use a grouping whose groups all occur in the training split (or merge small groups)."
            )
        if self.n_groups_ < 2:
            raise ConfigError("SPARE needs at least two groups (the group predictor has K >= 2 classes).")
        self.selected_epochs_: dict[str, int] = {}
        references: dict[int, nn.Module] = {}
        for t in range(self.n_groups_):
            ref = self._network(ctx)
            self._train(ref, train.subset(tg == t), self._group_val(val, t, ctx), ctx,
                        stage=f"reference:{self._name(t)}", criterion="auc")
            references[t] = ref
        self.group_predictor_ = self._fit_group_predictor(train, val, ctx)
        self._stage1(train, ctx, references)
        del references
        self.shared_net_: BranchedNet | None = None
        if self.sharing == "none":
            self._stage2_separate(train, val, ctx)
        else:
            self._stage2_shared(train, val, ctx)
        self.fitted_ = True
        return self

    def _routes(self, data: TaskData, batch_size: int) -> np.ndarray:
        """The group model each sample goes to."""
        need_pred = self.route == "predicted"
        groups = None if data.groups is None else np.asarray(data.groups)
        if self.route == "true":
            if groups is None:
                raise ConfigError(
                    "SPARE routes every sample by its true group, but data.groups is None; it is tagged "
                    "uses_groups_in_predict (or construct it with route='predicted')."
                )
            unknown = sorted(set(np.unique(groups[groups >= 0]).tolist()) - set(self.group_models_))
            if unknown:
                raise ConfigError(f"SPARE: no model for group code(s) {unknown} (trained on {sorted(self.group_models_)}).")
            need_pred = bool(np.any(groups < 0))
        routes = groups.copy() if groups is not None and self.route == "true" else np.full(len(data), -1)
        if need_pred:
            blind = data.without_labels().without_groups()
            pred = predict_proba(self.group_predictor_, blind, batch_size=batch_size, amp=False).argmax(1)
            routes = np.where(routes < 0, pred, routes)
        return routes.astype(np.int64)

    def predict_scores(self, data: TaskData, ctx: RunContext) -> np.ndarray:
        """Probabilities of every sample from its routed group model (never reads labels).

        Raises:
            ConfigError: ``route="true"`` without group codes, or a group without a model.
        """
        self.check_fitted("predict_scores")
        bs = max(2 * self._recipe(ctx, "auc").batch_size, 1)
        routes = self._routes(data, bs)
        blind = data.without_labels().without_groups()
        out = np.zeros((len(data), ctx.num_classes), dtype=np.float32)
        for t, model in self.group_models_.items():
            rows = np.flatnonzero(routes == t)
            if rows.size:
                out[rows] = predict_proba(model, blind.subset(rows), batch_size=bs, amp=ctx.amp)
        return out

    def state_dict(self) -> dict[str, Any]:
        """Group-model and group-predictor weights (CPU), hyper-parameters, weight statistics."""
        self.check_fitted("state_dict")

        models = (
            {"shared": cpu_state(self.shared_net_)} if self.shared_net_ is not None
            else {int(t): cpu_state(m) for t, m in self.group_models_.items()}
        )
        return {
            "format": 1,
            "method": self.name,
            "params": copy.deepcopy(self.get_params()),
            "n_groups": self.n_groups_,
            "group_names": list(self.group_names_),
            "groups": sorted(int(t) for t in self.group_models_),
            "models": models,
            "group_predictor": cpu_state(self.group_predictor_),
            "weight_stats": copy.deepcopy(self.weight_stats_),
            "selected_epoch": dict(self.selected_epochs_),
        }

    def load_state_dict(self, state: dict[str, Any], ctx: RunContext) -> Spare:
        """Rebuild every network for ``ctx`` and restore the weights.

        Raises:
            ConfigError: the weights do not fit ``ctx``'s backbone.
        """
        self.restore_params(state)
        self.device_ = resolve_device(ctx.device)
        self.n_groups_ = int(state["n_groups"])
        self.group_names_ = tuple(state.get("group_names", ()))
        groups = [int(t) for t in state["groups"]]
        with self.loading_weights(ctx):
            self.group_predictor_ = self._network(ctx, self.n_groups_)
            self.group_predictor_.load_state_dict(state["group_predictor"])
            self.shared_net_ = None
            if "shared" in state["models"]:
                net = build_branched(self._network(ctx), self.sharing, len(groups)).to(self.device_)
                net.load_state_dict(state["models"]["shared"])
                self.shared_net_ = net
                self.group_models_ = {t: BranchView(net, k) for k, t in enumerate(groups)}
            else:
                self.group_models_ = {}
                for t in groups:
                    m = self._network(ctx)
                    m.load_state_dict(state["models"][t])
                    self.group_models_[t] = m
        self.weight_stats_ = copy.deepcopy(state.get("weight_stats", {}))
        self.selected_epochs_ = dict(state.get("selected_epoch", {}))
        self.fitted_ = True
        return self
