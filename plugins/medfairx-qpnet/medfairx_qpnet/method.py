"""QP-Net — Quasi-Pareto improvement from the Mixed model (docs/methods.md §4).

Two stages, both trained by the framework loop (:func:`~medfairx.methods.train_model`):

* **Stage A** trains the Mixed model ``M_mix`` by ERM (§1.1) on the pooled training set with
  the run's recipe. By default (``mix_arch="qp"``) ``M_mix`` has QP-Net's own inference path
  ``F_y(F_z(x))``, so stage B starts from all of ``F_z`` and ``F_y``; with
  ``mix_arch="backbone"`` it is the registry backbone and only the encoder is transferred.
* **Stage B** trains QP-Net initialised from ``M_mix`` with

  ``L = δ·L_domi + (1−δ)·L_less + γ_d·L_d^GRL + γ_MMD·MMD + γ_BSS·BSS``

  on group-stratified batches (half less-prevalent). ``δ`` is adaptive: by default it is
  recomputed at every epoch end from the current model's dominant-group VALIDATION AUC
  (``A_domi``) and the frozen ``M_mix``'s (``A_mix``), 0.5 in epoch 1; test data are never
  read. ``delta_source="batch"`` reproduces the public code (batch AUC after every step,
  ``A_mix`` = previous epoch's training AUC, 0 in epoch 1, δ reset to 0.5 each epoch).

Architecture: ``F_z`` = backbone encoder + ``Linear(feature_dim→100)`` (no activation);
``F_y`` = MLP ``100→70→50→20→C`` with ReLU; ``F_d`` = the same MLP behind a gradient-reversal
layer, ending in one logit (BCE, binarised groups) or ``K`` logits (softmax, ``k_groups="kway"``).
``F_y`` outputs logits trained with softmax cross-entropy (docs/methods.md §0) instead of the code's
final sigmoid. New linear layers use xavier_uniform with the tanh gain.

K groups: by default binarised into the less-prevalent set ``S`` (``less_prevalent``, default
groups with ``N_g < N_max/2``, else the smallest) and the dominant rest; ``k_groups="kway"``
uses the K-way loss of §4. Inference is ``F_y(F_z(x))`` and needs no attribute.

Search space (``medfairx bench --trials``, on top of the recipe's ``lr`` / ``weight_decay``):
the loss weights ``gamma_d`` on [0.05, 0.5] (0.2), ``gamma_mmd`` on [0.2, 1.6] (0.8),
``gamma_bss`` on [0.1, 1] (0.5), all uniform; QP-Net's own Adam ``lr`` log-uniform on [1e-5,
1e-3] and ``weight_decay`` on [3e-3, 0.1] (1e-4 and 0.03 in the paper's code).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medfairx.errors import ConfigError
from medfairx.methods import (
    Batch,
    GradientReversal,
    GroupStratifiedSampler,
    Optimization,
    RunContext,
    TaskData,
    TrainableMethod,
    build_backbone,
    classification_auc,
    evaluate_model,
    group_count,
    per_sample_loss,
    resolve_device,
    seed_everything,
    train_model,
)
from medfairx_qpnet import QPNET_SPEC
from medfairx_qpnet.losses import (
    MMD_KERNELS,
    adaptive_delta,
    binary_task_loss,
    bss,
    kway_mmd,
    kway_task_loss,
    less_prevalent_codes,
    mmd,
)

DELTA_SOURCES: tuple[str, ...] = ("val", "batch")
K_GROUP_MODES: tuple[str, ...] = ("binarize", "kway")
MIX_ARCHS: tuple[str, ...] = ("qp", "backbone")


def mlp(in_features: int, hidden: Sequence[int], out_features: int) -> nn.Sequential:
    """``Linear → ReLU → … → Linear`` (no final activation)."""
    dims = [int(in_features), *map(int, hidden)]
    layers: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU(inplace=True)]
    layers.append(nn.Linear(dims[-1], int(out_features)))
    return nn.Sequential(*layers)


def xavier_tanh_(module: nn.Module) -> None:
    """xavier_uniform (gain ``calculate_gain('tanh')``) on every Linear weight, zero biases."""
    gain = nn.init.calculate_gain("tanh")
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class QPNetwork(nn.Module):
    """``F_y(F_z(x))`` with the domain head ``F_d`` behind a gradient-reversal layer.

    Args:
        encoder: the backbone encoder (image → pooled ``feature_dim`` vector).
        feature_dim: encoder output size.
        num_classes: ``C``.
        n_domain_out: 1 (binarised groups, BCE) or ``K`` (K-way softmax).
        z_dim: size of ``ẑ`` (100).
        hidden: hidden widths of ``F_y`` and ``F_d`` ((70, 50, 20)).
        grl_lambda: the gradient-reversal coefficient (1, "GRL_1").
    """

    def __init__(
        self,
        encoder: nn.Module,
        feature_dim: int,
        num_classes: int,
        n_domain_out: int,
        *,
        z_dim: int = 100,
        hidden: Sequence[int] = (70, 50, 20),
        grl_lambda: float = 1.0,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.proj = nn.Linear(int(feature_dim), int(z_dim))
        self.classifier = mlp(z_dim, hidden, num_classes)
        self.grl = GradientReversal(grl_lambda)
        self.domain = mlp(z_dim, hidden, n_domain_out)
        for part in (self.proj, self.classifier, self.domain):
            xavier_tanh_(part)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``ẑ = F_z(x)`` ``(n, z_dim)``."""
        return self.proj(self.encoder(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``F_y(F_z(x))`` (inference path; ``F_d`` is not used)."""
        return self.classifier(self.features(x))

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(class logits, ẑ, domain logits of GRL(ẑ))`` for the training loss."""
        z = self.features(x)
        return self.classifier(z), z, self.domain(self.grl(z))

    def parameter_blocks(self) -> tuple[list[nn.Parameter], list[nn.Parameter], list[nn.Parameter]]:
        """Parameters of ``F_z`` (encoder + proj), ``F_y`` and ``F_d``."""
        f_z = [*self.encoder.parameters(), *self.proj.parameters()]
        return f_z, list(self.classifier.parameters()), list(self.domain.parameters())


class QPNet(TrainableMethod, spec=QPNET_SPEC):
    """QP-Net (see the module docstring).

    Args:
        gamma_d: weight ``γ_d`` of the adversarial domain loss (0.2).
        gamma_mmd: weight ``γ_MMD`` of the MMD term (0.8).
        gamma_bss: weight ``γ_BSS`` of the batch spectral shrinkage (0.5).
        bss_k: how many of the smallest singular values BSS penalises (1).
        sigma: temperature ``σ`` of the adaptive δ (0.05).
        mmd_kernel: ``"paper"`` (``exp(−‖·‖²)``) or ``"multi"`` (code: five Gaussians).
        mmd_normalize: L2-normalise ``ẑ`` inside the MMD term [INFERRED option].
        delta_source: ``"val"`` (default: epoch-end validation AUCs) or ``"batch"`` (code).
        k_groups: ``"binarize"`` (default) or ``"kway"``.
        less_prevalent: group names (or codes) forming ``S``; default by training counts.
        z_dim: size of ``ẑ`` (100).
        hidden: hidden widths of ``F_y`` / ``F_d`` ((70, 50, 20)).
        lr: stage-B Adam learning rate of all three optimisers (1e-4).
        betas: stage-B Adam betas ((0.9, 0.99)).
        weight_decay: stage-B Adam weight decay (0.03).
        fz_step_size: StepLR period (epochs) of ``F_z`` (20).
        fz_gamma: StepLR factor of ``F_z`` (0.5).
        grl_lambda: gradient-reversal coefficient (1).
        mix_arch: ``"qp"`` (M_mix = ``F_y∘F_z`` trained by ERM) or ``"backbone"``.
        qp_code_guards: the code's guards (QP loss only when batch ``AUC_domi > AUC_less``;
            adversarial term only when ``L_y > γ_d·L_d``).
        recipe: :class:`~medfairx.methods.TrainRecipe` overrides (both stages).
    """


    def __init__(
        self,
        gamma_d: float = 0.2,
        gamma_mmd: float = 0.8,
        gamma_bss: float = 0.5,
        bss_k: int = 1,
        sigma: float = 0.05,
        mmd_kernel: str = "paper",
        mmd_normalize: bool = False,
        delta_source: str = "val",
        k_groups: str = "binarize",
        less_prevalent: Sequence[str | int] | None = None,
        z_dim: int = 100,
        hidden: Sequence[int] = (70, 50, 20),
        lr: float = 1e-4,
        betas: Sequence[float] = (0.9, 0.99),
        weight_decay: float = 0.03,
        fz_step_size: int = 20,
        fz_gamma: float = 0.5,
        grl_lambda: float = 1.0,
        mix_arch: str = "qp",
        qp_code_guards: bool = False,
        recipe: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(recipe=recipe)
        self.gamma_d = gamma_d
        self.gamma_mmd = gamma_mmd
        self.gamma_bss = gamma_bss
        self.bss_k = bss_k
        self.sigma = sigma
        self.mmd_kernel = mmd_kernel
        self.mmd_normalize = mmd_normalize
        self.delta_source = delta_source
        self.k_groups = k_groups
        self.less_prevalent = less_prevalent
        self.z_dim = z_dim
        self.hidden = hidden
        self.lr = lr
        self.betas = betas
        self.weight_decay = weight_decay
        self.fz_step_size = fz_step_size
        self.fz_gamma = fz_gamma
        self.grl_lambda = grl_lambda
        self.mix_arch = mix_arch
        self.qp_code_guards = qp_code_guards

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        """Two short epochs per stage, small MLPs."""
        return {"z_dim": 16, "hidden": (12, 8), "recipe": {"epochs": 2, "max_steps_per_epoch": 3, "batch_size": 16}}

    # -- configuration -------------------------------------------------------------------

    def _check_params(self, ctx: RunContext) -> None:
        choices = {
            "mmd_kernel": (self.mmd_kernel, MMD_KERNELS),
            "delta_source": (self.delta_source, DELTA_SOURCES),
            "k_groups": (self.k_groups, K_GROUP_MODES),
            "mix_arch": (self.mix_arch, MIX_ARCHS),
        }
        for key, (value, allowed) in choices.items():
            if value not in allowed:
                raise ConfigError(f"QP-Net: unknown {key} {value!r}; use one of {', '.join(allowed)}.")
        if ctx.task != "classification":
            raise ConfigError(f"QP-Net supports classification only, not {ctx.task!r}.")
        if not self.sigma > 0:
            raise ConfigError(f"QP-Net: sigma must be > 0, got {self.sigma!r}.")

    def _backbone(self, ctx: RunContext) -> nn.Module:
        net = build_backbone(
            ctx.backbone, in_channels=ctx.in_channels, num_classes=ctx.num_classes,
            spatial_dims=ctx.spatial_dims, task=ctx.task, **dict(ctx.backbone_kwargs),
        )
        if not hasattr(net, "encoder") or not hasattr(net, "feature_dim"):
            raise ConfigError(
                f"QP-Net needs a ClassifierNet backbone (encoder + feature_dim); {ctx.backbone!r} is "
                f"{type(net).__name__}."
            )
        return net

    def _qp_network(self, encoder: nn.Module, feature_dim: int, ctx: RunContext) -> QPNetwork:
        return QPNetwork(
            encoder, feature_dim, ctx.num_classes, self.n_domain_out_,
            z_dim=self.z_dim, hidden=self.hidden, grl_lambda=self.grl_lambda,
        )

    def build_model(self, ctx: RunContext) -> nn.Module:
        """A freshly initialised QP-Net for ``ctx`` (needs ``n_domain_out_``)."""
        net = self._backbone(ctx)
        return self._qp_network(net.encoder, int(net.feature_dim), ctx)

    def _stage_b_optimization(self, model: QPNetwork) -> Optimization:
        """Three Adam optimisers (one param group each, identical maths) + StepLR on ``F_z``."""
        f_z, f_y, f_d = model.parameter_blocks()
        groups = [{"params": p} for p in (f_z, f_y, f_d)]
        opt = torch.optim.Adam(groups, lr=self.lr, betas=tuple(self.betas), weight_decay=self.weight_decay)
        step, gamma = int(self.fz_step_size), float(self.fz_gamma)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, [lambda e: gamma ** (e // step), lambda e: 1.0, lambda e: 1.0]
        )
        return Optimization(opt, sched, per_step=False)

    # -- groups, δ -----------------------------------------------------------------------

    def _units(self, groups: np.ndarray) -> np.ndarray:
        """Per sample, the unit δ is computed for: domain ``d`` (binarised) or the group (K-way)."""
        g = np.asarray(groups)
        if self.k_groups == "kway":
            return g
        return np.where(g >= 0, self._domain_of[np.clip(g, 0, None)], -1)

    def _unit_aucs(self, labels: np.ndarray, probs: np.ndarray, units: np.ndarray) -> dict[int, float]:
        """AUC of every protected unit (binarised: the dominant set 0; K-way: each g ∈ P)."""
        return {u: classification_auc(labels[units == u], probs[units == u]) for u in self.protected_}

    def _val_unit_aucs(self, model: nn.Module, val: TaskData, ctx: RunContext) -> dict[int, float]:
        res = evaluate_model(model, val, task=ctx.task, num_classes=ctx.num_classes,
                             batch_size=max(2 * self._recipe.batch_size, 1))
        return self._unit_aucs(np.asarray(val.labels), res.scores, self._units(val.groups))  # type: ignore[arg-type]

    def _set_deltas(self, current: dict[int, float], reference: dict[int, float] | float) -> None:
        ref = reference if isinstance(reference, dict) else {u: float(reference) for u in current}
        self.deltas_ = {u: adaptive_delta(current[u], ref[u], self.sigma) for u in current}

    # -- the loss --------------------------------------------------------------------------

    def _loss(self, outputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor], batch: Batch, ctx: RunContext) -> torch.Tensor:
        """The stage-B loss of a batch; in ``delta_source="batch"`` mode it then updates δ."""
        if batch.g is None or batch.y is None:
            raise ConfigError("QP-Net: training batches need labels and group codes.")
        loss = self._qp_loss(outputs, batch, ctx)
        if self.delta_source == "batch":
            self._batch_delta_update(outputs[0], batch, batch.g.long())
        return loss

    def _qp_loss(self, outputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor], batch: Batch, ctx: RunContext) -> torch.Tensor:
        logits, z, d_logits = outputs
        assert batch.g is not None and batch.y is not None
        ce = per_sample_loss(logits, batch.y, ctx.task)
        g = batch.g.long()
        d = torch.where(g >= 0, self._domain_t.to(g.device)[g.clamp_min(0)], torch.full_like(g, -1))
        dom, less = d == 0, d == 1
        if not bool(dom.any()) or not bool(less.any()):
            loss = ce.mean()  # one group only: plain CE (the code's fallback)
            self._record(loss, loss, None, None, None)
            return loss
        if self.k_groups == "kway":
            l_y = kway_task_loss(ce, g, self.deltas_, self.less_codes_)
        else:
            l_y = binary_task_loss(ce, d, self.deltas_[0])
        valid = d >= 0
        if self.k_groups == "kway":
            l_d = F.cross_entropy(d_logits[valid].float(), g[valid])
        else:
            l_d = F.binary_cross_entropy_with_logits(d_logits[valid, 0].float(), d[valid].float())
        z32 = z.float()
        z_m = F.normalize(z32, dim=1) if self.mmd_normalize else z32
        if self.k_groups == "kway":
            l_mmd = kway_mmd(z_m, g, self.less_codes_, kernel=self.mmd_kernel)
        else:
            l_mmd = mmd(z_m[dom], z_m[less], kernel=self.mmd_kernel)
        l_bss = bss(z32, self.bss_k)
        use_adv = True
        if self.qp_code_guards:
            probs = torch.softmax(logits.detach().float(), 1).cpu().numpy()
            y = batch.y.cpu().numpy()
            dn = d.cpu().numpy()
            a_dom = classification_auc(y[dn == 0], probs[dn == 0])
            a_less = classification_auc(y[dn == 1], probs[dn == 1])
            if not a_dom > a_less:
                loss = ce.mean()
                self._record(loss, loss, None, None, None)
                return loss
            use_adv = bool(l_y.detach() > self.gamma_d * l_d.detach())
        loss = l_y + self.gamma_mmd * l_mmd + self.gamma_bss * l_bss
        if use_adv:
            loss = loss + self.gamma_d * l_d
        self._record(loss, l_y, l_d, l_mmd, l_bss)
        return loss

    def _record(self, *terms: torch.Tensor | None) -> None:
        for key, t in zip(("loss", "l_y", "l_d", "mmd", "bss"), terms, strict=True):
            if t is not None:
                self._terms.setdefault(key, []).append(t.detach().float())

    def _batch_delta_update(self, logits: torch.Tensor, batch: Batch, g: torch.Tensor) -> None:
        """Code mode: δ for the NEXT batch from this batch's protected-unit AUCs and the
        previous epoch's overall training AUC (0 in epoch 1)."""
        probs = torch.softmax(logits.detach().float(), 1).cpu().numpy()
        y = batch.y.cpu().numpy()  # type: ignore[union-attr]
        self._epoch_train.append((y, probs))
        current = self._unit_aucs(y, probs, self._units(g.cpu().numpy()))
        pending = dict(self.deltas_)
        self._set_deltas(current, self._prev_train_auc)
        for u in self.deltas_:  # an undefined batch AUC keeps the previous δ
            if not math.isfinite(current[u]):
                self.deltas_[u] = pending[u]

    # -- fit -------------------------------------------------------------------------------

    def fit(self, train: TaskData, val: TaskData, ctx: RunContext) -> QPNet:
        """Stage A (ERM Mixed model), then stage B (QP-Net from it); returns ``self``.

        Raises:
            ConfigError: no group codes, a non-classification task or invalid options.
        """
        self._check_params(ctx)
        if train.groups is None or val.groups is None:
            raise ConfigError("QP-Net needs training and validation group codes (tags.uses_groups_in_fit).")
        seed_everything(ctx.seed)
        recipe = self.recipe_for(ctx)
        self._recipe = recipe
        self.device_ = resolve_device(ctx.device)
        n_groups = group_count(train, minimum=1)
        counts = np.bincount(train.groups[train.groups >= 0], minlength=n_groups)
        self.less_codes_ = less_prevalent_codes(counts, train.group_names, self.less_prevalent)
        self._domain_of = np.array([1 if k in self.less_codes_ else 0 for k in range(n_groups)], dtype=np.int64)
        self._domain_t = torch.as_tensor(self._domain_of)
        kway = self.k_groups == "kway"
        self.n_domain_out_ = n_groups if kway else 1
        self.protected_ = tuple(k for k in range(n_groups) if k not in self.less_codes_) if kway else (0,)
        names = train.group_names or tuple(str(k) for k in range(n_groups))
        ctx.log(
            f"[{self.name}] less-prevalent set S = {[names[k] for k in self.less_codes_]}, dominant = "
            f"{[names[k] for k in range(n_groups) if k not in self.less_codes_]} (train counts {counts.tolist()})"
        )

        # Stage A: the Mixed model, ERM on the pooled training set.
        mix_ctx = ctx.child()
        if self.mix_arch == "qp":
            mix: nn.Module = self.build_model(ctx)
            f_z, f_y, _ = mix.parameter_blocks()  # type: ignore[operator]
            params: list[nn.Parameter] | None = [*f_z, *f_y]
        else:
            mix, params = self._backbone(ctx), None
        train_model(mix, train, val, mix_ctx, recipe=recipe, params=params, name=self.name, stage="mix",
                    deployed=False)
        self.mix_history_ = list(mix_ctx.history)
        self.a_mix_ = self._val_unit_aucs(mix, val, ctx)

        # Stage B: QP-Net initialised from M_mix.
        if self.mix_arch == "qp":
            model = self.build_model(ctx)
            model.load_state_dict(mix.state_dict())
            xavier_tanh_(model.domain)
        else:
            net = self._backbone(ctx)
            net.load_state_dict(mix.state_dict())
            model = self._qp_network(net.encoder, int(net.feature_dim), ctx)
        del mix
        model = model.to(self.device_)
        self.model_ = model
        self.deltas_ = {u: 0.5 for u in self.protected_}
        self.delta_history_: list[dict[str, Any]] = []
        self._terms: dict[str, list[torch.Tensor]] = {}
        self._epoch_train: list[tuple[np.ndarray, np.ndarray]] = []
        self._prev_train_auc = 0.0
        domains = np.where(train.groups >= 0, self._domain_of[np.clip(train.groups, 0, None)], -1)
        sampler = GroupStratifiedSampler(
            domains, recipe.batch_size, min_per_group=max(recipe.batch_size // 2, 1), seed=ctx.seed
        )

        def on_epoch_end(epoch: int, ctx_: RunContext) -> None:
            terms = {k: float(torch.stack(v).mean()) for k, v in self._terms.items() if v}
            self._terms = {}
            used = dict(self.deltas_)
            if self.delta_source == "val":
                current = self._val_unit_aucs(model, val, ctx)
                self._set_deltas(current, self.a_mix_)
            else:
                ys = np.concatenate([y for y, _ in self._epoch_train]) if self._epoch_train else np.zeros(0)
                ps = np.concatenate([p for _, p in self._epoch_train]) if self._epoch_train else np.zeros((0, 2))
                self._epoch_train = []
                current = {}
                self._prev_train_auc = classification_auc(ys, ps) if len(ys) else 0.0
                if not math.isfinite(self._prev_train_auc):
                    self._prev_train_auc = 0.0
                self.deltas_ = {u: 0.5 for u in self.protected_}
            self.delta_history_.append(
                {"epoch": epoch, "delta_used": used, "a_current": current, "a_mix": self.a_mix_, "terms": terms}
            )
            shown = ", ".join(f"{k} {v:.4f}" for k, v in terms.items())
            ctx_.log(
                f"[{self.name}] epoch {epoch}: delta used {_fmt(used)}, next {_fmt(self.deltas_)}; "
                f"A_current {_fmt(current)} vs A_mix {_fmt(self.a_mix_)}; {shown}"
            )

        result = train_model(
            model,
            train,
            val,
            ctx,
            loss_fn=lambda out, b: self._loss(out, b, ctx),
            recipe=recipe,
            optimization=self._stage_b_optimization(model),
            sampler=sampler,
            augment=(lambda b: self.augment(b, ctx)) if recipe.augment else (lambda b: b),
            forward=lambda m, b: m.forward_all(b.x),
            on_epoch_end=on_epoch_end,
            name=self.name,
            stage=self.name,
        )
        self.train_result_ = result
        self.selected_epoch_ = result.selected_epoch
        self.epochs_trained_ = result.epochs_trained
        self.fitted_ = True
        return self

    # -- state -----------------------------------------------------------------------------

    def extra_state(self) -> dict[str, Any]:
        """Less-prevalent set, domain-head size, A_mix and the δ trace."""
        return {
            "less_codes": list(self.less_codes_),
            "n_domain_out": int(self.n_domain_out_),
            "a_mix": {int(k): float(v) for k, v in self.a_mix_.items()},
            "delta_history": self.delta_history_,
        }

    def load_state_dict(self, state: dict[str, Any], ctx: RunContext) -> QPNet:
        """Restore a fitted QP-Net (the domain-head size is read first to rebuild the net)."""
        extra = state.get("extra", {})
        self.n_domain_out_ = int(extra.get("n_domain_out", 1))
        return super().load_state_dict(state, ctx)  # type: ignore[return-value]

    def load_extra_state(self, state: dict[str, Any], ctx: RunContext) -> None:
        """Restore what :meth:`extra_state` returned."""
        self.less_codes_ = tuple(state.get("less_codes", ()))
        self.a_mix_ = {int(k): v for k, v in state.get("a_mix", {}).items()}
        self.delta_history_ = list(state.get("delta_history", []))


def _fmt(values: dict[int, float]) -> str:
    return "{" + ", ".join(f"{k}: {v:.3f}" for k, v in values.items()) + "}"
