"""The training core: devices, samplers, optimiser recipes, evaluation, the loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from medfairx.contracts import TaskData, TrainRecipe
from medfairx.errors import ConfigError, NotFittedError, TrainingError
from medfairx.methods.backbones import build_backbone
from medfairx.methods.base import RunContext
from medfairx.methods.device import amp_config, images_to_float, resolve_device
from medfairx.methods.losses import per_sample_loss
from medfairx.methods.sampling import (
    ShuffleSampler,
    WeightedSampler,
    iter_batches,
    steps_per_epoch,
)
from medfairx.methods.trainable import (
    Batch,
    EvalResult,
    TrainableMethod,
    classification_auc,
    criterion_value,
    default_augment,
    evaluate_model,
    make_optimization,
    resolve_criterion,
    train_model,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def squares(n: int, seed: int, size: int = 16, seg: bool = False) -> TaskData:
    """Dark noise images; a bright 5×5 square means y = 1 (classification) or is the mask."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 80, size=(n, 1, size, size)).astype(np.uint8)
    y = rng.integers(0, 2, size=n)
    masks = np.zeros((n, size, size), dtype=np.int64)
    for i in range(n):
        if y[i] or seg:
            a, b = rng.integers(0, size - 5, size=2)
            x[i, 0, a : a + 5, b : b + 5] = 220
            masks[i, a : a + 5, b : b + 5] = 1
    groups = rng.integers(0, 2, size=n)
    ids = np.array([f"s{i}" for i in range(n)])
    return TaskData(x, masks if seg else y, groups, ids, n_groups=2, group_names=("a", "b"))


def ctx_for(task: str = "classification", **recipe: object) -> RunContext:
    base = dict(epochs=2, batch_size=16, lr=3e-3, scheduler="none", patience=0)
    base.update(recipe)
    return RunContext(
        task=task,  # type: ignore[arg-type]
        num_classes=2,
        in_channels=1,
        image_size=(16, 16),
        backbone="tiny_cnn" if task == "classification" else "tiny_unet",
        recipe=TrainRecipe(**base),  # type: ignore[arg-type]
        log=lambda s: None,
    )


class Plain(TrainableMethod):
    name = "plain"


# --- helpers ------------------------------------------------------------------------


def test_resolve_device() -> None:
    assert resolve_device("cpu").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ConfigError, match="Invalid device"):
        resolve_device("gpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA"):
            resolve_device("cuda")
    assert not amp_config(torch.device("cpu"), True).enabled


def test_uint8_images_are_scaled_and_normalised() -> None:
    x = torch.tensor([0, 255, 128], dtype=torch.uint8)
    assert images_to_float(x).tolist() == pytest.approx([-2.0, 2.0, (128 / 255 - 0.5) / 0.25], abs=1e-6)
    f = torch.tensor([0.25, -3.0])
    assert images_to_float(f).tolist() == [0.25, -3.0]


def test_batches_and_samplers() -> None:
    idx = np.arange(33)
    assert [len(b) for b in iter_batches(idx, 16)] == [16, 16]  # trailing single sample dropped
    assert steps_per_epoch(33, 16) == 2 and steps_per_epoch(34, 16) == 3
    assert [len(b) for b in iter_batches(np.arange(34), 16, max_steps=2)] == [16, 16]
    s = ShuffleSampler(10, seed=3)
    assert sorted(s.epoch_indices(0)) == list(range(10))
    assert np.array_equal(s.epoch_indices(1), ShuffleSampler(10, 3).epoch_indices(1))
    assert not np.array_equal(s.epoch_indices(0), s.epoch_indices(1))
    w = WeightedSampler(np.array([1.0, 0.0, 3.0]), seed=0, num_samples=20000)
    draws = w.epoch_indices(0)
    assert np.array_equal(draws, WeightedSampler(np.array([1.0, 0.0, 3.0]), 0, 20000).epoch_indices(0))
    assert (draws == 1).sum() == 0
    assert (draws == 2).mean() == pytest.approx(0.75, abs=0.02)
    with pytest.raises(ConfigError):
        WeightedSampler(np.array([-1.0, 2.0]), seed=0)


