"""The framework training loop and :class:`TrainableMethod`.

Two layers:

* :func:`train_model` trains any ``(model, loss_fn)`` pair on a :class:`TaskData` split with
  the run's recipe: seeded sampling, AMP on CUDA, validation every epoch, early stopping on
  ``recipe.criterion`` and restoration of the best checkpoint. Multi-stage methods call it
  once per stage (each with its own ``ctx.child()`` history) and pass ``deployed=False`` for
  every stage whose weights are not the deployed model (see :func:`train_model`).
* :class:`TrainableMethod` is a :class:`~medfairx.methods.base.Method` whose ``fit`` is a
  thin wrapper around :func:`train_model`; subclasses usually override only
  :meth:`TrainableMethod.compute_loss` or a hook.

Epochs are numbered from 1 in history, logs and ``selected_epoch_``.

Per-epoch history record (appended to ``ctx.history``)::

    {"stage", "epoch", "lr", "seconds", "train_seconds", "train_loss", "val_loss",
     "val_auc" | "val_dice" + "val_iou",                    # overall validation metric(s)
     "val_group_auc" | "val_group_dice" + "val_group_iou",  # {group code: value}, if groups
     "criterion", "criterion_value", "is_best"}

Per-epoch predictions are not part of the record: at the end of every epoch of a deployed
stage the trainer calls ``ctx.observe_epoch(stage, epoch, predict)`` (classification), and
the runner's observer predicts the val and test splits it holds with ``predict``.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from medfairx.contracts import TaskData, TrainRecipe
from medfairx.errors import ConfigError, TrainingError
from medfairx.methods.backbones import build_backbone
from medfairx.methods.base import Method, Predictor, RunContext
from medfairx.methods.device import (
    AmpConfig,
    ArraySource,
    amp_config,
    resolve_device,
    seed_everything,
    use_channels_last,
)
from medfairx.methods.losses import per_sample_loss
from medfairx.methods.sampling import (
    IndexSampler,
    ShuffleSampler,
    iter_batches,
    steps_per_epoch,
)
from medfairx.metrics.basic import auc, dice_iou_per_sample, group_values

NAN_MESSAGE = (
    "{kind} loss at epoch {epoch} step {step} of method {method}; lower the learning rate "
    "(recipe.lr={lr:g}) or check the input data"
)
CRITERIA = ("auc", "worst_group_auc", "dice", "worst_group_dice", "neg_loss")
#: How often (in steps) the loop synchronises with a CUDA device to check for NaN losses.
CUDA_NAN_CHECK_EVERY = 50


# --- data structures ------------------------------------------------------------------


@dataclass
class Batch:
    """One training mini-batch, already on the training device.

    Attributes:
        x: ``(n, C, *spatial)`` float images (normalised, possibly augmented).
        y: ``(n,)`` class indices or ``(n, *spatial)`` label maps (int64), or ``None``.
        g: ``(n,)`` int64 group codes, or ``None`` when the method may not see groups.
        index: ``(n,)`` numpy positions of the samples in the training set.
    """

    x: torch.Tensor
    y: torch.Tensor | None
    g: torch.Tensor | None
    index: np.ndarray

    @property
    def targets(self) -> torch.Tensor:
        """``y`` for a training loss; raises :class:`~medfairx.errors.TrainingError` when it is ``None``."""
        if self.y is None:
            raise TrainingError("Batch.targets: this batch carries no labels (y is None); compute losses on training batches only.")
        return self.y


@dataclass
class Optimization:
    """An optimiser and its learning-rate schedule.

    Attributes:
        optimizer: the torch optimiser.
        scheduler: an LR scheduler or ``None``.
        per_step: ``True`` if ``scheduler`` is stepped after every batch (poly), ``False``
            if after every epoch (step).
    """

    optimizer: torch.optim.Optimizer
    scheduler: Any = None
    per_step: bool = False


@dataclass
class EvalResult:
    """Predictions and metrics of a model on one split.

    Attributes:
        loss: mean per-sample task loss (NaN when the split has no labels).
        metrics: overall values, e.g. ``{"auc": 0.8}`` or ``{"dice": .7, "iou": .6}``.
        group_metrics: ``{metric: {group code: value}}`` (empty without groups).
        scores: classification ``(N, C)`` float32 probabilities; ``None`` for segmentation.
        per_sample: segmentation ``{"dice": (N,), "iou": (N,), "loss": (N,)}``; empty for
            classification.
    """

    loss: float
    metrics: dict[str, float] = field(default_factory=dict)
    group_metrics: dict[str, dict[int, float]] = field(default_factory=dict)
    scores: np.ndarray | None = None
    per_sample: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class TrainResult:
    """What :func:`train_model` did.

    Attributes:
        selected_epoch: the epoch whose weights were restored (1-based).
        epochs_trained: epochs actually run (early stopping may end before ``recipe.epochs``).
        best_value: the criterion value of ``selected_epoch``.
        history: the per-epoch records (also appended to ``ctx.history``).
        seconds: wall time of the whole call.
        train_images: training images processed (for throughput reports).
    """

    selected_epoch: int
    epochs_trained: int
    best_value: float
    history: list[dict[str, Any]]
    seconds: float = 0.0
    train_images: int = 0

    @property
    def images_per_second(self) -> float:
        """Training throughput including validation time."""
        return self.train_images / self.seconds if self.seconds > 0 else float("nan")


LossFn = Callable[[Any, Batch], torch.Tensor]
ForwardFn = Callable[[nn.Module, Batch], Any]
AugmentFn = Callable[[Batch], Batch]


# --- helpers --------------------------------------------------------------------------


def make_optimization(
    params: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]],
    recipe: TrainRecipe,
    steps_per_epoch: int,
) -> Optimization:
    """Build the recipe's optimiser and schedule.

    * ``optimizer``: ``"adam"``, ``"adamw"`` or ``"sgd"`` (with ``recipe.momentum``), all with
      ``recipe.lr`` and ``recipe.weight_decay``;
    * ``scheduler``: ``"step"`` (×``gamma`` every ``step_size`` epochs), ``"poly"``
      (``lr·(1 − t/T)^0.9`` per iteration, ``T = epochs·steps_per_epoch``) or ``"none"``.

    Raises:
        ConfigError: unknown optimiser or scheduler name.
    """
    name = recipe.optimizer.lower()
    if name == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    elif name == "adamw":
        opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    elif name == "sgd":
        opt = torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    else:
        raise ConfigError(f"Unknown recipe.optimizer {recipe.optimizer!r}; use 'adam', 'adamw' or 'sgd'.")
    sched = recipe.scheduler.lower()
    if sched == "none":
        return Optimization(opt)
    if sched == "step":
        return Optimization(opt, torch.optim.lr_scheduler.StepLR(opt, recipe.step_size, recipe.gamma), False)
    if sched == "poly":
        total = max(recipe.epochs * max(steps_per_epoch, 1), 1)
        return Optimization(
            opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda t: max(1.0 - t / total, 0.0) ** 0.9), True
        )
    raise ConfigError(f"Unknown recipe.scheduler {recipe.scheduler!r}; use 'step', 'poly' or 'none'.")


def resolve_criterion(criterion: str, task: str) -> str:
    """Map the recipe criterion onto the task (``auc`` ↔ ``dice`` are aliases across tasks).

    Raises:
        ConfigError: unknown criterion.
    """
    if criterion not in CRITERIA:
        raise ConfigError(f"Unknown recipe.criterion {criterion!r}; use one of {', '.join(CRITERIA)}.")
    if task == "segmentation":
        return criterion.replace("auc", "dice")
    return criterion.replace("dice", "auc")


def classification_auc(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Binary AUC of ``P(class 1)``, or the macro one-vs-rest AUC for more classes.

    Classes absent from ``y_true`` (or present alone) are skipped; NaN if none is scorable.
    """
    y = np.asarray(y_true)
    if probs.shape[1] == 2:
        return auc(y == 1, probs[:, 1])
    vals = [auc(y == k, probs[:, k]) for k in range(probs.shape[1])]
    vals = [v for v in vals if not math.isnan(v)]
    return float(np.mean(vals)) if vals else float("nan")


