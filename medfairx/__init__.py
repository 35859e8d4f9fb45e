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
    "SelectionStrategySpec",
    "TrainingError",
    "UnknownNameError",
    "__version__",
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
