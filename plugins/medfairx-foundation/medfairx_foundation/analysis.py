"""Per-group scoring, group tests and spatial error summaries (docs/methods.md §7, "Analysis").

* :func:`group_scores`: per-case Dice / IoU (the platform's empty-mask rule, §8.2) and their
  group means.
* :func:`group_tests`: one-way ANOVA and Kruskal–Wallis of per-case values across groups
  (``scipy.stats.f_oneway`` / ``kruskal``); :func:`dice_tests` does it from a run's
  ``predictions.parquet`` rows.
* :func:`error_maps` / :func:`group_error_maps`: false-negative and false-positive maps in a
  canonical ``size × size`` frame: each case is cropped to its ground-truth box (grown by
  ``margin`` of its size on every side, so false positives next to the object are kept
  `[INFERRED]`) and resampled nearest-neighbour; maps are averaged per group, and
  :func:`difference_maps` subtracts a reference group.
* :func:`boundary_shares`: the share of error pixels within ``width`` pixels of the ground
  truth boundary (the shell ``dilate^w(Y) \\ erode^w(Y)``) vs the rest.
* :func:`evaluate_prompted`: all of the above for one prompted method on one split,
  in-process (the runner stores per-case Dice only, not the masks the maps need).
* 3D volumes (slice-wise prompting, docs/methods.md §7): :func:`prompted_slice_view` turns the
  prompted slices into 2D cases, and :func:`evaluate_prompted` reports volumetric Dice /
  IoU *and* slice-level Dice / IoU over the prompted slices (``slice_scores``); its error
  maps and boundary shares are computed over the prompted slices. Unprompted slices are
  predicted empty, so they cannot contain false positives: volumetric scores are an upper
  bound, and the slice-level scores say how well the prompted slices themselves are
  segmented.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medfairx import dice_iou_per_sample
from medfairx.data.prompts import PromptSet, attach_prompts, box_of
from medfairx.errors import ConfigError
from medfairx.methods import RunContext, TaskData


@dataclass
class GroupTest:
    """One-way ANOVA and Kruskal–Wallis across groups (NaN when fewer than two groups
    have at least two values)."""

    anova_f: float
    anova_p: float
    kruskal_h: float
    kruskal_p: float
    n_groups: int
    sizes: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {k: getattr(self, k) for k in ("anova_f", "anova_p", "kruskal_h", "kruskal_p", "n_groups", "sizes")}


def group_tests(values: np.ndarray, groups: np.ndarray, names: dict[int, str] | None = None) -> GroupTest:
    """ANOVA and Kruskal–Wallis of ``values`` across integer group codes (codes < 0 and NaN
    values ignored); ``names`` labels the codes in ``sizes``."""
    from scipy.stats import f_oneway, kruskal

    v = np.asarray(values, dtype=np.float64)
    g = np.asarray(groups, dtype=np.int64)
    keep = ~np.isnan(v) & (g >= 0)
    samples: dict[str, np.ndarray] = {}
    for code in sorted(set(g[keep].tolist())):
        samples[(names or {}).get(code, str(code))] = v[keep & (g == code)]
    usable = [s for s in samples.values() if s.size >= 2]
    sizes = {k: int(s.size) for k, s in samples.items()}
    if len(usable) < 2:
        nan = float("nan")
        return GroupTest(nan, nan, nan, nan, len(usable), sizes)
    with np.errstate(all="ignore"):
        f = f_oneway(*usable)
        try:
            k = kruskal(*usable)
            kh, kp = float(k.statistic), float(k.pvalue)
        except ValueError:  # all values identical
            kh, kp = float("nan"), float("nan")
    return GroupTest(float(f.statistic), float(f.pvalue), kh, kp, len(usable), sizes)


def dice_tests(predictions: Any, grouping: str, *, split: str = "test", metric: str = "dice") -> GroupTest:
    """:func:`group_tests` on a run's ``predictions.parquet`` rows (column ``group:<grouping>``)."""
    col = f"group:{grouping}"
    if col not in predictions.columns or metric not in predictions.columns:
        raise ConfigError(f"dice_tests: the predictions have no {col!r} or {metric!r} column.")
    rows = predictions[(predictions["split"] == split) & predictions[col].notna()]
    labels = rows[col].astype(str).to_numpy()
    codes = {name: i for i, name in enumerate(sorted(set(labels)))}
    return group_tests(rows[metric].to_numpy(), np.array([codes[x] for x in labels]), {i: n for n, i in codes.items()})