def criterion_value(result: EvalResult, criterion: str) -> float:
    """The (higher-is-better) value of a resolved ``criterion`` for an evaluation.

    Worst-group criteria take the minimum over groups with a defined value and fall back
    to the overall metric when there are no group codes.
    """
    if criterion == "neg_loss":
        return -result.loss
    metric = criterion.removeprefix("worst_group_")
    if criterion.startswith("worst_group_") and result.group_metrics.get(metric):
        vals = [v for v in result.group_metrics[metric].values() if not math.isnan(v)]
        return min(vals) if vals else float("nan")
    return result.metrics.get(metric, float("nan"))


def default_augment(batch: Batch, *, spatial_dims: int, enabled: bool = True) -> Batch:
    """Random horizontal flips (probability 0.5 per sample) for 2D images and label maps.

    3D volumes and ``enabled=False`` pass through unchanged. Uses the device's global torch
    RNG, which :func:`~medfairx.methods.device.seed_everything` seeds.
    """
    if not enabled or spatial_dims != 2 or batch.x.dim() != 4:
        return batch
    flip = torch.rand(batch.x.shape[0], device=batch.x.device) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), batch.x.flip(-1), batch.x)
    y = batch.y
    if y is not None and y.dim() == 3:
        y = torch.where(flip.view(-1, 1, 1), y.flip(-1), y)
    if batch.x.is_cuda and batch.x.is_contiguous(memory_format=torch.channels_last):
        x = x.contiguous(memory_format=torch.channels_last)
    return Batch(x, y, batch.g, batch.index)


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of ``model.state_dict()`` (for a method's ``state_dict``)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def eval_batch_size(recipe: TrainRecipe) -> int:
    """Batch size for evaluation and prediction: twice the training batch (no gradients kept)."""
    return max(2 * recipe.batch_size, 1)


def layered_recipe(recipe: TrainRecipe, *overrides: dict[str, Any] | None, owner: str) -> TrainRecipe:
    """``recipe`` updated with each override dict in turn (``None`` skipped).

    Args:
        recipe: the starting recipe, usually ``ctx.recipe``.
        overrides: dicts of :class:`TrainRecipe` field changes, applied left to right.
        owner: the method's name, for the error message.

    Raises:
        ConfigError: an override names no recipe field.
    """
    valid = sorted(TrainRecipe.__dataclass_fields__)
    for layer in overrides:
        bad = sorted(set(layer or {}) - set(valid))
        if bad:
            raise ConfigError(f"{owner}: unknown recipe override(s) {bad}; valid keys: {', '.join(valid)}.")
        recipe = recipe.updated(**(layer or {}))
    return recipe


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def iter_logits(
    model: nn.Module,
    source: ArraySource,
    *,
    batch_size: int,
    amp: AmpConfig,
    forward: ForwardFn | None = None,
) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor | None, torch.Tensor | None]]:
    """Eval-mode, no-grad forward passes over ``source`` in order.

    Yields ``(index, float32 logits, labels or None, groups or None)`` per batch. The caller
    is responsible for ``model.eval()``. ``forward(model, batch) -> logits`` replaces the
    default ``model(batch.x)`` (e.g. to route by ``batch.g``).
    """
    with torch.inference_mode():
        for idx in source.sequential_batches(batch_size):
            x, y, g = source.gather(idx)
            with amp.autocast():
                logits = model(x) if forward is None else forward(model, Batch(x, y, g, idx))
            yield idx, logits.float(), y, g


