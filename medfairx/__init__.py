"""medfairx: a plugin-based benchmark platform for fairness in medical imaging.

Importing this package is cheap: it never imports torch. Public lookups::

    medfairx.get("methods", "erm")          # a MethodSpec
    medfairx.list_names("metrics", "auc*")  # names matching a pattern

The public API for plugin authors is this package (specs, search-space distributions,
``hookimpl``, ``Register``, errors, ``Method`` / ``TrainableMethod`` and the scoring helpers
below), :mod:`medfairx.methods` (everything a method needs to train and predict),
:mod:`medfairx.errors`, :mod:`medfairx.testing` (the conformance kit),
:mod:`medfairx.data.prompts` (the prompt contract of prompted segmentation) and
:mod:`medfairx.store` (the layout of a run folder, for tracking plugins). Other modules are
internal and may change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from medfairx.errors import (
    ConfigError,
    DataError,
    MedfairxError,
    NotFittedError,
    PluginLoadError,
    TrainingError,
    UnknownNameError,
)
from medfairx.hookspecs import hookimpl
from medfairx.specs import (
    BackboneSpec,
    Choice,
    ClaimComparison,
    ClaimSpec,
    DatasetCard,
    DatasetSpec,
    ExecutorSpec,
    GroupingSpec,
    IntRange,
    LogUniform,
    MethodSpec,
    MethodTags,
    MetricSpec,
    Register,
    ReporterSpec,
    SelectionStrategySpec,
    Uniform,
)
from medfairx.version import __version__

if TYPE_CHECKING:
    from medfairx.methods.base import Method
    from medfairx.methods.trainable import TrainableMethod
    from medfairx.metrics.basic import dice_iou_per_sample
    from medfairx.metrics.evaluate import score_predictions
    from medfairx.metrics.surface import boundary_shell
    from medfairx.report.audit import AuditResult, audit

__all__ = [
    "AuditResult",
    "BackboneSpec",
    "Choice",
    "ClaimComparison",
    "ClaimSpec",
    "ConfigError",
    "DataError",
    "DatasetCard",
    "DatasetSpec",
    "ExecutorSpec",
    "GroupingSpec",
    "IntRange",
    "LogUniform",
    "MedfairxError",
    "Method",
    "MethodSpec",
    "MethodTags",
    "MetricSpec",
    "NotFittedError",
    "PluginLoadError",
    "Register",
    "ReporterSpec",
    "SelectionStrategySpec",
    "TrainableMethod",
    "TrainingError",
    "Uniform",
    "UnknownNameError",
    "audit",
    "boundary_shell",
    "dice_iou_per_sample",
    "get",
    "hookimpl",
    "list_names",
    "score_predictions",
    "__version__",
]


def get(kind: str, name: str) -> Any:
    """Return the spec registered as ``name`` in registry ``kind`` (e.g. ``"methods"``)."""
    from medfairx.plugins import get_host

    return get_host().registry(kind).get(name)


def list_names(kind: str, pattern: str = "*") -> list[str]:
    """Names registered in ``kind`` that match the fnmatch ``pattern``."""
    from medfairx.plugins import get_host

    return get_host().registry(kind).names(pattern)


_LAZY = {
    "Method": "medfairx.methods.base:Method",
    "TrainableMethod": "medfairx.methods.trainable:TrainableMethod",
    "audit": "medfairx.report.audit:audit",
    "AuditResult": "medfairx.report.audit:AuditResult",
    "boundary_shell": "medfairx.metrics.surface:boundary_shell",
    "dice_iou_per_sample": "medfairx.metrics.basic:dice_iou_per_sample",
    "score_predictions": "medfairx.metrics.evaluate:score_predictions",
}


def __getattr__(name: str) -> Any:
    """Lazy exports: ``medfairx.TrainableMethod`` imports torch only when asked for."""
    if name in _LAZY:
        from medfairx.specs import resolve_target

        return resolve_target(_LAZY[name])
    raise AttributeError(f"module 'medfairx' has no attribute {name!r}")
