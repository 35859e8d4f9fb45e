"""SPARE: perturbation distances on linear models, weights by hand, routing, sharing, end to end."""

from __future__ import annotations

import math
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import medfairx_spare
from medfairx.contracts import TaskData
from medfairx.errors import ConfigError
from medfairx.methods.backbones import build_backbone
from medfairx.specs import MethodSpec
from medfairx.testing import make_cpu_run_context, make_toy_splits
from medfairx_spare.method import Spare, weighted_loss
from medfairx_spare.perturbation import MIN_SEARCH_ROWS, minimal_perturbation, perturbation_distances
from medfairx_spare.sharing import BranchedNet, build_branched
from medfairx_spare.weights import (
    SpareWeights,
    combined_distance,
    similarity_distance,
    spare_weights,
    weights_from_distance,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


W = torch.tensor([3.0, 4.0])
B = -1.0


class Linear2(nn.Module):
    """Logits ``[0, w·x + b]``: class 1 iff ``w·x + b > 0``; boundary distance ``|w·x+b|/‖w‖``."""

    def __init__(self, w: torch.Tensor = W, b: float = B) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.b = nn.Parameter(torch.tensor(float(b)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.flatten(1) @ self.w + self.b
        return torch.stack([torch.zeros_like(z), z], dim=1)


class Const(nn.Module):
    """The same logits for every input."""

    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.register_buffer("z", torch.tensor(logits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.z.expand(x.shape[0], -1)


def points(seed: int = 0, n: int = 10) -> torch.Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed)) * 0.3


# --- registration -----------------------------------------------------------------------


def test_registration_is_lazy_and_truthful() -> None:
    got: list[MethodSpec] = []
    medfairx_spare.register_methods(register=got.append)
    (spec,) = got
    assert spec.name == "spare" and isinstance(spec.target, str)
    assert spec.tags.uses_groups_in_fit and spec.tags.uses_groups_in_predict
    assert spec.tags.tasks == ("classification",)
    cls = spec.load()
    assert cls is Spare and (cls.name, cls.tags) == (spec.name, spec.tags)
    code = "import sys, medfairx_spare; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- minimal perturbations --------------------------------------------------------------


@pytest.mark.parametrize("method,rtol,atol", [("deepfool", 0.021, 1e-4), ("adam", 0.03, 0.015)])
def test_minimal_perturbation_matches_linear_distance(method: str, rtol: float, atol: float) -> None:
    model, x = Linear2(), points()
    analytic = ((x @ W + B).abs() / W.norm()).numpy()
    res = minimal_perturbation(model, x, method=method)
    assert bool(res.flipped.all())
    before = model(x).argmax(1)
    after = model(x + res.perturbation).argmax(1)
    assert bool((after != before).all())  # the perturbation flips the decision
    assert np.allclose(res.perturbation.flatten(1).norm(dim=1).numpy(), res.distance.numpy(), atol=1e-6)
    assert np.all(res.distance.numpy() >= analytic - 1e-6)  # never below the true minimum
    assert np.allclose(res.distance.numpy(), analytic, rtol=rtol, atol=atol)
    assert all(p.grad is None for p in model.parameters())


def test_targeted_perturbation_is_zero_when_already_on_target() -> None:
    model, x = Linear2(), points(1)
    pred = model(x).argmax(1)
    res = minimal_perturbation(model, x, torch.ones_like(pred), targeted=True, method="deepfool")
    on_target = pred == 1
    assert on_target.any() and (~on_target).any()
    assert torch.all(res.distance[on_target] == 0)
    analytic = ((x @ W + B).abs() / W.norm())[~on_target]
    assert torch.allclose(res.distance[~on_target], analytic * 1.02, rtol=1e-3)


def test_perturbation_distances_normalises_uint8_like_training() -> None:
    model = Linear2(torch.tensor([1.0, 0.0]), 0.0)
    images = np.array([[[[127 + 64, 0]]], [[[127 - 64, 0]]]], dtype=np.uint8)  # (2, 1, 1, 2)
    d = perturbation_distances(model, images, method="deepfool", overshoot=0.0)
    x0 = (images[:, 0, 0, 0] / 255.0 - 0.5) / 0.25
    assert np.allclose(d, np.abs(x0), rtol=1e-3)



def _cnn_and_inputs() -> tuple[nn.Module, torch.Tensor]:
    """An eval-mode ``tiny_cnn`` (3 classes) and inputs whose Adam searches end at many steps."""
    torch.manual_seed(0)
    model = build_backbone("tiny_cnn", in_channels=1, num_classes=3, spatial_dims=2, task="classification").eval()
    return model, torch.randn(40, 1, 8, 8, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("targeted", [False, True])
def test_adam_on_active_samples_equals_full_batch_and_per_sample_searches(targeted: bool) -> None:
    model, x = _cnn_and_inputs()
    cls = torch.arange(len(x)) % 3 if targeted else None
    kw = {"targeted": targeted, "lr": 0.05, "steps": 12}
    fast = minimal_perturbation(model, x, cls, **kw)
    full = minimal_perturbation(model, x, cls, active_only=False, **kw)
    assert len(set(fast.steps.tolist())) >= 6  # samples leave the batch at many different steps
    assert int((fast.steps < 0).sum()) < MIN_SEARCH_ROWS < len(x)  # the last steps run on a filled-up batch
    for got, want in zip((fast.distance, fast.flipped, fast.steps, fast.perturbation),
                         (full.distance, full.flipped, full.steps, full.perturbation), strict=True):
        assert torch.equal(got, want)
    one = [minimal_perturbation(model, x[i : i + 1], None if cls is None else cls[i : i + 1], active_only=False, **kw)
           for i in range(len(x))]
    # one-sample batches run other convolution kernels (float rounding), hence the tolerances
    assert torch.equal(fast.steps, torch.cat([r.steps for r in one]))
    assert torch.allclose(fast.distance, torch.cat([r.distance for r in one]), rtol=0, atol=1e-6)
    assert torch.allclose(fast.perturbation, torch.cat([r.perturbation for r in one]), rtol=0, atol=1e-4)



class SizeLog(nn.Module):
    """Records the batch size of every call of the wrapped network."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.sizes = net, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(int(x.shape[0]))
        return self.net(x)


def test_adam_search_shrinks_the_batch_but_not_below_the_kernel_threshold() -> None:
    model, x = _cnn_and_inputs()
    logged = SizeLog(model)
    res = minimal_perturbation(logged, x, lr=0.05, steps=12)
    unfinished = len(x) - int(res.flipped.sum())
    assert logged.sizes[0] == len(x) and min(logged.sizes) == max(MIN_SEARCH_ROWS, unfinished)
    assert len(set(logged.sizes)) > 2  # the batch shrinks step by step
    small = SizeLog(model)
    minimal_perturbation(small, x[:10], lr=0.05, steps=12)
    assert set(small.sizes) == {10}  # a batch below the threshold is never split


def test_spare_weights_on_active_samples_equal_full_batch_weights() -> None:
    model, x = _cnn_and_inputs()
    torch.manual_seed(1)
    group_model = build_backbone("tiny_cnn", in_channels=1, num_classes=2, spatial_dims=2, task="classification")
    images = x.numpy()
    kw = {"alpha": 0.5, "batch_size": 20, "lr": 0.05, "steps": 12}
    fast = spare_weights(model, group_model, images, 1, **kw)
    full = spare_weights(model, group_model, images, 1, active_only=False, **kw)
    assert np.array_equal(fast.delta_u, full.delta_u) and np.array_equal(fast.delta_s, full.delta_s)
    assert np.array_equal(fast.weights, full.weights) and np.any(fast.delta_s > 0)


# --- weights ----------------------------------------------------------------------------


def test_similarity_distance_zero_when_group_predictor_already_says_t() -> None:
    group_model = Linear2()
    x = points(5, 12)
    images = x.view(12, 1, 1, 2).numpy().astype(np.float32)
    ds = similarity_distance(group_model, images, 1, method="deepfool")
    says_t = (x @ W + B > 0).numpy()
    assert says_t.any() and (~says_t).any()
    assert np.all(ds[says_t] == 0.0)
    analytic = ((x @ W + B).abs() / W.norm()).numpy()
    assert np.all(ds[~says_t] > 0) and np.allclose(ds[~says_t], 1.02 * analytic[~says_t], rtol=1e-3)


def test_weights_are_exp_of_minus_combined_distance() -> None:
    du, ds = np.array([0.0, 1.0, 2.0]), np.array([0.0, 0.5, 4.0])
    delta = combined_distance(du, ds, 0.5)
    assert np.allclose(delta, [0.0, 0.75, 3.0])
    assert np.allclose(weights_from_distance(delta), [1.0, math.exp(-0.75), math.exp(-3.0)])
    assert np.allclose(weights_from_distance(delta, delta_scale=True), [1.0, math.exp(-1.0), math.exp(-4.0)])
    assert np.allclose(combined_distance(du, ds, 1.0), du) and np.allclose(combined_distance(du, ds, 0.0), ds)
    with pytest.raises(ConfigError, match="alpha"):
        combined_distance(du, ds, 1.5)


def test_spare_weights_combine_utility_and_similarity() -> None:
    ref = Linear2(torch.tensor([1.0, -2.0]), 0.3)
    grp = Linear2()
    x = points(3, 16)
    images = x.view(16, 1, 1, 2).numpy().astype(np.float32)
    sw = spare_weights(ref, grp, images, 1, alpha=0.3, method="deepfool")
    assert np.allclose(sw.weights, np.exp(-(0.3 * sw.delta_u + 0.7 * sw.delta_s)))
    assert np.all((sw.weights > 0) & (sw.weights <= 1))
    ref_analytic = (x @ torch.tensor([1.0, -2.0]) + 0.3).abs() / math.sqrt(5.0)
    assert np.allclose(sw.delta_u, 1.02 * ref_analytic.numpy(), rtol=1e-3, atol=2e-4)  # DeepFool's +1e-4 step
    assert np.all(sw.delta_s[(x @ W + B > 0).numpy()] == 0)


def test_sanity_statistics() -> None:
    sw = SpareWeights(0, np.zeros(4), np.zeros(4), np.zeros(4), np.array([0.9, 0.85, 0.5, 0.1]))
    stats = sw.sanity(np.array([0, 0, 0, 1]))
    assert stats["in_group_share_above"] == pytest.approx(2 / 3)
    assert stats["in_group_mean"] == pytest.approx(0.75) and stats["out_group_mean"] == pytest.approx(0.1)


def test_weighted_loss_normalisations() -> None:
    losses, w = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 0.5, 0.0])
    assert float(weighted_loss(losses, w, "mean")) == pytest.approx(2 / 3)
    assert float(weighted_loss(losses, w, "weights")) == pytest.approx(4 / 3)


# --- routing ----------------------------------------------------------------------------


def _routed_spare(route: str) -> Spare:
    m = Spare(route=route)
    m.group_models_ = {0: Const([2.0, 0.0]), 1: Const([0.0, 3.0])}
    m.group_predictor_ = Const([0.0, 1.0])  # predicts group 1 for everyone
    m.fitted_ = True
    return m


def test_routing_by_true_group_and_by_predicted_group() -> None:
    ctx = make_cpu_run_context("classification")
    data = TaskData(np.zeros((5, 1, 4, 4), np.uint8), None, np.array([0, 1, 1, 0, -1]), np.arange(5).astype(str), 2)
    p0 = torch.softmax(torch.tensor([2.0, 0.0]), 0).numpy()
    p1 = torch.softmax(torch.tensor([0.0, 3.0]), 0).numpy()
    out = _routed_spare("true").predict_scores(data, ctx)
    assert np.allclose(out, [p0, p1, p1, p0, p1], atol=1e-6)  # -1 goes where f_g says (group 1)
    out = _routed_spare("predicted").predict_scores(data, ctx)
    assert np.allclose(out, [p1] * 5, atol=1e-6)
    with pytest.raises(ConfigError, match="data.groups is None"):
        _routed_spare("true").predict_scores(data.without_groups(), ctx)


# --- partial sharing --------------------------------------------------------------------


@pytest.mark.parametrize(
    "backbone,sharing", [("tiny_cnn", "mini"), ("tiny_cnn", "half"), ("tiny_cnn", "full"), ("resnet18", "half")]
)
def test_branched_networks_start_as_copies(backbone: str, sharing: str) -> None:
    torch.manual_seed(0)
    net = build_backbone(backbone, in_channels=1, num_classes=2, spatial_dims=2).eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        want = net(x)
        b = build_branched(net, sharing, 3).eval()
        assert isinstance(b, BranchedNet) and b.forward_all(x).shape == (3, 2, 2)
        for k in range(3):
            assert torch.allclose(b.forward_branch(x, k), want, atol=1e-5)
    own = {id(p) for p in b.branches[0].parameters()}
    assert not own & {id(p) for p in b.branches[1].parameters()}  # group-specific parameters
    assert (len(own) == 0) == (sharing == "full")
    if sharing == "half" and backbone == "resnet18":
        names = {n.split(".")[0] for n, _ in b.branches[0].named_parameters()}
        assert len(names) >= 2 and not any("layer1" in n for n, _ in b.branches[0].named_parameters())


# --- end to end -------------------------------------------------------------------------


def test_fit_predict_end_to_end_with_sanity_log() -> None:
    s = make_toy_splits("classification", n_groups=3)
    lines: list[str] = []
    ctx = make_cpu_run_context("classification", epochs=2, log=lines.append)
    m = Spare(**Spare.test_params())
    assert m.fit(s["train"], s["val"], ctx) is m
    assert sorted(m.group_models_) == [0, 1, 2] and sorted(m.weights_) == [0, 1, 2]
    assert sum("in-group weights > 0.8" in line for line in lines) == 3
    stages = {h["stage"] for h in ctx.history}
    assert {"reference:g0", "group_predictor", "group_model:g2"} <= stages
    assert not any("predictions" in h for h in ctx.history)
    for sw in m.weights_.values():
        assert sw.weights.shape == (48,) and np.all((sw.weights > 0) & (sw.weights <= 1))
    p = m.predict_scores(s["test"].without_labels(), ctx)
    assert p.shape == (24, 2) and np.allclose(p.sum(1), 1, atol=1e-5)
    state = pickle.loads(pickle.dumps(m.state_dict()))
    again = Spare(**Spare.test_params()).load_state_dict(state, ctx)
    assert np.allclose(again.predict_scores(s["test"], ctx), p, atol=1e-6)


def test_fit_with_sharing_and_deepfool() -> None:
    s = make_toy_splits("classification", n_groups=2)
    ctx = make_cpu_run_context("classification", epochs=1)
    m = Spare(**{**Spare.test_params(), "sharing": "mini", "perturb": "deepfool", "deepfool_iters": 3,
                 "loss_norm": "weights", "delta_scale": True}).fit(s["train"], s["val"], ctx)
    assert m.shared_net_ is not None and "group_models" in m.selected_epochs_
    p = m.predict_scores(s["test"], ctx)
    assert p.shape == (24, 2)
    state = pickle.loads(pickle.dumps(m.state_dict()))
    again = Spare(**{**Spare.test_params(), "sharing": "mini"}).load_state_dict(state, ctx)
    assert np.allclose(again.predict_scores(s["test"], ctx), p, atol=1e-6)


def test_rejects_bad_options_and_missing_groups() -> None:
    s = make_toy_splits("classification")
    ctx = make_cpu_run_context("classification")
    with pytest.raises(ConfigError, match="sharing"):
        Spare(sharing="most").fit(s["train"], s["val"], ctx)
    with pytest.raises(ConfigError, match="group codes"):
        Spare().fit(s["train"].without_groups(), s["val"], ctx)