def test_optimiser_and_schedules() -> None:
    p = [torch.nn.Parameter(torch.zeros(2))]
    recipe = TrainRecipe(optimizer="sgd", lr=0.1, momentum=0.8, weight_decay=0.01, scheduler="poly", epochs=2)
    opt = make_optimization(p, recipe, steps_per_epoch=5)
    assert isinstance(opt.optimizer, torch.optim.SGD) and opt.per_step
    assert opt.optimizer.param_groups[0]["momentum"] == 0.8
    for _ in range(3):
        opt.optimizer.step()
        opt.scheduler.step()
    assert opt.optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * (1 - 3 / 10) ** 0.9)
    step = make_optimization(p, TrainRecipe(lr=1.0, scheduler="step", step_size=2, gamma=0.5), 4)
    lrs = []
    for _ in range(5):
        lrs.append(step.optimizer.param_groups[0]["lr"])
        step.optimizer.step()
        step.scheduler.step()
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.25] and not step.per_step
    assert isinstance(make_optimization(p, TrainRecipe(optimizer="adamw"), 1).optimizer, torch.optim.AdamW)
    with pytest.raises(ConfigError, match="optimizer"):
        make_optimization(p, TrainRecipe(optimizer="lion"), 1)
    with pytest.raises(ConfigError, match="scheduler"):
        make_optimization(p, TrainRecipe(scheduler="cosine"), 1)


def test_criteria() -> None:
    assert resolve_criterion("auc", "segmentation") == "dice"
    assert resolve_criterion("worst_group_dice", "classification") == "worst_group_auc"
    with pytest.raises(ConfigError, match="criterion"):
        resolve_criterion("accuracy", "classification")
    r = EvalResult(loss=0.5, metrics={"auc": 0.8}, group_metrics={"auc": {0: 0.9, 1: 0.6, 2: float("nan")}})
    assert criterion_value(r, "worst_group_auc") == 0.6
    assert criterion_value(r, "auc") == 0.8
    assert criterion_value(r, "neg_loss") == -0.5
    assert criterion_value(EvalResult(loss=0.5, metrics={"auc": 0.8}), "worst_group_auc") == 0.8  # fallback


def test_multiclass_auc_is_macro_one_vs_rest() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    p = rng.dirichlet([1, 1, 1], 200)
    p[np.arange(200), y] += 0.3
    p /= p.sum(1, keepdims=True)
    want = roc_auc_score(y, p, multi_class="ovr", average="macro")
    assert classification_auc(y, p) == pytest.approx(want, rel=1e-9)
    yb = rng.integers(0, 2, 50)
    pb = rng.random((50, 2))
    assert classification_auc(yb, pb) == pytest.approx(roc_auc_score(yb, pb[:, 1]))


def test_augment_flips_images_and_masks_together() -> None:
    torch.manual_seed(0)
    x = torch.arange(64, dtype=torch.float32).view(4, 1, 4, 4)
    y = torch.arange(64).view(4, 4, 4)
    out = default_augment(Batch(x, y, None, np.arange(4)), spatial_dims=2)
    for i in range(4):
        flipped = torch.equal(out.x[i], x[i].flip(-1))
        assert flipped or torch.equal(out.x[i], x[i])
        assert torch.equal(out.y[i], y[i].flip(-1) if flipped else y[i])
    assert default_augment(Batch(x, y, None, np.arange(4)), spatial_dims=2, enabled=False).x is x


# --- the loop -----------------------------------------------------------------------


