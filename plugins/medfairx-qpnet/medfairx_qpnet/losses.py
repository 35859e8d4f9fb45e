"""The QP-Net loss terms (docs/methods.md §4, eqs. 11–20) as plain functions.

* :func:`adaptive_delta` — ``δ = 1/(1 + exp((A_domi − A_mix)/σ))`` (eqs. 13–14);
* :func:`mmd` — ``M(D,D) − 2M(D,L) + M(L,L)`` with the paper's unit Gaussian kernel or the
  code's five-bandwidth kernel (eqs. 17–19);
* :func:`bss` — the batch spectral shrinkage ``Σ_{i≤k} σ_(i)²`` over the ``k`` smallest
  singular values of the feature matrix (eq. 20);
* :func:`binary_task_loss` / :func:`kway_task_loss` — the δ-weighted group task losses;
* :func:`less_prevalent_codes` — the default less-prevalent set of the K-group binarisation.

Every term keeps its gradient (one public version of the code detaches the features, which
silences MMD and BSS; see the pitfalls of §4).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from medfairx.errors import ConfigError

MMD_KERNELS: tuple[str, ...] = ("paper", "multi")
#: Number of Gaussians and their bandwidth ratio in the code's kernel (``σ_i² = b·2^{i−2}``).
MULTI_KERNEL_NUM = 5
MULTI_KERNEL_MUL = 2.0


def adaptive_delta(a_domi: float, a_mix: float, sigma: float = 0.05) -> float:
    """The adaptive weight of the dominant group's loss, ``δ = 1/(1+exp((A_domi−A_mix)/σ))``.

    ``δ = 0.5`` when the current dominant performance equals the Mixed model's, ``→ 1`` when
    it drops below it and ``→ 0`` when it is above. An undefined AUC (NaN) gives 0.5.

    Args:
        a_domi: the current model's dominant-group performance.
        a_mix: the Mixed model's dominant-group performance.
        sigma: the temperature ``σ`` (> 0).

    Raises:
        ConfigError: ``sigma <= 0``.
    """
    if not sigma > 0:
        raise ConfigError(f"QP-Net: sigma must be > 0, got {sigma!r}.")
    if not (math.isfinite(a_domi) and math.isfinite(a_mix)):
        return 0.5
    x = (float(a_domi) - float(a_mix)) / float(sigma)
    if x >= 0:
        e = math.exp(-x)
        return e / (1.0 + e)
    return 1.0 / (1.0 + math.exp(x))


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise squared Euclidean distances ``‖a_i − b_j‖²`` ``(n_a, n_b)`` (non-negative).

    Written with inner products (no square root), so the gradient is finite at distance 0.
    """
    d = (a * a).sum(1, keepdim=True) + (b * b).sum(1).unsqueeze(0) - 2.0 * a @ b.T
    return d.clamp_min(0.0)


def _multi_bandwidths(z: torch.Tensor) -> torch.Tensor:
    """``σ_i² = b·2^{i−2}`` (i = 0..4), ``b`` = mean off-diagonal pooled squared distance (detached)."""
    n = z.shape[0]
    with torch.no_grad():
        d = squared_distances(z, z)
        b = d.sum() / max(n * n - n, 1)
        b = torch.where(b > 0, b, torch.ones_like(b))
        powers = torch.arange(MULTI_KERNEL_NUM, dtype=z.dtype, device=z.device) - MULTI_KERNEL_NUM // 2
        return b * MULTI_KERNEL_MUL**powers


def gaussian_kernel(
    a: torch.Tensor, b: torch.Tensor, *, kernel: str = "paper", bandwidths: torch.Tensor | None = None
) -> torch.Tensor:
    """Kernel matrix ``k(a_i, b_j)``.

    Args:
        a: ``(n_a, d)`` features.
        b: ``(n_b, d)`` features.
        kernel: ``"paper"`` — ``exp(−‖a−b‖²)``; ``"multi"`` — ``Σ_i exp(−‖a−b‖²/σ_i²)``.
        bandwidths: the ``σ_i²`` of the multi kernel (required for ``"multi"``).

    Raises:
        ConfigError: unknown kernel, or ``"multi"`` without bandwidths.
    """
    d = squared_distances(a, b)
    if kernel == "paper":
        return torch.exp(-d)
    if kernel == "multi":
        if bandwidths is None:
            raise ConfigError("gaussian_kernel: the 'multi' kernel needs bandwidths.")
        return torch.exp(-d.unsqueeze(0) / bandwidths.view(-1, 1, 1)).sum(0)
    raise ConfigError(f"Unknown QP-Net mmd_kernel {kernel!r}; use one of {', '.join(MMD_KERNELS)}.")


def mmd(z_d: torch.Tensor, z_l: torch.Tensor, *, kernel: str = "paper") -> torch.Tensor:
    """Squared MMD ``M(D,D) − 2M(D,L) + M(L,L)``, ``M(P,Q) = ΣΣ k(p_i, q_j)/(N_P·N_Q)``.

    The (biased) V-statistic of eqs. 17–19, diagonal terms included.

    Args:
        z_d: ``(n_D, d)`` dominant-group features.
        z_l: ``(n_L, d)`` less-prevalent-group features.
        kernel: ``"paper"`` (default) or ``"multi"`` (bandwidths from the pooled batch).

    Returns:
        A scalar; 0 (with gradient graph) when either side is empty.
    """
    if z_d.shape[0] == 0 or z_l.shape[0] == 0:
        return (z_d.sum() + z_l.sum()) * 0.0
    bw = _multi_bandwidths(torch.cat([z_d, z_l])) if kernel == "multi" else None
    k_dd = gaussian_kernel(z_d, z_d, kernel=kernel, bandwidths=bw).mean()
    k_dl = gaussian_kernel(z_d, z_l, kernel=kernel, bandwidths=bw).mean()
    k_ll = gaussian_kernel(z_l, z_l, kernel=kernel, bandwidths=bw).mean()
    return k_dd - 2.0 * k_dl + k_ll


