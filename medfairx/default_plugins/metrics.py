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
        column = d.needs[0]
        rule = {
            "hd95": "both masks empty -> 0; exactly one empty -> NaN, left out of the means (surface.py)",
            "nsd": "both masks empty -> 1; exactly one empty -> 0 (surface.py)",
            "boundary_error_share": "no error pixel -> NaN, left out of the means (surface.py)",
            "slice_dice": "only runs prompted slice by slice have it; a volume without prompts -> NaN",
        }.get(column, "empty masks: both empty -> 1, one empty -> 0 (basic.dice_iou_per_sample)")
        return f"{rule}; a group without values is NaN and excluded from min/gap"
    return "NaN with a warning when a group has a single class; excluded from min/gap"


def spec_of(d: MetricDef) -> MetricSpec:
    """The :class:`MetricSpec` of one built-in definition."""
    return MetricSpec(
        name=d.name,
        target=TARGET.format(name=d.name),
        task=d.task,  # type: ignore[arg-type]  # MetricDef.task is a plain str holding a Task value
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
