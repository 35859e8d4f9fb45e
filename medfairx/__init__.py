"""medfairx: a plugin-based benchmark platform for fairness in medical imaging.

Importing this package is cheap: it never imports torch. Public lookups::

    medfairx.get("methods", "erm")          # a MethodSpec
    medfairx.list_names("metrics", "auc*")  # names matching a pattern
"""

from __future__ import annotations

from typing import Any

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
    ClaimComparison,
    ClaimSpec,
    DatasetCard,
    DatasetSpec,
    ExecutorSpec,
    GroupingSpec,
    MethodSpec,
    MethodTags,
    MetricSpec,
    ReporterSpec,
    SelectionStrategySpec,
)

__version__ = "0.1.0"

__all__ = [
    "BackboneSpec",
    "ClaimComparison",
    "ClaimSpec",
    "ConfigError",
    "DataError",
    "DatasetCard",
    "DatasetSpec",
    "ExecutorSpec",
    "GroupingSpec",
    "MedfairxError",
    "MethodSpec",
    "MethodTags",
    "MetricSpec",
    "NotFittedError",
    "PluginLoadError",
    "ReporterSpec",
    "AuditResult",
    "Method",
    "SelectionStrategySpec",
    "TrainableMethod",
    "TrainingError",
    "UnknownNameError",
    "__version__",
    "audit",
    "get",
    "hookimpl",
    "list_names",
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
}


def __getattr__(name: str) -> Any:
    """Lazy exports: ``medfairx.TrainableMethod`` imports torch only when asked for."""
    if name in _LAZY:
        from medfairx.specs import resolve_target

        return resolve_target(_LAZY[name])
    raise AttributeError(f"module 'medfairx' has no attribute {name!r}")
