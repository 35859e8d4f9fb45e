"""The built-in metric definitions, as plain data (importing this module is free).

Each :class:`MetricDef` names one or more *measures* (per-sample statistics the engine
disaggregates into an ``(overall, group_1..group_G)`` vector) and an optional *transform*
that reduces them to one summary number. A definition without a transform is a base
metric: it gives one ``overall`` row and one ``group`` row per group in the results
table; a definition with a transform gives one ``summary`` row.

Measure ids (see :mod:`medfairx.metrics.engine`):

* classification: ``auc`` (binary, or macro one-vs-rest), ``accuracy``,
  ``balanced_accuracy``, ``tpr``, ``fpr``, ``fnr``, ``ppr`` (positive prediction rate),
  ``f1`` (binary F1 of the positive class at the run threshold, ``2TP/(2TP + FP + FN)``;
  NaN where a group has no positive label and no positive prediction),
  ``brier``, ``ece`` (15 equal-width bins), ``cvar_loss`` (mean of the worst
  ``ceil(alpha*n)`` per-sample losses, alpha = 0.1);
* segmentation, on a per-sample column ``c`` in {dice, iou, hd95, nsd,
  boundary_error_share, slice_dice} (:mod:`medfairx.metrics.surface` defines hd95, nsd and
  boundary_error_share; slice_dice exists for slice-wise prompted volumes only; samples
  where ``c`` is NaN are skipped): ``mean:c``, ``tail:c`` (mean of the worst
  ``ceil(alpha*n)`` values, worst = lowest), ``p10:c``, ``fail:c`` (share below 0.5),
  ``hidden_gap:c`` (``mean - tail``). ``tail``, ``p10`` and ``fail`` assume higher is
  better (Dice, IoU, NSD); the HD95 and boundary-share metrics use ``mean`` only.

Transforms (over defined, i.e. non-NaN, groups only): ``worst_min``, ``worst_max``,
``gap`` (max - min), ``es_mean`` (``o/(1 + mean_g|o - m_g|)``), ``es_sum``
(``o/(1 + sum_g|o - m_g|)``), ``es_std`` (``o/(1 + std_g m_g)``, ddof 0), ``mean_psd``
(``std_g m_g / o``), ``max_psd`` (``gap / o``), ``max_gap`` (largest gap of several
measures), ``one_minus_gap``, ``one_minus_mean_gap``.
"""

from __future__ import annotations

from dataclasses import dataclass

CLS = "classification"
SEG = "segmentation"
THRESHOLDED = frozenset({"accuracy", "balanced_accuracy", "tpr", "fpr", "fnr", "ppr", "f1"})
# per-sample segmentation columns: (value of a perfect prediction, a bad value); what the
# conformance kit feeds segmentation metrics (columns not listed are taken to be Dice-like)
SAMPLE_VALUE_RANGE: dict[str, tuple[float, float]] = {
    "dice": (1.0, 0.0), "iou": (1.0, 0.0), "nsd": (1.0, 0.0), "slice_dice": (1.0, 0.0), "hd95": (0.0, 20.0),
}


@dataclass(frozen=True)
class MetricDef:
    """One built-in metric.

    Attributes:
        name: registry name.
        task: ``classification`` or ``segmentation``.
        kind: ``performance``, ``fairness`` or ``calibration``.
        higher_is_better: direction of the reported value.
        measures: measure ids the metric is computed from.
        transform: summary transform, or ``None`` for a base (overall + per-group) metric.
        summary: one-line description.
        measure_higher_is_better: direction of the underlying measure (decides ``worst``).
    """

    name: str
    task: str
    kind: str
    higher_is_better: bool
    measures: tuple[str, ...]
    transform: str | None
    summary: str
    measure_higher_is_better: bool = True

    @property
    def thresholded(self) -> bool:
        """Whether the metric depends on a decision threshold."""
        return any(m in THRESHOLDED for m in self.measures)

    @property
    def needs(self) -> tuple[str, ...]:
        """Inputs the metric needs (``MetricSpec.needs``)."""
        if self.task == SEG:
            return (self.measures[0].split(":", 1)[1],)
        return ("labels", "scores", "threshold") if self.thresholded else ("labels", "scores")


def _base(name: str, task: str, kind: str, hib: bool, measure: str, summary: str) -> MetricDef:
    return MetricDef(name, task, kind, hib, (measure,), None, summary, hib)


def _summ(name: str, task: str, kind: str, hib: bool, measures: tuple[str, ...], transform: str,
          summary: str, measure_hib: bool = True) -> MetricDef:
    return MetricDef(name, task, kind, hib, measures, transform, summary, measure_hib)


def _group_family(stem: str, task: str, measure: str, label: str, hib: bool, kind: str) -> list[MetricDef]:
    """A base metric plus its worst-group and gap summaries."""
    worst = "worst_min" if hib else "worst_max"
    return [
        _base(stem, task, kind, hib, measure, f"{label}, overall and per group"),
        _summ(f"worst_group_{stem}", task, kind, hib, (measure,), worst, f"worst-group {label}", hib),
        _summ(f"{stem}_gap", task, "fairness", False, (measure,), "gap", f"max - min group {label}", hib),
    ]


