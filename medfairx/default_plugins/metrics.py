"""Built-in metrics plugin: one :class:`~medfairx.specs.MetricSpec` per built-in metric.

Targets are lazy (``"medfairx.metrics.functions:<name>"``): importing this module reads
only the plain-data catalogue, never numpy-heavy code or torch.
"""

from __future__ import annotations

from medfairx.hookspecs import hookimpl
from medfairx.metrics.catalogue import METRIC_DEFS, MetricDef
from medfairx.specs import MetricSpec, Register

TARGET = "medfairx.metrics.functions:{name}"


def _degenerate(d: MetricDef) -> str:
    if d.task == "segmentation":
        return ("empty masks: both empty -> 1, one empty -> 0 (basic.dice_iou_per_sample); "
                "an empty group is NaN and excluded from min/gap")
    return "NaN with a warning when a group has a single class; excluded from min/gap"


def spec_of(d: MetricDef) -> MetricSpec:
    """The :class:`MetricSpec` of one built-in definition."""
    return MetricSpec(
        name=d.name,
        target=TARGET.format(name=d.name),
        task=d.task,  # type: ignore[arg-type]
        kind=d.kind,
        higher_is_better=d.higher_is_better,
        needs=d.needs,
        summary=d.summary,
        degenerate=_degenerate(d),
    )


@hookimpl
def register_metrics(register: Register) -> None:
    """Register every built-in metric."""
    for d in METRIC_DEFS:
        register(spec_of(d))