def test_early_stopping_restores_best_checkpoint() -> None:
    """Learn for 2 epochs, then train on flipped labels: the best epoch is 2, not the last."""
    train, val = squares(96, 0), squares(48, 1).without_groups()
    ctx = ctx_for(epochs=10, patience=3, criterion="neg_loss", augment=False)
    torch.manual_seed(0)
    model = build_backbone("tiny_cnn", in_channels=1, num_classes=2, spatial_dims=2)
    state = {"flip": False}

    def loss_fn(out: torch.Tensor, b: Batch) -> torch.Tensor:
        y = 1 - b.y if state["flip"] else b.y
        return per_sample_loss(out, y, "classification").mean()

    def on_epoch_end(epoch: int, _ctx: RunContext) -> None:
        state["flip"] = epoch >= 2

    res = train_model(model, train, val, ctx, loss_fn=loss_fn, on_epoch_end=on_epoch_end, name="t")
    values = [h["criterion_value"] for h in res.history]
    assert res.selected_epoch == int(np.argmax(values)) + 1 == 2
    assert res.epochs_trained == res.selected_epoch + 3 < 10  # stopped by patience
    assert [h["is_best"] for h in res.history].count(True) == 2
    again = evaluate_model(model, val, task="classification", num_classes=2)
    assert -again.loss == pytest.approx(values[1], rel=1e-5)  # restored weights = epoch 2
    assert ctx.history == res.history


def test_history_progress_predictions_and_groups() -> None:
    train, val = squares(64, 0), squares(40, 1)
    test = squares(24, 2)
    ctx = ctx_for(epochs=2, max_steps_per_epoch=2)
    observed: list[tuple[str, int, dict[str, np.ndarray]]] = []
    sets = {"val": val.without_labels(), "test": test.without_labels()}
    ctx.observe_epoch = lambda stage, e, predict: observed.append((stage, e, {k: predict(d) for k, d in sets.items()}))
    calls: list[tuple[str, int, int]] = []
    ctx.progress = lambda stage, e, total: calls.append((stage, e, total))
    lines: list[str] = []
    ctx.log = lines.append
    m = Plain().fit(train, val, ctx)
    assert calls == [("plain", 1, 2), ("plain", 2, 2)]
    assert len(lines) == 2 and "epoch 1/2" in lines[0] and "val_auc" in lines[0]
    rec = ctx.history[0]
    for key in ("epoch", "train_loss", "val_loss", "val_auc", "val_group_auc", "lr", "seconds"):
        assert key in rec
    assert set(rec["val_group_auc"]) == {0, 1}
    assert not any(isinstance(v, np.ndarray) for h in ctx.history for v in h.values())  # metrics only
    assert [(st, e) for st, e, _ in observed] == [("plain", 1), ("plain", 2)]
    assert observed[0][2]["val"].shape == (40, 2) and observed[0][2]["test"].shape == (24, 2)
    # the final predictions are those of the selected epoch
    sel = observed[m.selected_epoch_ - 1][2]["test"]
    assert np.allclose(m.predict_scores(test.without_labels(), ctx), sel, atol=1e-6)
    # validation metrics agree with sklearn on the observed predictions
    probs = observed[0][2]["val"]
    assert rec["val_auc"] == pytest.approx(roc_auc_score(val.labels, probs[:, 1]))
    for g in (0, 1):
        m = val.groups == g
        assert rec["val_group_auc"][g] == pytest.approx(roc_auc_score(val.labels[m], probs[m, 1]))


def test_epoch_observer_reuses_the_validation_pass_and_skips_stages_not_deployed() -> None:
    from dataclasses import replace

    torch.manual_seed(0)
    train, val = squares(64, 0), squares(40, 1)
    ctx = ctx_for(epochs=2, max_steps_per_epoch=2)
    seen: list[tuple[str, int, np.ndarray, np.ndarray]] = []
    twin = replace(val.without_labels(), images=val.images.copy())  # same pixels, another object
    ctx.observe_epoch = lambda stage, e, predict: seen.append((stage, e, predict(val), predict(twin)))
    model = build_backbone("tiny_cnn", in_channels=1, num_classes=2, spatial_dims=2)
    train_model(model, train, val, ctx, name="t", stage="warmup", deployed=False)
    assert seen == []  # an intermediate stage is not observed
    train_model(model, train, val, ctx, name="t", stage="final")
    assert [(stage, e) for stage, e, _, _ in seen] == [("final", 1), ("final", 2)]
    for _, e, reused, fresh in seen:  # the validation pass's scores = a fresh forward pass, bit for bit
        assert np.array_equal(reused, fresh)
        assert ctx.history[2 + e - 1]["val_auc"] == pytest.approx(roc_auc_score(val.labels, fresh[:, 1]))


