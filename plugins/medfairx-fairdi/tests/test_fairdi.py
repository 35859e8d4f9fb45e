"""FairDi: KL helpers on hand examples, teacher selection, eq. (3), frozen backbone, end to end."""

from __future__ import annotations

import math
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import medfairx_fairdi
from medfairx.errors import ConfigError, NotFittedError
from medfairx.methods.backbones import build_backbone
from medfairx.methods.fis import fis_weights, group_distances_batch
from medfairx.methods.trainable import Batch, train_model
from medfairx.specs import MethodSpec
from medfairx.testing import make_cpu_run_context, make_toy_splits
from medfairx_fairdi.distill import (
    binary_kl,
    distillation_kl,
    distillation_objective,
    kl_divergence,
    select_by_group,
)
from medfairx_fairdi.heads import HeadOnFrozenBackbone, fresh_head, split_head
from medfairx_fairdi.method import FairDi

pytestmark = pytest.mark.usefixtures("one_torch_thread")


FAST = {"ot_backend": "wasserstein_1d", "cutmix_prob": 1.0, "recipe": {"epochs": 2, "max_steps_per_epoch": 2, "batch_size": 16}}


def sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def bkl(p: float, q: float) -> float:
    return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))


# --- registration -----------------------------------------------------------------------


def test_registration_is_lazy_and_truthful() -> None:
    got: list[MethodSpec] = []
    medfairx_fairdi.register_methods(register=got.append)
    (spec,) = got
    assert spec.name == "fairdi" and isinstance(spec.target, str)
    t = spec.tags
    assert t.uses_groups_in_fit and not t.uses_groups_in_predict and t.multi_group
    assert set(t.tasks) == {"classification", "segmentation"}
    cls = spec.load()
    assert cls is FairDi and (cls.name, cls.tags, cls.summary) == (spec.name, spec.tags, spec.summary)
    code = "import sys, medfairx_fairdi; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- KL helpers -------------------------------------------------------------------------


def test_binary_kl_both_directions_by_hand() -> None:
    p, q = torch.tensor(0.8), torch.tensor(0.5)
    assert float(binary_kl(p, q)) == pytest.approx(0.8 * math.log(1.6) + 0.2 * math.log(0.4), abs=1e-6)
    assert float(binary_kl(p, q)) == pytest.approx(0.192745, abs=1e-5)
    assert float(binary_kl(q, p)) == pytest.approx(0.223144, abs=1e-5)  # KL is not symmetric
    assert float(binary_kl(p, p)) == pytest.approx(0.0, abs=1e-7)
    # the categorical form over two classes is the binary form of P(class 1)
    two = kl_divergence(torch.tensor([[0.2, 0.8]]), torch.tensor([[0.5, 0.5]]))
    assert float(two) == pytest.approx(float(binary_kl(p, q)), abs=1e-6)


def test_kl_clamps_degenerate_probabilities() -> None:
    eps = 1e-7
    value = float(binary_kl(torch.tensor(0.0), torch.tensor(1.0)))
    expected = eps * math.log(eps / (1 - eps)) + (1 - eps) * math.log((1 - eps) / eps)
    assert math.isfinite(value) and value == pytest.approx(expected, rel=1e-4)
    assert value == pytest.approx(math.log(1e7), rel=1e-3)
    assert torch.isfinite(kl_divergence(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]))).all()


def test_distillation_kl_directions_by_hand() -> None:
    zs = torch.tensor([[0.0, 1.0]])
    zt = torch.tensor([[0.0, 3.0]])
    tau = 1.5
    p_s, p_t = sigmoid(1.0), sigmoid(3.0 / tau)
    paper = float(distillation_kl(zs, zt, tau=tau, direction="paper"))
    assert paper == pytest.approx(bkl(p_s, p_t), abs=1e-6)  # KL(p_s || p_t^tau), no tau on the student
    hinton = float(distillation_kl(zs, zt, tau=tau, direction="hinton"))
    assert hinton == pytest.approx(bkl(p_t, sigmoid(1.0 / tau)), abs=1e-6)  # KL(p_t^tau || p_s^tau)
    assert paper != pytest.approx(hinton, abs=1e-3)
    with pytest.raises(ConfigError, match="kd_direction"):
        distillation_kl(zs, zt, tau=tau, direction="sideways")