def evaluate_model(
    model: nn.Module,
    data: TaskData,
    *,
    task: str,
    num_classes: int,
    batch_size: int = 128,
    device: torch.device | None = None,
    amp: AmpConfig | None = None,
    source: ArraySource | None = None,
    forward: ForwardFn | None = None,
) -> EvalResult:
    """Loss, overall and per-group metrics of ``model`` on a labelled split.

    Classification: AUC (binary) or macro one-vs-rest AUC; segmentation: mean per-sample
    Dice and IoU of the argmax label maps (foreground classes, see
    :func:`~medfairx.metrics.basic.dice_iou_per_sample`). Group metrics use ``data.groups``
    when present (codes < 0 are ignored). The model's train/eval mode is restored.
    ``forward(model, batch) -> logits`` replaces the default ``model(batch.x)``.
    """
    device = device or _model_device(model)
    amp = amp or amp_config(device, enabled=False)
    if source is None:
        source = ArraySource(
            data.images, device, labels=data.labels, groups=data.groups,
            channels_last=use_channels_last(device, data.images.ndim - 2),
        )
    was_training = model.training
    model.eval()
    losses, probs, dices, ious = [], [], [], []
    try:
        for _, logits, y, _g in iter_logits(model, source, batch_size=batch_size, amp=amp, forward=forward):
            if y is not None:
                losses.append(per_sample_loss(logits, y, task).cpu())
            if task == "classification":
                probs.append(torch.softmax(logits, dim=1).cpu())
            elif y is not None:
                pred = logits.argmax(1).cpu().numpy()
                d, j = dice_iou_per_sample(pred, y.cpu().numpy(), num_classes)
                dices.append(d)
                ious.append(j)
    finally:
        model.train(was_training)
    loss_arr = torch.cat(losses).numpy().astype(np.float64) if losses else np.full(len(data), np.nan)
    res = EvalResult(loss=float(loss_arr.mean()) if len(loss_arr) else float("nan"))
    groups = data.groups
    if task == "classification":
        res.scores = torch.cat(probs).numpy().astype(np.float32)
        if data.labels is not None:
            res.metrics["auc"] = classification_auc(data.labels, res.scores)
            if groups is not None:
                res.group_metrics["auc"] = group_values(
                    np.asarray(data.labels), np.asarray(groups), classification_auc, res.scores
                )
    elif data.labels is not None:
        dice, iou = np.concatenate(dices), np.concatenate(ious)
        res.per_sample = {"dice": dice, "iou": iou, "loss": loss_arr}
        res.metrics = {"dice": float(dice.mean()), "iou": float(iou.mean())}
        if groups is not None:
            g = np.asarray(groups)
            res.group_metrics = {"dice": group_values(dice, g, np.mean), "iou": group_values(iou, g, np.mean)}
    return res