def group_scores(
    pred: np.ndarray, truth: np.ndarray, groups: np.ndarray, num_classes: int, names: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Per-case Dice / IoU and per-group means ``{"dice", "iou", "group_dice", "group_iou", "n"}``."""
    dice, iou = dice_iou_per_sample(pred, truth, num_classes)
    g = np.asarray(groups)
    out: dict[str, Any] = {"dice": dice, "iou": iou, "group_dice": {}, "group_iou": {}, "n": {}}
    for code in sorted(int(c) for c in np.unique(g[g >= 0])):
        name = names[code] if code < len(names) else str(code)
        m = g == code
        out["group_dice"][name] = float(dice[m].mean())
        out["group_iou"][name] = float(iou[m].mean())
        out["n"][name] = int(m.sum())
    return out


def canonical_crop(mask: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """Nearest-neighbour resample of ``mask[box]`` to ``size × size`` (pixels outside the
    image, when the box extends past it, count as 0)."""
    x0, y0, x1, y1 = box
    h, w = y1 - y0 + 1, x1 - x0 + 1
    rows = y0 + np.floor((np.arange(size) + 0.5) * h / size).astype(np.int64)
    cols = x0 + np.floor((np.arange(size) + 0.5) * w / size).astype(np.int64)
    m = np.asarray(mask)
    inside = (rows[:, None] >= 0) & (rows[:, None] < m.shape[0]) & (cols[None] >= 0) & (cols[None] < m.shape[1])
    vals = m[np.clip(rows, 0, m.shape[0] - 1)[:, None], np.clip(cols, 0, m.shape[1] - 1)[None]]
    return np.where(inside, vals, 0)


def error_maps(pred: np.ndarray, truth: np.ndarray, *, size: int = 64, margin: float = 0.25) -> tuple[np.ndarray, np.ndarray] | None:
    """``(fn, fp)`` float32 ``size × size`` maps of one binary case in its canonical frame;
    ``None`` when the ground truth is empty (no frame)."""
    t = np.asarray(truth).astype(bool)
    p = np.asarray(pred).astype(bool)
    if not t.any():
        return None
    x0, y0, x1, y1 = box_of(t)
    mx, my = int(round(margin * (x1 - x0 + 1))), int(round(margin * (y1 - y0 + 1)))
    box = (x0 - mx, y0 - my, x1 + mx, y1 + my)
    return (
        canonical_crop(t & ~p, box, size).astype(np.float32),
        canonical_crop(p & ~t, box, size).astype(np.float32),
    )


def group_error_maps(
    pred: np.ndarray, truth: np.ndarray, groups: np.ndarray, names: tuple[str, ...] = (), *, size: int = 64, margin: float = 0.25
) -> dict[str, dict[str, Any]]:
    """Mean FN / FP maps per group: ``{group: {"fn", "fp", "n"}}`` (foreground = label > 0)."""
    acc: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for i, code in enumerate(np.asarray(groups)):
        if code < 0:
            continue
        maps = error_maps(np.asarray(pred[i]) > 0, np.asarray(truth[i]) > 0, size=size, margin=margin)
        if maps is not None:
            acc.setdefault(int(code), []).append(maps)
    out: dict[str, dict[str, Any]] = {}
    for code in sorted(acc):
        name = names[code] if code < len(names) else str(code)
        fns, fps = zip(*acc[code], strict=False)
        out[name] = {"fn": np.mean(fns, axis=0), "fp": np.mean(fps, axis=0), "n": len(fns)}
    return out


def difference_maps(maps: dict[str, dict[str, Any]], reference: str) -> dict[str, dict[str, np.ndarray]]:
    """``maps[g] − maps[reference]`` for FN and FP, for every other group ``g``."""
    if reference not in maps:
        raise ConfigError(f"difference_maps: reference group {reference!r} not in {sorted(maps)}.")
    ref = maps[reference]
    return {g: {k: m[k] - ref[k] for k in ("fn", "fp")} for g, m in maps.items() if g != reference}


def boundary_shell(truth: np.ndarray, width: int = 2) -> np.ndarray:
    """Pixels within ``width`` pixels (Euclidean) of the boundary of ``truth``, inside or outside
    (the platform's shell, :func:`medfairx.metrics.surface.boundary_shell`, for one mask)."""
    from medfairx import boundary_shell as shells

    return shells(np.asarray(truth)[None], width)[0]


def boundary_shares(
    pred: np.ndarray, truth: np.ndarray, groups: np.ndarray, names: tuple[str, ...] = (), *, width: int = 2
) -> dict[str, dict[str, float]]:
    """Per group, the pooled share of FN / FP / all error pixels in the boundary shell.

    ``{group: {"fn_shell", "fp_shell", "error_shell", "error_pixels"}}``; the interior share
    is ``1 − share`` (NaN when the group has no error of that kind).
    """
    counts: dict[int, np.ndarray] = {}
    for i, code in enumerate(np.asarray(groups)):
        if code < 0:
            continue
        t, p = np.asarray(truth[i]) > 0, np.asarray(pred[i]) > 0
        shell = boundary_shell(t, width)
        fn, fp = t & ~p, p & ~t
        c = np.array([(fn & shell).sum(), fn.sum(), (fp & shell).sum(), fp.sum()], dtype=np.float64)
        counts[int(code)] = counts.get(int(code), 0) + c
    out: dict[str, dict[str, float]] = {}
    for code in sorted(counts):
        fn_s, fn_n, fp_s, fp_n = counts[code]
        name = names[code] if code < len(names) else str(code)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[name] = {
                "fn_shell": float(fn_s / fn_n) if fn_n else float("nan"),
                "fp_shell": float(fp_s / fp_n) if fp_n else float("nan"),
                "error_shell": float((fn_s + fp_s) / (fn_n + fp_n)) if fn_n + fp_n else float("nan"),
                "error_pixels": float(fn_n + fp_n),
            }
    return out


def prompted_slice_view(
    pred: np.ndarray, truth: np.ndarray, groups: np.ndarray, prompts: PromptSet
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The prompted slices of ``(N, D, H, W)`` label maps as 2D cases.

    Returns ``(pred (M, H, W), truth (M, H, W), groups (M,), where (M, 2))`` for the ``M``
    slices that carry prompts, ``where`` holding ``(sample, slice)`` of each, in sample then
    slice order (slices along :data:`medfairx.data.prompts.SLICE_AXIS`).
    """
    p, t, g = np.asarray(pred), np.asarray(truth), np.asarray(groups)
    if p.ndim != 4 or t.shape != p.shape or prompts.spatial_dims != 3 or len(prompts) != p.shape[0]:
        raise ConfigError(
            f"prompted_slice_view: expected (N, D, H, W) predictions and truth with 3D prompts of the same N; "
            f"got {p.shape}, {t.shape} and {len(prompts)} {prompts.spatial_dims}D prompt sets."
        )
    pairs = [(i, k) for i in range(len(prompts)) for k in prompts.prompted_slices(i)]
    where = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return p[where[:, 0], where[:, 1]], t[where[:, 0], where[:, 1]], g[where[:, 0]], where


@dataclass
class PromptedEvaluation:
    """What :func:`evaluate_prompted` found on one split."""

    scores: dict[str, Any]
    dice_test: GroupTest
    error_maps: dict[str, dict[str, Any]]
    boundary: dict[str, dict[str, float]]
    prompts: dict[str, Any]
    slice_scores: dict[str, Any] | None = None
    """3D only: :func:`group_scores` over the prompted slices (2D Dice / IoU per slice)."""

    def summary(self) -> dict[str, Any]:
        """JSON-friendly summary (no maps)."""
        out = {
            "dice": float(np.mean(self.scores["dice"])),
            "iou": float(np.mean(self.scores["iou"])),
            "group_dice": self.scores["group_dice"],
            "group_iou": self.scores["group_iou"],
            "n": self.scores["n"],
            "dice_test": self.dice_test.to_dict(),
            "boundary": self.boundary,
            "prompts": self.prompts,
        }
        if self.slice_scores is not None:
            out["slice_level"] = {
                "dice": float(np.mean(self.slice_scores["dice"])) if len(self.slice_scores["dice"]) else float("nan"),
                "iou": float(np.mean(self.slice_scores["iou"])) if len(self.slice_scores["iou"]) else float("nan"),
                "group_dice": self.slice_scores["group_dice"],
                "group_iou": self.slice_scores["group_iou"],
                "n_slices": self.slice_scores["n"],
                "note": (
                    "over the prompted slices only; unprompted slices are predicted empty and cannot contain false positives"
                ),
            }
        return out


def evaluate_prompted(
    method: Any, truth: TaskData, ctx: RunContext, *, seed: int = 0, size: int = 64, width: int = 2
) -> PromptedEvaluation:
    """Prompt a fitted method from ``truth`` (as the runner would), predict with labels
    masked, and summarise per group (``truth.groups`` must be set).

    For 3D volumes ``scores`` are volumetric, ``slice_scores`` cover the prompted slices,
    and the error maps and boundary shares are computed over the prompted slices."""
    if truth.groups is None or truth.labels is None:
        raise ConfigError("evaluate_prompted: the ground-truth split needs labels and groups.")
    masked = attach_prompts(truth.without_labels().without_groups(), truth, method.prompt_config(), seed)
    pred = np.asarray(method.predict_scores(masked, ctx)).argmax(axis=1)
    names = truth.group_names
    scores = group_scores(pred, truth.labels, truth.groups, ctx.num_classes, names)
    slice_scores = None
    cases, labels, groups = pred, truth.labels, truth.groups
    if pred.ndim == 4:  # 3D: maps and boundary shares over the prompted slices
        cases, labels, groups, _ = prompted_slice_view(pred, truth.labels, truth.groups, masked.prompts)
        slice_scores = group_scores(cases, labels, groups, ctx.num_classes, names)
    return PromptedEvaluation(
        scores=scores,
        dice_test=group_tests(scores["dice"], truth.groups, dict(enumerate(names))),
        error_maps=group_error_maps(cases, labels, groups, names, size=size),
        boundary=boundary_shares(cases, labels, groups, names, width=width),
        prompts=masked.prompts.describe(),
        slice_scores=slice_scores,
    )