def _equity_family(stem: str, task: str, measure: str, label: str) -> list[MetricDef]:
    return [
        _summ(f"es_{stem}_sumabs" if task == SEG else f"es_{stem}_sum", task, "fairness", True, (measure,),
              "es_sum", f"equity-scaled {label}: {label}/(1 + sum_g |{label} - {label}_g|) (Harvard)"),
        _summ(f"es_{stem}_std" if task == SEG else f"es_{stem}", task, "fairness", True, (measure,),
              "es_std" if task == SEG else "es_mean",
              f"equity-scaled {label}: {label}/(1 + std_g {label}_g) (FairMedFM)" if task == SEG
              else f"equity-scaled {label}: {label}/(1 + mean_g |{label} - {label}_g|) (FairDi eq. 4)"),
    ]


def _build() -> tuple[MetricDef, ...]:
    defs: list[MetricDef] = []
    # -- classification ---------------------------------------------------------------
    defs += _group_family("auc", CLS, "auc", "ROC AUC", True, "performance")
    defs += _equity_family("auc", CLS, "auc", "AUC")
    defs += [
        _summ("mean_psd", CLS, "fairness", False, ("auc",), "mean_psd", "std_g AUC_g / AUC (FairDi eq. 5)"),
        _summ("max_psd", CLS, "fairness", False, ("auc",), "max_psd", "(max_g - min_g AUC_g) / AUC (FairDi eq. 6)"),
    ]
    defs += _group_family("accuracy", CLS, "accuracy", "accuracy", True, "performance")
    defs += _group_family("f1", CLS, "f1", "F1 at the run threshold", True, "performance")
    defs += [
        _base("balanced_accuracy", CLS, "performance", True, "balanced_accuracy", "balanced accuracy"),
        _base("tpr", CLS, "performance", True, "tpr", "true positive rate at the run threshold"),
        _base("fpr", CLS, "performance", False, "fpr", "false positive rate at the run threshold"),
        _base("fnr", CLS, "performance", False, "fnr", "false negative rate at the run threshold"),
        _base("ppr", CLS, "performance", True, "ppr", "positive prediction (selection) rate"),
        _summ("equalized_odds_difference", CLS, "fairness", False, ("tpr", "fpr"), "max_gap",
              "max(TPR gap, FPR gap) between groups (fairlearn semantics)"),
        _summ("equal_opportunity_difference", CLS, "fairness", False, ("tpr",), "gap",
              "max - min group TPR (fairlearn semantics)"),
        _summ("demographic_parity_difference", CLS, "fairness", False, ("ppr",), "gap",
              "max - min group selection rate (fairlearn semantics)"),
        _summ("eqodd_score_medfair", CLS, "fairness", True, ("fpr", "tpr"), "one_minus_mean_gap",
              "MEDFAIR EqOdd = 1 - (|dFPR| + |dTPR|)/2 (higher fairer)"),
        _summ("eqopp_score_medfair", CLS, "fairness", True, ("tpr",), "one_minus_gap",
              "MEDFAIR EqOpp0 = 1 - |dTPR| (higher fairer)"),
        _summ("dp_score_medfair", CLS, "fairness", True, ("ppr",), "one_minus_gap",
              "MEDFAIR DP = 1 - |d positive rate| (higher fairer)"),
    ]
    defs += _group_family("ece", CLS, "ece", "ECE (15 equal-width bins)", False, "calibration")
    defs += _group_family("brier", CLS, "brier", "Brier score", False, "calibration")
    defs += _group_family("cvar_loss", CLS, "cvar_loss", "CVaR(0.1) of per-sample loss", False, "performance")
    # -- segmentation -----------------------------------------------------------------
    for col, label in (("dice", "Dice"), ("iou", "IoU")):
        defs += _group_family(col, SEG, f"mean:{col}", label, True, "performance")
        defs += _equity_family(col, SEG, f"mean:{col}", label)
    defs += _group_family("tail_dice", SEG, "tail:dice", "TailDice(0.1) = mean of worst 10% Dice", True,
                          "performance")
    defs += [
        _base("p10_dice", SEG, "performance", True, "p10:dice", "10th percentile of per-sample Dice"),
        _base("fail_rate", SEG, "performance", False, "fail:dice", "share of samples with Dice < 0.5"),
        _base("hidden_failure_gap", SEG, "hidden_failure", False, "hidden_gap:dice", "Dice - TailDice(0.1)"),
    ]
    # spatial errors (docs/methods.md §7, §8.2), in pixels/voxels; NaN samples are left out of the means
    defs += _group_family("hd95", SEG, "mean:hd95", "HD95 in px (samples with exactly one empty mask left out)",
                          False, "performance")
    defs += _group_family("nsd", SEG, "mean:nsd", "NSD at tau = 2 px", True, "performance")
    defs += _group_family("slice_dice", SEG, "mean:slice_dice",
                          "Dice of the prompted slices only (3D volumes segmented from slice-wise prompts)", True,
                          "performance")
    defs += [
        _base("boundary_error_share", SEG, "descriptive", False, "mean:boundary_error_share",
              "descriptive: share of error pixels (FP + FN) within 2 px of the ground-truth boundary; "
              "lower is not necessarily better (it says where errors lie, not how many)"),
    ]
    return tuple(defs)


METRIC_DEFS: tuple[MetricDef, ...] = _build()
BY_NAME: dict[str, MetricDef] = {d.name: d for d in METRIC_DEFS}
