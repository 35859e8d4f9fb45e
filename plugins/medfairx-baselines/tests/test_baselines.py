"""ERM and GroupDRO: registration, learning on toy data, GroupDRO's q by hand, state."""

from __future__ import annotations

import io
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

import medfairx_baselines
from medfairx.contracts import TaskData, TrainRecipe
from medfairx.errors import ConfigError, NotFittedError, TrainingError
from medfairx.methods.base import RunContext
from medfairx.methods.trainable import Batch
from medfairx.specs import MethodSpec
from medfairx_baselines.erm import ERM
from medfairx_baselines.groupdro import GroupDRO

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def squares(n: int, seed: int, seg: bool = False, size: int = 16) -> TaskData:
    """Dark noise; a bright 5×5 square means y = 1 (classification) or is the mask."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 80, size=(n, 1, size, size)).astype(np.uint8)
    y = rng.integers(0, 2, size=n)
    masks = np.zeros((n, size, size), dtype=np.int64)
    for i in range(n):
        if y[i] or seg:
            a, b = rng.integers(0, size - 5, size=2)
            x[i, 0, a : a + 5, b : b + 5] = 220
            masks[i, a : a + 5, b : b + 5] = 1
    groups = (rng.random(n) < 0.3).astype(np.int64)  # a minority group 1
    return TaskData(x, masks if seg else y, groups, np.array([f"s{i}" for i in range(n)]), 2, ("maj", "min"))


def make_ctx(task: str = "classification", **recipe: object) -> RunContext:
    base = dict(epochs=3, batch_size=16, lr=3e-3, scheduler="none", patience=0)
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


# --- registration -----------------------------------------------------------------------


def test_registration_is_lazy_and_truthful() -> None:
    got: list[MethodSpec] = []
    medfairx_baselines.register_methods(register=got.append)
    specs = {s.name: s for s in got}
    assert {"erm", "groupdro"} <= set(specs)  # other baselines of the distribution may follow
    assert specs["erm"].load() is ERM and specs["groupdro"].load() is GroupDRO
    assert not specs["erm"].tags.uses_groups_in_fit and specs["groupdro"].tags.uses_groups_in_fit
    for spec in (specs["erm"], specs["groupdro"]):
        assert isinstance(spec.target, str)
        assert spec.tags.tasks == ("classification", "segmentation") and spec.tags.spatial_dims == (2, 3)
        assert not spec.tags.uses_groups_in_predict
        assert spec.summary and spec.reference
        cls = spec.load()
        assert (cls.name, cls.tags, cls.summary) == (spec.name, spec.tags, spec.summary)
    code = "import sys, medfairx_baselines; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_params_are_sklearn_style() -> None:
    assert GroupDRO().get_params() == {"eta": 0.01, "c": 0.0, "recipe": None}
    assert ERM(recipe={"lr": 1.0}).get_params() == {"recipe": {"lr": 1.0}}


# --- learning ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [ERM, GroupDRO])
def test_classification_learns(cls: type) -> None:
    train, val = squares(192, 0), squares(96, 1)
    ctx = make_ctx(epochs=3)
    fit_val = val if cls.tags.uses_groups_in_fit else val.without_groups()
    m = cls().fit(train if cls.tags.uses_groups_in_fit else train.without_groups(), fit_val, ctx)
    assert ctx.history[-1]["val_auc"] > 0.95
    p = m.predict_scores(val.without_labels(), ctx)
    assert p.shape == (96, 2) and p.dtype == np.float32
    acc = (p.argmax(1) == val.labels).mean()
    assert acc > 0.9


@pytest.mark.parametrize("cls", [ERM, GroupDRO])
def test_segmentation_learns(cls: type) -> None:
    train, val = squares(96, 0, seg=True), squares(32, 1, seg=True)
    ctx = make_ctx("segmentation", epochs=4)
    m = cls().fit(train, val, ctx)
    assert ctx.history[-1]["val_dice"] > 0.8
    assert m.predict_scores(val.without_labels(), ctx).shape == (32, 2, 16, 16)


def test_test_params_run() -> None:
    train, val = squares(64, 0), squares(32, 1)
    for cls in (ERM, GroupDRO):
        ctx = make_ctx()
        m = cls(**cls.test_params()).fit(train, val, ctx)
        assert m.epochs_trained_ == 2


# --- GroupDRO by hand ---------------------------------------------------------------------


def _ce(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    z = logits - logits.max(1, keepdims=True)
    return -(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(1)))


def _fit_start(method: GroupDRO, n_groups: int, groups: np.ndarray) -> None:
    method.device_ = torch.device("cpu")
    data = TaskData(np.zeros((len(groups), 1, 2, 2), np.uint8), np.zeros(len(groups), np.int64), groups,
                    np.arange(len(groups)).astype(str), n_groups)
    method.on_fit_start(data, data, make_ctx())


def test_groupdro_q_update_matches_hand_computation() -> None:
    ctx = make_ctx()
    m = GroupDRO(eta=0.5)
    _fit_start(m, 3, np.array([0, 0, 1, 1, 2, 2, 2, 2]))
    assert m.q_.tolist() == pytest.approx([1 / 3] * 3)

    logits = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 3.0], [0.5, 0.5], [0.0, 0.0]], dtype=np.float32)
    y = np.array([0, 0, 1, 0, 1])
    g = np.array([0, 0, 1, 1, -1])  # group 2 absent; the last sample is in no group
    out = torch.tensor(logits, requires_grad=True)
    batch = Batch(torch.zeros(5, 1, 2, 2), torch.tensor(y), torch.tensor(g), np.arange(5))
    loss = m.compute_loss(out, batch, ctx)

    ce = _ce(logits.astype(np.float64), y)
    L = np.array([ce[:2].mean(), ce[2:4].mean(), 0.0])
    q = np.full(3, 1 / 3) * np.exp(0.5 * L)  # absent group: factor exp(0) = 1
    q /= q.sum()
    assert m.q_.tolist() == pytest.approx(q.tolist(), rel=1e-5)
    assert loss.item() == pytest.approx(float((q * L).sum()), rel=1e-5)

    # q is a constant for autograd: dLoss/dlogits_i = q_g / n_g * dCE_i/dlogits_i
    loss.backward()
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    dce = p - np.eye(2)[y]
    expected = np.zeros_like(dce)
    for i, gi in enumerate(g):
        if gi >= 0:
            expected[i] = q[gi] / 2 * dce[i]
    assert out.grad is not None and np.allclose(out.grad.numpy(), expected, atol=1e-6)

    # q persists: a second batch (only group 2) starts from the first batch's q
    logits2 = np.array([[0.0, 2.0], [1.0, 0.0]], dtype=np.float32)
    y2, g2 = np.array([0, 0]), np.array([2, 2])
    m.compute_loss(torch.tensor(logits2), Batch(torch.zeros(2, 1, 2, 2), torch.tensor(y2), torch.tensor(g2),
                                               np.arange(2)), ctx)
    L2 = np.array([0.0, 0.0, _ce(logits2.astype(np.float64), y2).mean()])
    q2 = q * np.exp(0.5 * L2)
    q2 /= q2.sum()
    assert m.q_.tolist() == pytest.approx(q2.tolist(), rel=1e-5)


def test_groupdro_adjustment_uses_training_group_sizes() -> None:
    ctx = make_ctx()
    m = GroupDRO(eta=1.0, c=2.0)
    _fit_start(m, 2, np.array([0] * 4 + [1] * 16))  # N = (4, 16): adj = (1.0, 0.5)
    logits = torch.zeros(2, 2)  # CE = log 2 for both samples
    batch = Batch(torch.zeros(2, 1, 2, 2), torch.tensor([0, 1]), torch.tensor([0, 0]), np.arange(2))
    m.compute_loss(logits, batch, ctx)
    raw = np.array([math.exp(math.log(2) + 1.0), math.exp(0.0 + 0.5)])  # group 1 absent: L=0 + adj
    assert m.q_.tolist() == pytest.approx((raw / raw.sum()).tolist(), rel=1e-5)


def test_groupdro_needs_groups() -> None:
    train, val = squares(32, 0), squares(16, 1)
    with pytest.raises(ConfigError, match="uses_groups_in_fit"):
        GroupDRO().fit(train.without_groups(), val, make_ctx(epochs=1))


# --- state, errors ------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [ERM, GroupDRO])
def test_state_dict_round_trip(cls: type) -> None:
    train, val = squares(64, 0), squares(32, 1)
    ctx = make_ctx(epochs=2, max_steps_per_epoch=3)
    m = cls(**({"eta": 0.2} if cls is GroupDRO else {})).fit(train, val, ctx)
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    fresh = cls().load_state_dict(state, make_ctx())
    assert fresh.get_params() == m.get_params()
    assert fresh.selected_epoch_ == m.selected_epoch_
    a = m.predict_scores(val.without_labels(), ctx)
    b = fresh.predict_scores(val.without_labels(), ctx)
    assert np.array_equal(a, b)
    if cls is GroupDRO:
        assert torch.equal(fresh.q_, m.q_.cpu())
        assert not torch.allclose(m.q_, torch.full((2,), 0.5))  # q moved during training


def test_predict_before_fit_raises() -> None:
    with pytest.raises(NotFittedError, match="call fit"):
        ERM().predict_scores(squares(4, 0).without_labels(), make_ctx())
    with pytest.raises(NotFittedError):
        GroupDRO().state_dict()


def test_divergence_raises_training_error() -> None:
    train, val = squares(64, 0), squares(16, 1)
    ctx = make_ctx(epochs=2, lr=1e30)
    with pytest.raises(TrainingError, match=r"loss at epoch \d+ step \d+ of method erm; lower the learning rate "
                                            r"\(recipe.lr=1e\+30\)"):
        ERM().fit(train, val, ctx)


def test_nan_input_raises_training_error() -> None:
    train, val = squares(32, 0), squares(16, 1)
    x = train.images.astype(np.float32)
    x[:] = np.nan
    bad = TaskData(x, train.labels, train.groups, train.sample_ids, 2)
    with pytest.raises(TrainingError, match="NaN loss at epoch 1 step 1 of method groupdro"):
        GroupDRO().fit(bad, val, make_ctx(epochs=1))
