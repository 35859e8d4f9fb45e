"""Minimal adversarial perturbations: how far an input lies from a decision change.

Used by SPARE (docs/methods.md §5, stage 1) as a distance of a sample to a model's decision
boundary, in the model's (normalised) input space and with the model in eval mode:

* **untargeted** — the smallest ``‖r‖₂`` with ``argmax f(x+r) ≠ ŷ`` (``ŷ = argmax f(x)``
  unless a reference class is given);
* **targeted** — the smallest ``‖r‖₂`` with ``argmax f(x+r) = t`` (0 when ``f`` already
  predicts ``t``).

Two solvers (``method=``):

* ``"adam"`` (default, docs/methods.md §5 reconstruction of SPARE §4.3.1):
  ``min_r ‖r‖₂ + β·max(0, m(x+r))`` by Adam on ``r`` (lr 0.01, ≤ 100 steps, ``r₀ = 0``) with
  the margin ``m = z_ŷ − max_{j≠ŷ} z_j`` (untargeted) or ``m = max_{j≠t} z_j − z_t``
  (targeted). The distance is ``‖r‖₂`` at the first step where the decision has changed;
  without a change it is the final ``‖r‖₂``. Adam's update is elementwise, so a batch of
  samples optimised together gives each sample exactly its own trajectory; a sample leaves
  the batch at its decision change (later steps cannot alter its result), so each step runs
  the model on the still-unchanged samples only.
* ``"deepfool"`` (Moosavi-Dezfooli et al. 2016): linearise the margins to every other
  class (targeted: to ``t`` only) and step to the nearest linearised boundary; the distance
  is ``‖(1+overshoot)·r‖₂`` at the first decision change (≤ ``max_iter`` iterations). Exact
  up to the overshoot for a linear model.

:func:`minimal_perturbation` works on a tensor batch; :func:`perturbation_distances`
runs it over a whole ``uint8``/float image array with the training loop's normalisation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from medfairx.errors import ConfigError
from medfairx.methods import ArraySource

PERTURB_METHODS: tuple[str, ...] = ("adam", "deepfool")

#: Fewest rows the Adam search runs the model on: PyTorch's CPU 2D convolutions switch
#: kernels below a batch of 16 (NNPACK's threshold), which changes the float rounding of
#: every row; finished samples fill the batch up to this size.
MIN_SEARCH_ROWS = 16


@dataclass
class PerturbationResult:
    """Outcome of a minimal-perturbation search on a batch.

    Attributes:
        distance: ``(n,)`` float32 ``‖r‖₂`` at the first decision change (final ``‖r‖₂`` when
            none happened); on CPU.
        flipped: ``(n,)`` bool, whether the decision changed.
        steps: ``(n,)`` int64 solver steps until the change (0: already changed at ``r = 0``;
            −1: never).
        perturbation: ``(n, ...)`` the perturbation ``r`` whose norm is ``distance``; on CPU.
    """

    distance: torch.Tensor
    flipped: torch.Tensor
    steps: torch.Tensor
    perturbation: torch.Tensor


def _other_max(logits: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
    """``max_{j ≠ cls_i} z_ij`` per row."""
    masked = logits.masked_fill(torch.nn.functional.one_hot(cls, logits.shape[1]).bool(), float("-inf"))
    return masked.max(dim=1).values


def decision_margin(logits: torch.Tensor, cls: torch.Tensor, *, targeted: bool) -> torch.Tensor:
    """Signed margin that is positive while the decision has not changed yet.

    Args:
        logits: ``(n, C)``.
        cls: ``(n,)`` the reference class ``ŷ`` (untargeted) or the target ``t`` (targeted).
        targeted: which of the two margins.

    Returns:
        ``(n,)``: ``z_ŷ − max_{j≠ŷ} z_j`` (untargeted) or ``max_{j≠t} z_j − z_t`` (targeted).
    """
    z = logits.to(torch.float32)
    own = z.gather(1, cls.view(-1, 1)).squeeze(1)
    other = _other_max(z, cls)
    return own - other if not targeted else other - own


def decision_changed(logits: torch.Tensor, cls: torch.Tensor, *, targeted: bool) -> torch.Tensor:
    """``argmax ≠ ŷ`` (untargeted) or ``argmax = t`` (targeted), per row."""
    pred = logits.argmax(dim=1)
    return pred == cls if targeted else pred != cls


def _norms(r: torch.Tensor) -> torch.Tensor:
    return r.detach().flatten(1).norm(dim=1).to(torch.float32)


def _safe_norm(r: torch.Tensor) -> torch.Tensor:
    """``‖r‖₂`` per sample with a finite (zero) gradient at ``r = 0``."""
    sq = r.flatten(1).pow(2).sum(1)
    return torch.where(sq > 0, sq.clamp_min(1e-30).sqrt(), torch.zeros_like(sq))


def _rows_to_run(done: torch.Tensor, min_rows: int) -> torch.Tensor:
    """Indices of the unfinished samples, filled up with finished ones to ``min_rows`` (sorted)."""
    rows = (~done).nonzero().view(-1)
    if rows.numel() < min_rows:
        rows = torch.cat([rows, done.nonzero().view(-1)[: min_rows - rows.numel()]]).sort().values
    return rows


def _adam_search(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    cls: torch.Tensor | None,
    *,
    targeted: bool,
    beta: float,
    lr: float,
    steps: int,
    active_only: bool = True,
) -> PerturbationResult:
    """Adam on ``r`` (see the module docstring).

    With ``active_only`` every step runs the model on the samples whose decision has not
    changed yet (at least :data:`MIN_SEARCH_ROWS` rows, or all): a finished sample's result is
    fixed at its change, and eval-mode networks, the per-sample objective and Adam's
    elementwise update make every other sample's trajectory independent of it, so the result
    is the same as optimising the whole batch until the last step (``active_only=False``, the
    straightforward loop). ``cls=None``
    (untargeted only) takes the reference classes from the first step's logits (``r = 0``).
    """
    n = x.shape[0]
    r = torch.zeros_like(x, requires_grad=True)
    opt = torch.optim.Adam([r], lr=lr)
    distance = torch.zeros(n, dtype=torch.float32, device=x.device)
    done = torch.zeros(n, dtype=torch.bool, device=x.device)
    at_step = torch.full((n,), -1, dtype=torch.int64, device=x.device)
    found = torch.zeros_like(x)
    shape = (-1,) + (1,) * (x.dim() - 1)
    rows = torch.arange(n, device=x.device)
    for step in range(steps + 1):
        if active_only and step:
            rows = _rows_to_run(done, min(n, MIN_SEARCH_ROWS))
        r_rows = r[rows] if active_only else r
        logits = model(x[rows] + r_rows if active_only else x + r)
        if cls is None:
            cls = logits.detach().argmax(dim=1)
        changed = decision_changed(logits.detach(), cls[rows], targeted=targeted) & ~done[rows]
        if bool(changed.any()):
            hit = rows[changed]
            distance[hit] = _norms(r_rows)[changed]
            found[hit] = r_rows.detach()[changed]
            at_step[hit] = step
            done[hit] = True
        if bool(done.all()) or step == steps:
            break
        margin = decision_margin(logits, cls[rows], targeted=targeted).clamp_min(0.0)
        objective = _safe_norm(r_rows) + beta * margin
        if active_only:  # finished samples (just changed, or filling the batch) get no gradient
            objective = objective[~done[rows]]
        (grad,) = torch.autograd.grad(objective.sum(), r)
        opt.zero_grad(set_to_none=True)
        r.grad = grad
        opt.step()
    distance = torch.where(done, distance, _norms(r))
    found = torch.where(done.view(shape), found, r.detach())
    return PerturbationResult(distance.cpu(), done.cpu(), at_step.cpu(), found.cpu())


def _deepfool_search(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    cls: torch.Tensor,
    *,
    targeted: bool,
    overshoot: float,
    max_iter: int,
) -> PerturbationResult:
    n = x.shape[0]
    r_tot = torch.zeros_like(x)
    distance = torch.zeros(n, dtype=torch.float32, device=x.device)
    done = torch.zeros(n, dtype=torch.bool, device=x.device)
    at_step = torch.full((n,), -1, dtype=torch.int64, device=x.device)
    shape = (-1,) + (1,) * (x.dim() - 1)
    found = torch.zeros_like(x)
    for it in range(max_iter + 1):
        xp = (x + (1.0 + overshoot) * r_tot).detach().requires_grad_(True)
        logits = model(xp).to(torch.float32)
        changed = decision_changed(logits.detach(), cls, targeted=targeted) & ~done
        if bool(changed.any()):
            distance = torch.where(changed, _norms((1.0 + overshoot) * r_tot), distance)
            found = torch.where(changed.view(shape), (1.0 + overshoot) * r_tot, found)
            at_step = torch.where(changed, torch.full_like(at_step, it), at_step)
            done = done | changed
        if bool(done.all()) or it == max_iter:
            break
        z_ref = logits.gather(1, cls.view(-1, 1)).squeeze(1)
        candidates = [cls] if targeted else [
            torch.full_like(cls, k) for k in range(logits.shape[1])
        ]
        best_ratio = torch.full((n,), float("inf"), device=x.device)
        best_step = torch.zeros_like(x)
        for k_idx, k in enumerate(candidates):
            if targeted:
                # move towards t: f = z_t − max_{j≠t} z_j (negative before the change)
                f = z_ref - _other_max(logits, cls)
            else:
                f = logits.gather(1, k.view(-1, 1)).squeeze(1) - z_ref
            (w,) = torch.autograd.grad(f.sum(), xp, retain_graph=k_idx < len(candidates) - 1)
            w_norm = w.flatten(1).norm(dim=1)
            ratio = (f.detach().abs() + 1e-4) / (w_norm + 1e-8)
            if not targeted:
                ratio = torch.where(k == cls, torch.full_like(ratio, float("inf")), ratio)
            better = ratio < best_ratio
            step_k = (ratio / (w_norm + 1e-8)).view(shape) * w
            best_step = torch.where(better.view(shape), step_k, best_step)
            best_ratio = torch.where(better, ratio, best_ratio)
        r_tot = r_tot + torch.where(done.view(shape), torch.zeros_like(best_step), best_step).detach()
    distance = torch.where(done, distance, _norms((1.0 + overshoot) * r_tot))
    found = torch.where(done.view(shape), found, (1.0 + overshoot) * r_tot)
    return PerturbationResult(distance.cpu(), done.cpu(), at_step.cpu(), found.cpu())


def minimal_perturbation(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    cls: torch.Tensor | None = None,
    *,
    targeted: bool = False,
    method: str = "adam",
    beta: float = 100.0,
    lr: float = 0.01,
    steps: int = 100,
    overshoot: float = 0.02,
    max_iter: int = 50,
    active_only: bool = True,
) -> PerturbationResult:
    """The size of the smallest decision-changing perturbation of every sample of a batch.

    The model is put in eval mode for the search (its mode is restored) and its parameters
    receive no gradient.

    Args:
        model: maps ``(n, ...)`` inputs to ``(n, C)`` logits.
        x: ``(n, ...)`` float inputs in the model's input space.
        cls: ``(n,)`` reference classes (untargeted; default ``argmax model(x)``) or targets
            (targeted; required).
        targeted: search for ``argmax = cls`` instead of ``argmax ≠ cls``.
        method: ``"adam"`` or ``"deepfool"``.
        beta: ``β``, weight of the margin term (``adam``).
        lr: Adam learning rate (``adam``).
        steps: maximum Adam steps (``adam``).
        overshoot: DeepFool overshoot.
        max_iter: maximum DeepFool iterations.
        active_only: ``adam``: step only the samples whose decision has not changed yet (same
            result, fewer model evaluations; needs a model that treats samples independently,
            as an eval-mode network does); ``False`` keeps the whole batch to the last step.

    Returns:
        A :class:`PerturbationResult`.

    Raises:
        ConfigError: unknown method, or a targeted search without targets.
    """
    if method not in PERTURB_METHODS:
        raise ConfigError(f"Unknown perturbation method {method!r}; use one of {', '.join(PERTURB_METHODS)}.")
    if targeted and cls is None:
        raise ConfigError("minimal_perturbation: a targeted search needs the target classes (cls).")
    is_module = isinstance(model, nn.Module)
    was_training = model.training if is_module else False
    params = list(model.parameters()) if is_module else []
    saved = [p.requires_grad for p in params]
    if is_module:
        model.eval()
    for p in params:
        p.requires_grad_(False)
    try:
        x = x.detach().to(torch.float32)
        if cls is None and not (method == "adam" and active_only):  # else taken from the search's first step
            with torch.no_grad():
                cls = model(x).argmax(dim=1)
        cls = None if cls is None else cls.to(x.device).long()
        with torch.enable_grad():
            if method == "adam":
                return _adam_search(
                    model, x, cls, targeted=targeted, beta=beta, lr=lr, steps=steps, active_only=active_only
                )
            return _deepfool_search(model, x, cls, targeted=targeted, overshoot=overshoot, max_iter=max_iter)
    finally:
        for p, s in zip(params, saved, strict=False):
            p.requires_grad_(s)
        if is_module:
            model.train(was_training)


def perturbation_distances(
    model: nn.Module,
    images: np.ndarray,
    *,
    targets: np.ndarray | None = None,
    batch_size: int = 128,
    **kwargs: float | int | str,
) -> np.ndarray:
    """:func:`minimal_perturbation` distances of a whole image array, batch by batch.

    Images are normalised exactly as the training loop does (``uint8`` → ``(x/255−0.5)/0.25``)
    and moved to the model's device.

    Args:
        model: a classification network.
        images: ``(N, C, *spatial)`` ``uint8`` or float array.
        targets: ``(N,)`` target classes for a targeted search; ``None`` for untargeted
            (reference class = the model's own prediction).
        batch_size: samples per search batch.
        **kwargs: solver options of :func:`minimal_perturbation` (``method``, ``beta``, ``lr``,
            ``steps``, ``overshoot``, ``max_iter``, ``active_only``).

    Returns:
        ``(N,)`` float64 distances.
    """
    device = next(iter(model.parameters())).device if any(True for _ in model.parameters()) else torch.device("cpu")
    source = ArraySource(images, device, labels=None if targets is None else np.asarray(targets))
    out = np.zeros(len(source), dtype=np.float64)
    for idx in source.sequential_batches(max(int(batch_size), 1)):
        x, t, _ = source.gather(idx)
        res = minimal_perturbation(model, x, t, targeted=targets is not None, **kwargs)  # type: ignore[arg-type]
        out[idx] = res.distance.numpy()
    return out