def predict_proba(
    model: nn.Module,
    data: TaskData,
    *,
    batch_size: int = 128,
    amp: bool = True,
    forward: ForwardFn | None = None,
) -> np.ndarray:
    """Softmax probabilities ``(N, C)`` or ``(N, C, *spatial)`` as float32 numpy.

    Uses only ``data.images`` (never labels); runs on the model's device. With
    ``forward(model, batch) -> logits`` (instead of ``model(batch.x)``) the batches also
    carry ``data.groups`` as ``batch.g`` (``None`` when the groups are hidden).
    """
    device = _model_device(model)
    cfg = amp_config(device, amp)
    source = ArraySource(
        data.images, device, groups=data.groups if forward is not None else None,
        channels_last=use_channels_last(device, data.images.ndim - 2),
    )
    was_training = model.training
    model.eval()
    out: list[np.ndarray] = []
    try:
        for _, logits, _, _ in iter_logits(model, source, batch_size=batch_size, amp=cfg, forward=forward):
            out.append(torch.softmax(logits, dim=1).cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out).astype(np.float32, copy=False)


def _history_record(stage: str, epoch: int, res: EvalResult) -> dict[str, Any]:
    rec: dict[str, Any] = {"stage": stage, "epoch": epoch, "val_loss": res.loss}
    for k, v in res.metrics.items():
        rec[f"val_{k}"] = v
    for k, by_group in res.group_metrics.items():
        rec[f"val_group_{k}"] = by_group
    return rec


def _epoch_predictor(
    model: nn.Module,
    val: TaskData,
    val_result: EvalResult,
    sources: dict[int, tuple[TaskData, ArraySource]],
    *,
    task: str,
    num_classes: int,
    batch_size: int,
    device: torch.device,
    amp: AmpConfig,
    channels_last: bool,
    forward: ForwardFn | None,
) -> Predictor:
    """The ``predict`` handed to ``ctx.observe_epoch`` after one epoch's validation.

    Data with the validation images gets the scores of the validation pass just made (no
    second forward pass); other data is predicted with the eval forward, batch size, AMP and
    memory format of validation. ``sources`` caches one :class:`ArraySource` per data object
    across epochs (groups only when ``forward`` is given, as :func:`predict_proba`).
    """

    def predict(data: TaskData) -> np.ndarray:
        if data.images is val.images:
            return val_result.scores  # type: ignore[return-value]  # classification: scores are always set
        cached = sources.get(id(data))
        if cached is None:
            cached = sources[id(data)] = (data, ArraySource(
                data.images, device, groups=data.groups if forward is not None else None, channels_last=channels_last,
            ))
        return evaluate_model(
            model, data.without_labels(), task=task, num_classes=num_classes, batch_size=batch_size,
            device=device, amp=amp, source=cached[1], forward=forward,
        ).scores  # type: ignore[return-value]  # classification: scores are always set

    return predict


