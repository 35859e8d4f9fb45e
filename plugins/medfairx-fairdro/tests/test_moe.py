"""The dMoE layer and network against hand computations (docs/methods.md §6, "dMoE layer")."""

from __future__ import annotations

import pytest
import torch

from medfairx.errors import ConfigError
from medfairx_fairdro.moe import Expert, NoisyTopkRouter, SparseMoE
from medfairx_fairdro.networks import DMoEUNet


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_expert_architecture() -> None:
    e = Expert(6, width=4, dropout=0.1)
    kinds = [type(m).__name__ for m in e]
    assert kinds == ["Linear", "ReLU", "Linear", "Dropout"]
    assert (e[0].in_features, e[0].out_features, e[2].out_features) == (6, 24, 6)
    assert e[3].p == 0.1


def test_topk_gates_sum_to_one_and_zero_elsewhere() -> None:
    router = NoisyTopkRouter(5, n_experts=8, top_k=2)
    x = torch.randn(3, 7, 5)
    for mode in (True, False):
        router.train(mode)
        gates, idx = router(x)
        assert gates.shape == (3, 7, 8) and idx.shape == (3, 7, 2)
        assert torch.allclose(gates.sum(-1), torch.ones(3, 7))
        assert ((gates > 0).sum(-1) == 2).all()
        kept = torch.zeros_like(gates, dtype=torch.bool).scatter(-1, idx, True)
        assert (gates[~kept] == 0).all()


def test_eval_gates_are_softmax_of_the_top_k_clean_logits() -> None:
    router = NoisyTopkRouter(4, n_experts=5, top_k=2).eval()
    x = torch.randn(10, 4)
    logits = router.route(x)
    gates, idx = router(x)
    top, ref_idx = logits.topk(2, dim=-1)
    assert torch.equal(idx, ref_idx)
    expected = torch.zeros_like(logits).scatter(-1, ref_idx, torch.softmax(top, dim=-1))
    assert torch.allclose(gates, expected, atol=1e-6)


def test_router_noise_only_in_training_unless_noise_eval() -> None:
    x = torch.randn(64, 4)
    router = NoisyTopkRouter(4, n_experts=8, top_k=2)
    router.eval()
    assert torch.equal(router.noisy_logits(x), router.route(x))
    assert torch.equal(router(x)[0], router(x)[0])  # deterministic at inference
    router.train()
    assert not torch.equal(router.noisy_logits(x), router.route(x))
    noisy = NoisyTopkRouter(4, n_experts=8, top_k=2, noise_eval=True).eval()
    assert not torch.equal(noisy.noisy_logits(x), noisy.route(x))


def test_noise_scale_is_softplus_of_the_noise_logits() -> None:
    router = NoisyTopkRouter(3, n_experts=4, top_k=1).train()
    x = torch.randn(5, 3)
    torch.manual_seed(7)
    got = router.noisy_logits(x)
    torch.manual_seed(7)
    eps = torch.randn(5, 4)
    expected = router.route(x) + eps * torch.nn.functional.softplus(router.noise(x))
    assert torch.allclose(got, expected)


def _dense_reference(moe: SparseMoE, x: torch.Tensor, router: int) -> torch.Tensor:
    """``Σ_e g_e·Expert_e(x)`` with every expert run on every token (eval mode)."""
    gates, _ = moe.routers[router](x)
    outs = torch.stack([expert(x) for expert in moe.experts], dim=-1)  # (..., d, E)
    return (outs * gates.unsqueeze(-2)).sum(-1)


def test_sparse_moe_equals_dense_weighted_sum_per_attribute() -> None:
    moe = SparseMoE(6, n_routers=3, n_experts=8, top_k=2).eval()
    x = torch.randn(5, 4, 6)
    attr = torch.tensor([0, 2, 1, 2, -1])
    out = moe(x, attr)
    for i, a in enumerate([0, 2, 1, 2, 0]):  # -1 → router 0 (fallback)
        assert torch.allclose(out[i], _dense_reference(moe, x[i], a), atol=1e-5)
    # the attribute changes the routing, hence the output
    assert not torch.allclose(moe(x, torch.zeros(5, dtype=torch.long)), moe(x, torch.ones(5, dtype=torch.long)))
    # None = router 0 for everyone
    assert torch.allclose(moe(x, None), moe(x, torch.zeros(5, dtype=torch.long)))


def test_experts_are_shared_and_only_routers_depend_on_the_attribute() -> None:
    moe = SparseMoE(4, n_routers=3, n_experts=8, top_k=2)
    assert len(moe.experts) == 8 and len(moe.routers) == 3
    n_expert = sum(p.numel() for p in moe.experts.parameters())
    assert n_expert == 8 * (4 * 16 + 16 + 16 * 4 + 4)


def test_sparse_moe_gradients_reach_selected_experts_and_router() -> None:
    moe = SparseMoE(4, n_routers=2, n_experts=4, top_k=2).train()
    x = torch.randn(2, 3, 4, requires_grad=True)
    moe(x, torch.tensor([0, 1])).sum().backward()
    assert x.grad is not None and moe.routers[0].route.weight.grad is not None
    assert moe.routers[1].route.weight.grad is not None


def test_unknown_attribute_code_raises() -> None:
    moe = SparseMoE(4, n_routers=2)
    with pytest.raises(ConfigError, match="no router"):
        moe(torch.randn(2, 3, 4), torch.tensor([0, 2]))
    with pytest.raises(ConfigError):
        NoisyTopkRouter(4, n_experts=2, top_k=3)


@pytest.mark.parametrize(("dims", "size"), [(2, (13, 16)), (3, (8, 6, 7))])
def test_dmoe_unet_shapes_and_routing(dims: int, size: tuple[int, ...]) -> None:
    net = DMoEUNet(in_channels=1, num_classes=3, spatial_dims=dims, channels=(4, 8, 8), n_routers=2, n_experts=4).eval()
    assert len(net.moes) == 3 and [m.dim for m in net.moes] == [4, 8, 8]
    x = torch.randn(2, 1, *size)
    out = net(x, torch.tensor([0, 1]))
    assert out.shape == (2, 3, *size)
    # the second sample's logits depend on its attribute; the first is unaffected
    flipped = net(x, torch.tensor([0, 0]))
    assert torch.allclose(out[0], flipped[0], atol=1e-6)
    assert not torch.allclose(out[1], flipped[1])