def test_distillation_kl_segmentation_averages_pixels() -> None:
    zs = torch.tensor([[[[0.0, 1.0], [2.0, -1.0]], [[1.0, 0.0], [0.0, 0.0]]]])  # (1, 2, 2, 2)
    zt = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]], [[0.0, 2.0], [1.0, -2.0]]]])
    tau = 2.0
    pix = []
    for i in range(2):
        for j in range(2):
            ps = sigmoid(float(zs[0, 1, i, j] - zs[0, 0, i, j]))
            pt = sigmoid(float(zt[0, 1, i, j] - zt[0, 0, i, j]) / tau)
            pix.append(bkl(ps, pt))
    out = distillation_kl(zs, zt, tau=tau)
    assert out.shape == (1,) and float(out) == pytest.approx(float(np.mean(pix)), abs=1e-6)


def test_select_by_group_takes_each_samples_own_teacher() -> None:
    stacked = torch.arange(3 * 4 * 2, dtype=torch.float32).view(3, 4, 2)  # teacher k, sample i
    groups = torch.tensor([2, 0, -1, 1])
    sel, valid = select_by_group(stacked, groups)
    assert valid.tolist() == [True, True, False, True]
    assert torch.equal(sel[0], stacked[2, 0]) and torch.equal(sel[1], stacked[0, 1]) and torch.equal(sel[3], stacked[1, 3])
    assert torch.equal(sel[2], torch.zeros(2))


def test_distillation_objective_formula() -> None:
    kl = torch.tensor([0.2, 0.4])
    losses = torch.tensor([1.0, 3.0])
    w = torch.tensor([0.3, 0.7])
    lam, tau = 0.95, 1.5
    want = np.mean([lam * tau**2 * 0.2 + (1 - lam) * 0.3 * 1.0, lam * tau**2 * 0.4 + (1 - lam) * 0.7 * 3.0])
    assert float(distillation_objective(kl, losses, w, lam=lam, tau=tau)) == pytest.approx(want, abs=1e-6)
    masked = distillation_objective(kl, losses, w, lam=lam, tau=tau, kl_mask=torch.tensor([True, False]))
    want2 = np.mean([lam * tau**2 * 0.2 + (1 - lam) * 0.3, (1 - lam) * 0.7 * 3.0])
    assert float(masked) == pytest.approx(want2, abs=1e-6)


def test_student_loss_is_eq3_with_fis_weights_and_own_teacher() -> None:
    torch.manual_seed(0)
    n = 12
    zs = torch.randn(n, 2, requires_grad=True)
    zt = torch.randn(3, n, 2)
    y = torch.randint(0, 2, (n,))
    g = torch.tensor([0, 1, 2] * 4)
    batch = Batch(torch.zeros(n, 1, 4, 4), y, g, np.arange(n))
    m = FairDi(lam=0.9, tau=2.0, kd_direction="hinton", ot_backend="wasserstein_1d")
    got = m.student_loss(zs, zt, batch, "classification")
    losses = torch.nn.functional.cross_entropy(zs, y, reduction="none")
    dist = group_distances_batch(losses, g, backend="wasserstein_1d")
    w = fis_weights(losses, g, dist, c=0.5, variant="fairdi")
    own = torch.stack([zt[int(g[i]), i] for i in range(n)])
    kl = distillation_kl(zs, own, tau=2.0, direction="hinton")
    want = (0.9 * 4.0 * kl + 0.1 * w * losses).mean()
    assert float(got.detach()) == pytest.approx(float(want.detach()), abs=1e-6)
    got.backward()
    assert zs.grad is not None and torch.isfinite(zs.grad).all()
    # a teacher that agrees with the sample's own group leaves only the weighted CE
    zt_same = torch.stack([zs.detach() * 1.0] * 3)
    m2 = FairDi(lam=1.0, tau=1.0, ot_backend="wasserstein_1d")
    assert float(m2.student_loss(zs.detach(), zt_same, batch, "classification")) == pytest.approx(0.0, abs=1e-6)
    # ... and the teacher of another group does not
    shuffled = zt_same.clone()
    shuffled[0] = -shuffled[0]
    assert float(m2.student_loss(zs.detach(), shuffled, batch, "classification")) > 1e-3


# --- backbone / head split --------------------------------------------------------------


