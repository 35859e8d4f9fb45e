"""The attribute-routed sparse mixture of experts of dMoE (docs/methods.md §6, "dMoE layer").

* :class:`Expert`: ``Linear(d→w·d) → ReLU → Linear(w·d→d) → Dropout(p)`` (``w = 4``,
  ``p = 0.1`` in the official code).
* :class:`NoisyTopkRouter`: ``ρ = W·x + b``; in training ``ρ̃ = ρ + ε ⊙ softplus(W'·x + b')``
  with ``ε ~ N(0, I)``; keep the top-``k`` entries of ``ρ̃`` (the rest ``−∞``); gates
  ``g = softmax(ρ̃)``.
* :class:`SparseMoE`: ``E`` experts shared by every attribute value and one router per
  attribute value; ``MoE(x; a) = Σ_{e ∈ topk} g_e(x; a)·Expert_e(x)``. Only the router depends
  on the attribute. No load-balancing loss (there is none in the official code).

Router noise: the official code adds it at inference too (no ``self.training`` check).
medfairx's default adds it only in training; ``noise_eval=True`` reproduces the code.

Attribute codes: ``attr`` holds one code per sample. Samples outside every group (code
``< 0``) are routed by router 0 (the documented fallback); ``attr=None`` routes every sample
by router 0 (this is the single-router ``MoE`` ablation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medfairx.errors import ConfigError

#: Router used for samples whose attribute code is negative (outside every group) or absent.
FALLBACK_ROUTER = 0


class Expert(nn.Sequential):
    """One expert MLP: ``Linear(d→w·d) → ReLU → Linear(w·d→d) → Dropout(p)``.

    Args:
        dim: token size ``d``.
        width: hidden-size factor ``w`` (hidden size ``w·d``).
        dropout: dropout probability ``p`` after the second linear layer.
    """

    def __init__(self, dim: int, width: int = 4, dropout: float = 0.1) -> None:
        super().__init__(
            nn.Linear(dim, width * dim),
            nn.ReLU(),
            nn.Linear(width * dim, dim),
            nn.Dropout(dropout),
        )


class NoisyTopkRouter(nn.Module):
    """Noisy top-``k`` gating over ``n_experts`` experts.

    Args:
        dim: token size ``d``.
        n_experts: number of experts ``E``.
        top_k: experts kept per token ``k`` (``1 <= k <= E``).
        noise_eval: also add the routing noise in eval mode (the official code's behaviour).
    """

    def __init__(self, dim: int, n_experts: int, top_k: int, *, noise_eval: bool = False) -> None:
        super().__init__()
        if not 1 <= top_k <= n_experts:
            raise ConfigError(f"NoisyTopkRouter: top_k must lie in [1, n_experts={n_experts}], got {top_k}.")
        self.top_k = int(top_k)
        self.noise_eval = bool(noise_eval)
        self.route = nn.Linear(dim, n_experts)
        self.noise = nn.Linear(dim, n_experts)

    def noisy_logits(self, x: torch.Tensor) -> torch.Tensor:
        """``ρ̃ = ρ + ε ⊙ softplus(W'·x + b')`` (training, or ``noise_eval``), else ``ρ``."""
        logits = self.route(x)
        if self.training or self.noise_eval:
            logits = logits + torch.randn_like(logits) * F.softplus(self.noise(x))
        return logits

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gates and the selected experts of every token.

        Args:
            x: ``(..., d)`` tokens.

        Returns:
            ``(gates, indices)``: ``(..., E)`` gates (softmax over the kept top-``k`` logits,
            exactly 0 elsewhere; each row sums to 1) and ``(..., k)`` expert indices.
        """
        logits = self.noisy_logits(x)
        top, indices = logits.topk(self.top_k, dim=-1)
        sparse = torch.full_like(logits, float("-inf")).scatter(-1, indices, top)
        return torch.softmax(sparse, dim=-1), indices


class SparseMoE(nn.Module):
    """Shared experts, one noisy top-``k`` router per attribute value.

    Args:
        dim: token size ``d``.
        n_routers: routers (attribute values); 1 for the single-router ablation.
        n_experts: experts ``E``.
        top_k: experts per token ``k``.
        width: expert hidden-size factor (``4`` → ``4d``).
        dropout: expert dropout.
        noise_eval: add router noise in eval mode too.
    """

    def __init__(
        self,
        dim: int,
        *,
        n_routers: int = 1,
        n_experts: int = 8,
        top_k: int = 2,
        width: int = 4,
        dropout: float = 0.1,
        noise_eval: bool = False,
    ) -> None:
        super().__init__()
        if n_routers < 1 or n_experts < 1 or dim < 1 or width < 1:
            raise ConfigError(
                f"SparseMoE needs dim, n_routers, n_experts and width >= 1; got dim={dim}, "
                f"n_routers={n_routers}, n_experts={n_experts}, width={width}."
            )
        self.dim = int(dim)
        self.n_routers = int(n_routers)
        self.experts = nn.ModuleList(Expert(dim, width, dropout) for _ in range(n_experts))
        self.routers = nn.ModuleList(
            NoisyTopkRouter(dim, n_experts, top_k, noise_eval=noise_eval) for _ in range(n_routers)
        )

    def router_codes(self, attr: torch.Tensor | None, n: int, device: torch.device) -> torch.Tensor:
        """The router of each of ``n`` samples: ``attr`` with negative codes → router 0.

        Raises:
            ConfigError: a code ``>= n_routers`` or a length mismatch.
        """
        if attr is None:
            return torch.full((n,), FALLBACK_ROUTER, dtype=torch.long, device=device)
        codes = attr.to(device=device, dtype=torch.long).reshape(-1)
        if codes.numel() != n:
            raise ConfigError(f"SparseMoE: got {codes.numel()} attribute codes for {n} samples.")
        codes = torch.where(codes < 0, torch.full_like(codes, FALLBACK_ROUTER), codes)
        if n and int(codes.max()) >= self.n_routers:
            raise ConfigError(
                f"SparseMoE: attribute code {int(codes.max())} has no router (the network has "
                f"{self.n_routers}); predict with the grouping the method was trained on, or set max_attr."
            )
        return codes

    def gates(self, x: torch.Tensor, attr: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Routing of ``(N, T, d)`` tokens: ``(N, T, E)`` gates and ``(N, T, k)`` indices.

        Every sample's tokens go through the router of its attribute value.
        """
        codes = self.router_codes(attr, x.shape[0], x.device)
        if self.n_routers == 1:
            return self.routers[0](x)
        routers = torch.unique(codes).tolist()
        if len(routers) == 1:
            return self.routers[int(routers[0])](x)
        gates: torch.Tensor | None = None
        indices: torch.Tensor | None = None
        for r in routers:
            rows = (codes == r).nonzero().squeeze(1)
            g_r, i_r = self.routers[int(r)](x.index_select(0, rows))
            if gates is None or indices is None:
                gates = x.new_zeros((*x.shape[:-1], g_r.shape[-1]), dtype=g_r.dtype)
                indices = torch.zeros((*x.shape[:-1], i_r.shape[-1]), dtype=i_r.dtype, device=x.device)
            gates = gates.index_copy(0, rows, g_r)
            indices = indices.index_copy(0, rows, i_r)
        assert gates is not None and indices is not None
        return gates, indices

    def forward(self, x: torch.Tensor, attr: torch.Tensor | None = None) -> torch.Tensor:
        """``Σ_{e ∈ topk} g_e·Expert_e(x)`` for every token.

        Args:
            x: ``(N, T, d)`` tokens (``T`` tokens of each of ``N`` samples).
            attr: ``(N,)`` attribute codes or ``None`` (router 0 for every sample).

        Returns:
            ``(N, T, d)``; each expert runs only on the tokens that selected it.
        """
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ConfigError(f"SparseMoE expects (N, T, {self.dim}) tokens, got {tuple(x.shape)}.")
        gates, indices = self.gates(x, attr)
        flat = x.reshape(-1, self.dim)
        flat_gates = gates.reshape(-1, gates.shape[-1])
        flat_idx = indices.reshape(-1, indices.shape[-1])
        out: torch.Tensor | None = None
        for e, expert in enumerate(self.experts):
            rows = (flat_idx == e).any(dim=-1).nonzero().squeeze(1)
            if rows.numel() == 0:
                continue
            contrib = expert(flat.index_select(0, rows)) * flat_gates.index_select(0, rows)[:, e : e + 1]
            if out is None:
                out = flat.new_zeros(flat.shape, dtype=contrib.dtype)
            out = out.index_add(0, rows, contrib.to(out.dtype))
        if out is None:
            out = torch.zeros_like(flat)
        return out.reshape(x.shape)

    def forward_map(self, h: torch.Tensor, attr: torch.Tensor | None = None) -> torch.Tensor:
        """The MoE over the voxels/pixels of a feature map: ``(N, d, *spatial)`` → same shape."""
        n, d = h.shape[:2]
        tokens = h.reshape(n, d, -1).transpose(1, 2)
        return self(tokens, attr).transpose(1, 2).reshape(h.shape)