def bss(z: torch.Tensor, k: int = 1) -> torch.Tensor:
    """Batch spectral shrinkage ``Σ_{i=1}^{k} σ_(i)²`` over the ``k`` smallest singular values of ``z``.

    Args:
        z: ``(b, d)`` batch feature matrix.
        k: how many of the smallest singular values (``min(b, d)`` of them exist).

    Raises:
        ConfigError: ``k < 1``.
    """
    if k < 1:
        raise ConfigError(f"QP-Net: bss_k must be >= 1, got {k!r}.")
    s = torch.linalg.svdvals(z.to(torch.float32))  # descending
    return (s[-min(k, s.numel()) :] ** 2).sum()


def group_mean(per_sample: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``per_sample`` over ``mask`` (0 with gradient graph when the mask is empty)."""
    n = mask.sum()
    return (per_sample * mask).sum() / n.clamp_min(1)


def binary_task_loss(per_sample: torch.Tensor, domain: torch.Tensor, delta: float) -> torch.Tensor:
    """``δ·L_domi + (1−δ)·L_less`` with group means; plain mean CE unless both groups are present.

    Args:
        per_sample: ``(n,)`` task losses.
        domain: ``(n,)`` ``d`` codes: 0 dominant, 1 less-prevalent, −1 outside every group.
        delta: the weight ``δ`` of the dominant group.
    """
    dom, less = domain == 0, domain == 1
    if not bool(dom.any()) or not bool(less.any()):
        return per_sample.mean()
    return delta * group_mean(per_sample, dom) + (1.0 - delta) * group_mean(per_sample, less)


def kway_task_loss(
    per_sample: torch.Tensor,
    groups: torch.Tensor,
    deltas: dict[int, float],
    less: Sequence[int],
) -> torch.Tensor:
    """The K-way task loss of §4: ``(Σ_{g∈P} δ_g·L_g/|P| + (1−δ̄)·Σ_{g∈S} L_g/|S|) / (mean δ_g + 1 − δ̄)``.

    Groups absent from the batch are left out of both blocks; with one group in each block
    it equals :func:`binary_task_loss`. Falls back to the plain mean when a block is empty.

    Args:
        per_sample: ``(n,)`` task losses.
        groups: ``(n,)`` group codes (``< 0`` ignored).
        deltas: ``δ_g`` of every protected (dominant-set) group ``g ∈ P``.
        less: the less-prevalent set ``S``.
    """
    present = {int(g) for g in torch.unique(groups[groups >= 0]).tolist()}
    p_in = [g for g in deltas if g in present]
    s_in = [g for g in less if g in present]
    if not p_in or not s_in:
        return per_sample.mean()
    d_bar = max(deltas[g] for g in deltas)
    block_p = sum(deltas[g] * group_mean(per_sample, groups == g) for g in p_in) / len(p_in)
    block_s = sum(group_mean(per_sample, groups == g) for g in s_in) / len(s_in)
    norm = sum(deltas[g] for g in p_in) / len(p_in) + (1.0 - d_bar)
    return (block_p + (1.0 - d_bar) * block_s) / max(norm, 1e-12)


def kway_mmd(z: torch.Tensor, groups: torch.Tensor, less: Sequence[int], *, kernel: str = "paper") -> torch.Tensor:
    """Mean over ``g ∈ S`` (present in the batch) of ``MMD(z_g, z_{G∖g})``."""
    terms = [
        mmd(z[(groups >= 0) & (groups != g)], z[groups == g], kernel=kernel)
        for g in less
        if bool((groups == g).any())
    ]
    return torch.stack(terms).mean() if terms else z.sum() * 0.0


def less_prevalent_codes(
    counts: Sequence[int] | np.ndarray,
    names: Sequence[str] = (),
    requested: Sequence[str | int] | None = None,
) -> tuple[int, ...]:
    """The less-prevalent set ``S`` of the K-group binarisation (docs/methods.md §4).

    Default: the groups with ``0 < N_g < N_max/2``; when there are none, the smallest
    non-empty group (the first on ties).

    Args:
        counts: training samples per group code.
        names: group names (to resolve ``requested`` names).
        requested: user-chosen members of ``S`` (names or integer codes).

    Raises:
        ConfigError: an unknown group, or ``S`` covering every group.
    """
    counts = np.asarray(counts, dtype=np.int64)
    k = counts.size
    if requested:
        codes: list[int] = []
        for item in requested:
            if isinstance(item, (int, np.integer)) and 0 <= int(item) < k:
                codes.append(int(item))
            elif str(item) in tuple(names):
                codes.append(tuple(names).index(str(item)))
            else:
                raise ConfigError(
                    f"QP-Net: less_prevalent names unknown group {item!r}; groups are {list(names) or list(range(k))}."
                )
        out = tuple(sorted(set(codes)))
        if len(out) >= k:
            raise ConfigError("QP-Net: less_prevalent may not contain every group; leave one dominant group.")
        return out
    nonzero = np.flatnonzero(counts > 0)
    if nonzero.size == 0:
        raise ConfigError("QP-Net: no training sample belongs to a group.")
    n_max = counts.max()
    small = tuple(int(g) for g in nonzero if counts[g] < n_max / 2)
    if small:
        return small
    return (int(nonzero[np.argmin(counts[nonzero])]),)