@pytest.mark.parametrize("task,name", [("classification", "tiny_cnn"), ("segmentation", "tiny_unet")])
def test_split_head_reproduces_the_network(task: str, name: str) -> None:
    torch.manual_seed(0)
    net = build_backbone(name, in_channels=1, num_classes=2, spatial_dims=2, task=task).eval()
    x = torch.randn(3, 1, 18, 18)
    with torch.no_grad():
        full = net(x)
        backbone, head = split_head(net, task)
        assert torch.allclose(head(backbone(x)), full, atol=1e-5)
    new = fresh_head(head)
    assert type(new) is type(head) and not torch.equal(new.weight, head.weight)


def test_frozen_backbone_stays_in_eval_and_unchanged() -> None:
    torch.manual_seed(0)
    s = make_toy_splits("classification")
    ctx = make_cpu_run_context("classification")
    net = build_backbone("tiny_cnn", in_channels=1, num_classes=2, spatial_dims=2)
    backbone, head = split_head(net, "classification")
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    model = HeadOnFrozenBackbone(backbone, fresh_head(head))
    model.train()
    assert model.head.training and not any(m.training for m in backbone.modules())
    head_before = model.head.weight.detach().clone()
    train_model(model, s["train"], s["val"], ctx, params=model.head.parameters())
    after = backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # incl. BN running stats
    assert not torch.equal(head_before, model.head.weight)
    assert all(p.grad is None for p in backbone.parameters())


# --- end to end -------------------------------------------------------------------------


def test_fit_predict_classification_end_to_end() -> None:
    s = make_toy_splits("classification", n_groups=3)
    ctx = make_cpu_run_context("classification", epochs=2)
    from medfairx.runner.epochs import epoch_recorder

    ctx.observe_epoch, observed = epoch_recorder(
        {"val": s["val"].without_labels(), "test": s["test"].without_labels()}, method="fairdi")
    m = FairDi(**FAST)
    with pytest.raises(NotFittedError):
        m.predict_scores(s["test"], ctx)
    assert m.fit(s["train"], s["val"], ctx) is m
    assert sorted(m.teachers_) == ["0", "1", "2"]  # one teacher per group
    stages = [h["stage"] for h in ctx.history]
    assert stages[:2] == ["backbone", "backbone"] and stages[-1] == "student"
    assert {"teacher:g0", "teacher:g1", "teacher:g2"} <= set(stages)
    assert observed and all(r.stage == "student" for r in observed)  # selection sees the student only
    assert set(observed[0].scores) == {"val", "test"}
    assert m.selected_epoch_ == m.stage_results_["student"]["selected_epoch"]
    blind = s["test"].without_labels().without_groups()  # no attribute at inference
    p = m.predict_scores(blind, ctx)
    assert p.shape == (24, 2) and np.allclose(p.sum(1), 1, atol=1e-5)
    assert np.allclose(p, m.predict_scores(s["test"], ctx))
    state = pickle.loads(pickle.dumps(m.state_dict()))
    again = FairDi(**FAST).load_state_dict(state, ctx)
    assert np.allclose(again.predict_scores(blind, ctx), p, atol=1e-6)


def test_fit_predict_segmentation_and_hinton() -> None:
    s = make_toy_splits("segmentation", n_groups=2)
    ctx = make_cpu_run_context("segmentation", epochs=1)
    m = FairDi(kd_direction="hinton", **FAST).fit(s["train"], s["val"], ctx)
    assert sorted(m.teachers_) == ["0", "1"]
    assert isinstance(m.student_, nn.Conv2d)
    p = m.predict_scores(s["test"].without_groups(), ctx)
    assert p.shape == (24, 2, 16, 16) and np.allclose(p.sum(1), 1, atol=1e-5)


def test_needs_groups_and_valid_options() -> None:
    s = make_toy_splits("classification")
    ctx = make_cpu_run_context("classification")
    with pytest.raises(ConfigError, match="group codes"):
        FairDi(**FAST).fit(s["train"].without_groups(), s["val"], ctx)
    with pytest.raises(ConfigError, match="kd_direction"):
        FairDi(kd_direction="both").fit(s["train"], s["val"], ctx)
    with pytest.raises(ConfigError, match="recipe override"):
        FairDi(recipe={"epochz": 1}).fit(s["train"], s["val"], ctx)