def test_segmentation_history_has_dice_and_iou() -> None:
    train, val = squares(32, 0, seg=True), squares(16, 1, seg=True)
    ctx = ctx_for("segmentation", epochs=1, max_steps_per_epoch=2, criterion="worst_group_dice")
    Plain().fit(train, val, ctx)
    rec = ctx.history[0]
    assert {"val_dice", "val_iou", "val_group_dice", "val_group_iou"} <= set(rec)
    assert rec["criterion"] == "worst_group_dice"
    assert rec["criterion_value"] == pytest.approx(min(rec["val_group_dice"].values()))
    assert "predictions" not in rec


def test_training_is_deterministic_for_a_seed() -> None:
    train, val = squares(48, 0), squares(24, 1)

    def run(seed: int) -> np.ndarray:
        ctx = ctx_for(epochs=2, max_steps_per_epoch=2)
        ctx.seed = seed
        return Plain().fit(train, val, ctx).predict_scores(val.without_labels(), ctx)

    a, b, c = run(0), run(0), run(1)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_predict_never_reads_labels_and_needs_fit() -> None:
    train, val = squares(32, 0), squares(16, 1)
    ctx = ctx_for(epochs=1, max_steps_per_epoch=1)
    with pytest.raises(NotFittedError, match="fit"):
        Plain().predict_scores(val, ctx)
    m = Plain().fit(train, val, ctx)
    p1 = m.predict_scores(val, ctx)
    p2 = m.predict_scores(val.without_labels(), ctx)
    assert p1.dtype == np.float32 and np.array_equal(p1, p2)
    assert np.allclose(p1.sum(1), 1.0, atol=1e-5)


def test_nan_loss_raises_training_error_naming_the_step() -> None:
    train, val = squares(64, 0), squares(16, 1)
    ctx = ctx_for(epochs=1, lr=0.01)
    model = build_backbone("tiny_cnn", in_channels=1, num_classes=2, spatial_dims=2)
    steps = {"n": 0}

    def loss_fn(out: torch.Tensor, b: Batch) -> torch.Tensor:
        steps["n"] += 1
        loss = per_sample_loss(out, b.y, "classification").mean()
        return loss * float("nan") if steps["n"] == 3 else loss

    with pytest.raises(TrainingError) as err:
        train_model(model, train, val, ctx, loss_fn=loss_fn, name="mymethod")
    msg = str(err.value)
    assert "NaN loss at epoch 1 step 3 of method mymethod" in msg
    assert "recipe.lr=0.01" in msg and "check the input data" in msg


def test_bad_recipe_override_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown recipe override"):
        Plain(recipe={"learning_rate": 1.0}).recipe_for(ctx_for())
    assert Plain(recipe={"lr": 0.5}).recipe_for(ctx_for()).lr == 0.5


def test_float_images_and_3d_volumes_train() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 1, 8, 8, 8)).astype(np.float32)
    y = (x.mean(axis=(1, 2, 3, 4)) > 0).astype(np.int64)
    data = TaskData(x, y, None, np.arange(12).astype(str))
    ctx = ctx_for(epochs=1, batch_size=4)
    ctx.spatial_dims = 3
    m = Plain().fit(data, data, ctx)
    assert m.predict_scores(data.without_labels(), ctx).shape == (12, 2)
    assert math.isfinite(ctx.history[0]["train_loss"])