def _format_epoch(name: str, rec: dict[str, Any], total: int) -> str:
    where = name if rec["stage"] == name else f"{name}:{rec['stage']}"
    parts = [f"[{where}] epoch {rec['epoch']}/{total}:", f"train_loss {rec['train_loss']:.4f}"]
    parts.append(f"val_loss {rec['val_loss']:.4f}")
    shown = [k for k in ("val_auc", "val_dice", "val_iou") if k in rec]
    parts += [f"{k} {rec[k]:.4f}" for k in shown]
    if f"val_{rec['criterion']}" not in shown:
        parts.append(f"{rec['criterion']} {rec['criterion_value']:.4f}")
    if rec["is_best"]:
        parts.append("(best)")
    parts.append(f"lr {rec['lr']:.3g} {rec['seconds']:.1f}s")
    return " ".join(parts)


# --- the loop -------------------------------------------------------------------------


def train_model(
    model: nn.Module,
    train: TaskData,
    val: TaskData,
    ctx: RunContext,
    *,
    loss_fn: LossFn | None = None,
    params: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]] | None = None,
    recipe: TrainRecipe | None = None,
    optimization: Optimization | None = None,
    sampler: IndexSampler | None = None,
    augment: AugmentFn | None = None,
    forward: ForwardFn | None = None,
    eval_forward: ForwardFn | None = None,
    on_step_end: Callable[[int], None] | None = None,
    on_epoch_end: Callable[[int, RunContext], None] | None = None,
    name: str = "model",
    stage: str = "train",
    deployed: bool = True,
) -> TrainResult:
    """Train ``model`` with ``loss_fn`` and restore its best validation checkpoint.

    The model is moved to ``ctx.device`` (and ``channels_last`` for 2D on CUDA). RNGs are
    not re-seeded here: :meth:`TrainableMethod.fit` seeds once before building the model.

    Args:
        model: the network; ``model(x)`` must return logits (used for validation).
        train: labelled training split (groups present only for group-aware methods).
        val: labelled validation split used for early stopping and checkpoint choice.
        ctx: run context; receives one history record per epoch and ``ctx.log`` lines.
        loss_fn: ``loss_fn(outputs, batch) -> scalar``; default mean per-sample task loss.
        params: parameters to optimise (default ``model.parameters()``).
        recipe: hyper-parameters (default ``ctx.recipe``).
        optimization: a ready optimiser/schedule (overrides ``params`` and recipe optimiser).
        sampler: epoch index sampler (default seeded shuffle).
        augment: batch augmentation (default random 2D flips when ``recipe.augment``).
        forward: ``forward(model, batch) -> outputs`` for the loss (default
            ``model(batch.x)``); e.g. ``model.forward_features`` for feature-level losses.
        eval_forward: ``eval_forward(model, batch) -> logits`` for validation and the
            ``predict`` handed to ``ctx.observe_epoch`` (default ``model(batch.x)``); e.g. an
            attribute-routed network's ``model(batch.x, batch.g)``.
        on_step_end: called with the global step number after each optimiser step.
        on_epoch_end: called with ``(epoch, ctx)`` after each epoch's validation.
        name: method name for messages.
        stage: stage name for history, logs and ``ctx.progress``.
        deployed: whether this stage's weights are the model the method deploys (default).
            Only a deployed stage reports its epochs to ``ctx.observe_epoch`` (classification),
            for after-the-fact model selection; a multi-stage method passes ``deployed=False``
            for every intermediate stage (a pre-trained backbone, a teacher, a mixed model).

    Returns:
        A :class:`TrainResult`; the model holds the selected epoch's weights.

    Raises:
        TrainingError: a non-finite training loss.
        ConfigError: invalid recipe values.
    """
    t_start = time.perf_counter()
    recipe = recipe or ctx.recipe
    device = resolve_device(ctx.device)
    amp = amp_config(device, ctx.amp)
    spatial_dims = train.images.ndim - 2
    channels_last = use_channels_last(device, spatial_dims)
    criterion = resolve_criterion(recipe.criterion, ctx.task)
    if train.labels is None or val.labels is None:
        raise ConfigError(f"{name}: train and val splits must carry labels for training.")
    if len(train) < 2:
        raise ConfigError(f"{name}: the training split has {len(train)} sample(s); at least 2 are needed.")

    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # shapes are fixed within a run: let cuDNN time its kernels
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    fwd_model: nn.Module = torch.compile(model) if ctx.compile else model  # type: ignore[assignment]  # compiled module wraps model

    loss_fn = loss_fn or (lambda out, b: per_sample_loss(out, b.targets, ctx.task).mean())
    forward = forward or (lambda m, b: m(b.x))
    if augment is None:

        def augment(b: Batch) -> Batch:
            return default_augment(b, spatial_dims=spatial_dims, enabled=recipe.augment)

    sampler = sampler or ShuffleSampler(len(train), ctx.seed)
    n_steps = steps_per_epoch(len(sampler.epoch_indices(0)), recipe.batch_size, recipe.max_steps_per_epoch)
    opt = optimization or make_optimization(
        params if params is not None else model.parameters(), recipe, n_steps
    )
    scaler = amp.grad_scaler()

    src_train = ArraySource(train.images, device, labels=train.labels, groups=train.groups, channels_last=channels_last)
    src_val = ArraySource(val.images, device, labels=val.labels, groups=val.groups, channels_last=channels_last)
    observe = ctx.observe_epoch if deployed and ctx.task == "classification" else None
    observed_sources: dict[int, tuple[TaskData, ArraySource]] = {}

    history: list[dict[str, Any]] = []
    best_value, best_epoch, best_state = -math.inf, 0, None
    since_best, global_step, images_seen, epoch = 0, 0, 0, 0
    check_every = 1 if device.type != "cuda" else CUDA_NAN_CHECK_EVERY
    eval_bs = eval_batch_size(recipe)

    def check_finite(pending: list[torch.Tensor], first_step: int, epoch_: int) -> None:
        if not pending:
            return
        stacked = torch.stack(pending)
        finite = torch.isfinite(stacked)
        if bool(finite.all()):
            return
        bad = int((~finite).nonzero()[0, 0])
        kind = "NaN" if bool(torch.isnan(stacked[bad])) else "Infinite"
        raise TrainingError(
            NAN_MESSAGE.format(kind=kind, epoch=epoch_, step=first_step + bad, method=name, lr=recipe.lr)
        )

    for epoch in range(1, recipe.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        indices = sampler.epoch_indices(epoch - 1)
        lr = float(opt.optimizer.param_groups[0]["lr"])
        step_losses: list[torch.Tensor] = []
        pending: list[torch.Tensor] = []
        pending_start = 1
        for step, idx in enumerate(iter_batches(indices, recipe.batch_size, max_steps=recipe.max_steps_per_epoch), 1):
            x, y, g = src_train.gather(idx)
            batch = augment(Batch(x, y, g, idx))
            with amp.autocast():
                outputs = forward(fwd_model, batch)
                loss = loss_fn(outputs, batch)
            opt.optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
                scaler.step(opt.optimizer)
                scaler.update()
            else:
                loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
                opt.optimizer.step()
            if opt.scheduler is not None and opt.per_step:
                opt.scheduler.step()
            detached = loss.detach().float()
            step_losses.append(detached)
            pending.append(detached)
            global_step += 1
            images_seen += len(idx)
            if len(pending) >= check_every:
                check_finite(pending, pending_start, epoch)
                pending, pending_start = [], step + 1
            if on_step_end is not None:
                on_step_end(global_step)
        check_finite(pending, pending_start, epoch)
        train_seconds = time.perf_counter() - t0
        if opt.scheduler is not None and not opt.per_step:
            opt.scheduler.step()
        train_loss = float(torch.stack(step_losses).mean()) if step_losses else float("nan")

        res = evaluate_model(
            model, val, task=ctx.task, num_classes=ctx.num_classes, batch_size=eval_bs,
            device=device, amp=amp, source=src_val, forward=eval_forward,
        )
        value = criterion_value(res, criterion)
        rank_value = -math.inf if math.isnan(value) else value
        is_best = best_state is None or rank_value > best_value
        if is_best:
            best_value, best_epoch, best_state, since_best = rank_value, epoch, cpu_state(model), 0
        else:
            since_best += 1
        rec = _history_record(stage, epoch, res)
        rec.update(
            train_loss=train_loss,
            train_seconds=train_seconds,
            lr=lr,
            criterion=criterion,
            criterion_value=value,
            is_best=is_best,
        )
        if observe is not None:
            observe(stage, epoch, _epoch_predictor(
                model, val, res, observed_sources, task=ctx.task, num_classes=ctx.num_classes,
                batch_size=eval_bs, device=device, amp=amp, channels_last=channels_last, forward=eval_forward,
            ))
        rec["seconds"] = time.perf_counter() - t0
        history.append(rec)
        ctx.history.append(rec)
        ctx.log(_format_epoch(name, rec, recipe.epochs))
        if ctx.progress is not None:
            ctx.progress(stage, epoch, recipe.epochs)
        if ctx.on_epoch is not None:
            ctx.on_epoch(dict(rec))
        if on_epoch_end is not None:
            on_epoch_end(epoch, ctx)
        if recipe.patience and recipe.patience > 0 and since_best >= recipe.patience:
            ctx.log(f"[{name}] {stage}: early stop after epoch {epoch} (best epoch {best_epoch}).")
            break

    if best_state is not None:
        model.load_state_dict(best_state)
    return TrainResult(
        selected_epoch=best_epoch,
        epochs_trained=epoch,
        best_value=best_value,
        history=history,
        seconds=time.perf_counter() - t_start,
        train_images=images_seen,
    )


# --- the method base class ------------------------------------------------------------


class TrainableMethod(Method):
    """A method trained by the framework loop (:func:`train_model`).

    Hyper-parameters are ``__init__`` keyword arguments; every subclass accepts ``recipe``,
    a dict of :class:`TrainRecipe` overrides applied on top of ``ctx.recipe`` (after the
    class-level :attr:`default_recipe`).

    Override points: :meth:`build_model`, :meth:`configure_optimizer`, :meth:`forward`,
    :meth:`compute_loss`, :meth:`on_fit_start`, :meth:`on_epoch_end`,
    :meth:`make_sampler`, :meth:`augment`, :meth:`extra_state` /
    :meth:`load_extra_state` (method state such as GroupDRO's ``q``).

    Attributes set by ``fit``: ``model_``, ``device_``, ``selected_epoch_``,
    ``epochs_trained_``, ``train_result_``, ``fitted_``.

    Per-epoch observation: ``fit`` trains one deployed stage, whose epochs the runner's
    ``ctx.observe_epoch`` sees; a single-stage subclass needs nothing. A subclass that trains
    further stages with :func:`train_model` passes ``deployed=False`` for every stage but the
    deployed one; a method whose deployed model is no single trained stage (an ensemble of
    per-group models) sets ``epochs_are_checkpoints = False`` and is not observed at all.
    """

    default_recipe: ClassVar[dict[str, Any]] = {}
    selected_epoch_: int | None
    epochs_trained_: int | None

    def __init__(self, recipe: dict[str, Any] | None = None) -> None:
        self.recipe = recipe

    # -- configuration -------------------------------------------------------------------

    def recipe_for(self, ctx: RunContext) -> TrainRecipe:
        """``ctx.recipe`` updated with :attr:`default_recipe`, then with ``self.recipe``.

        Raises:
            ConfigError: an override names no recipe field.
        """
        changes = {**self.default_recipe, **(self.recipe or {})}
        return layered_recipe(ctx.recipe, changes, owner=type(self).__name__)

    def build_model(self, ctx: RunContext) -> nn.Module:
        """The network: ``ctx.backbone`` from the registry with ``ctx.backbone_kwargs``."""
        return build_backbone(
            ctx.backbone,
            in_channels=ctx.in_channels,
            num_classes=ctx.num_classes,
            spatial_dims=ctx.spatial_dims,
            task=ctx.task,
            **dict(ctx.backbone_kwargs),
        )

    def configure_optimizer(
        self,
        model: nn.Module,
        ctx: RunContext,
        *,
        recipe: TrainRecipe | None = None,
        steps_per_epoch: int = 1,
    ) -> Optimization:
        """Optimiser and schedule for ``model`` (default: the recipe's, over all parameters)."""
        return make_optimization(model.parameters(), recipe or self.recipe_for(ctx), steps_per_epoch)

    # -- hooks ---------------------------------------------------------------------------

    def forward(self, model: nn.Module, batch: Batch, ctx: RunContext) -> Any:
        """The network's logits for a batch; default ``model(batch.x)``.

        Used for training (its result is :meth:`compute_loss`'s ``outputs``), validation and
        :meth:`predict_scores`, so it must return logits. Override it for networks that
        need more than the images, e.g. ``model(batch.x, batch.g)`` for attribute-routed
        networks; ``batch.g`` is ``None`` wherever the method may not see groups (and
        ``batch.y`` is always ``None`` at prediction time).
        """
        return model(batch.x)

    def compute_loss(self, outputs: Any, batch: Batch, ctx: RunContext) -> torch.Tensor:
        """The training loss of a batch; default ``mean_i ℓ_i`` (ERM)."""
        return per_sample_loss(outputs, batch.targets, ctx.task).mean()

    def on_fit_start(self, train: TaskData, val: TaskData, ctx: RunContext) -> None:
        """Called after the model is built and ``device_`` is set, before training."""

    def on_epoch_end(self, epoch: int, ctx: RunContext) -> None:
        """Called after each epoch's validation (1-based ``epoch``)."""

    def make_sampler(self, train: TaskData, ctx: RunContext) -> IndexSampler:
        """The epoch sampler; default a seeded shuffle of the training set."""
        return ShuffleSampler(len(train), ctx.seed)

    def augment(self, batch: Batch, ctx: RunContext) -> Batch:
        """Batch augmentation; default random horizontal flips for 2D images and masks.

        Only called when ``recipe.augment`` is true.
        """
        return default_augment(batch, spatial_dims=ctx.spatial_dims)

    def extra_state(self) -> dict[str, Any]:
        """Method state beyond the network weights (saved by :meth:`state_dict`)."""
        return {}

    def load_extra_state(self, state: dict[str, Any], ctx: RunContext) -> None:
        """Restore what :meth:`extra_state` returned."""

    # -- Method API ----------------------------------------------------------------------

    def fit(self, train: TaskData, val: TaskData, ctx: RunContext) -> TrainableMethod:
        """Seed, build the model, train it with :func:`train_model`; return ``self``."""
        seed_everything(ctx.seed)
        recipe = self.recipe_for(ctx)
        self.device_ = resolve_device(ctx.device)
        model = self.build_model(ctx).to(self.device_)
        self.model_ = model
        self.on_fit_start(train, val, ctx)
        sampler = self.make_sampler(train, ctx)
        n_steps = steps_per_epoch(len(sampler.epoch_indices(0)), recipe.batch_size, recipe.max_steps_per_epoch)
        augment_enabled = recipe.augment

        def augment(b: Batch) -> Batch:
            return self.augment(b, ctx) if augment_enabled else b

        result = train_model(
            model,
            train,
            val,
            ctx,
            loss_fn=lambda out, b: self.compute_loss(out, b, ctx),
            recipe=recipe,
            forward=lambda m, b: self.forward(m, b, ctx),
            eval_forward=lambda m, b: self.forward(m, b, ctx),
            optimization=self.configure_optimizer(model, ctx, recipe=recipe, steps_per_epoch=n_steps),
            sampler=sampler,
            augment=augment,
            on_epoch_end=self.on_epoch_end,
            name=self.name or type(self).__name__,
            stage=self.name or "train",
        )
        self.train_result_ = result
        self.selected_epoch_ = result.selected_epoch
        self.epochs_trained_ = result.epochs_trained
        self.fitted_ = True
        return self

    def predict_scores(self, data: TaskData, ctx: RunContext) -> np.ndarray:
        """Softmax probabilities ``(N, C)`` or ``(N, C, *spatial)``; never reads labels."""
        self.check_fitted("predict_scores")
        return predict_proba(
            self.model_, data.without_labels(), batch_size=eval_batch_size(self.recipe_for(ctx)), amp=ctx.amp,
            forward=lambda m, b: self.forward(m, b, ctx),
        )

    def state_dict(self) -> dict[str, Any]:
        """Weights (CPU tensors), hyper-parameters, method state and selection info."""
        self.check_fitted("state_dict")
        return {
            "format": 1,
            "method": self.name or type(self).__name__,
            "params": copy.deepcopy(self.get_params()),
            "model": cpu_state(self.model_),
            "extra": self.extra_state(),
            "selected_epoch": getattr(self, "selected_epoch_", None),
            "epochs_trained": getattr(self, "epochs_trained_", None),
        }

    def load_state_dict(self, state: dict[str, Any], ctx: RunContext) -> TrainableMethod:
        """Rebuild the model for ``ctx`` and restore weights, hyper-parameters and state."""
        self.restore_params(state)
        self.device_ = resolve_device(ctx.device)
        model = self.build_model(ctx)
        with self.loading_weights(ctx):
            model.load_state_dict(state["model"])
        self.model_ = model.to(self.device_)
        if use_channels_last(self.device_, ctx.spatial_dims):
            self.model_.to(memory_format=torch.channels_last)
        self.load_extra_state(state.get("extra", {}), ctx)
        self.selected_epoch_ = state.get("selected_epoch")
        self.epochs_trained_ = state.get("epochs_trained")
        self.fitted_ = True
        return self
