"""Spec types: what plugins register. Specs are frozen data; heavy objects stay behind
lazy ``"module:attr"`` targets so that listing and ``medfairx plugins`` never import torch.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from medfairx.errors import ConfigError

NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
Task = Literal["classification", "segmentation"]
Target = Any  # a class, a callable, or a lazy "package.module:attr" string


def check_name(name: str, kind: str) -> str:
    """Return ``name`` if it is a valid registry name, else raise :class:`ConfigError`."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ConfigError(
            f"Invalid {kind} name {name!r}: names must match {NAME_RE.pattern} "
            "(lower-case letters, digits and underscores, starting with a letter)."
        )
    return name


def resolve_target(target: Target) -> Any:
    """Import a lazy ``"module:attr"`` target; return other targets unchanged."""
    if not isinstance(target, str):
        return target
    module_name, _, attr = target.partition(":")
    if not attr:
        raise ConfigError(f"Lazy target {target!r} must have the form 'package.module:attr'.")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def target_id(target: Target) -> str:
    """A stable identity for a target, used to tell identical re-registrations apart."""
    if isinstance(target, str):
        return target
    return f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', repr(target))}"


@dataclass(frozen=True)
class Origin:
    """Which plugin (and distribution) registered an item."""

    plugin: str
    dist: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        if self.dist:
            return f"plugin {self.plugin!r} ({self.dist} {self.version or ''})".replace(" )", ")")
        return f"plugin {self.plugin!r}"


class _Spec:
    """Shared behaviour: ``load()`` resolves the lazy target, ``identity()`` compares specs."""

    name: str
    target: Target

    def load(self) -> Any:
        """Resolve and return the target object (imports it if it is lazy)."""
        return resolve_target(self.target)

    def identity(self) -> tuple[Any, ...]:
        """What makes two registrations of the same name identical."""
        return (type(self).__name__, self.name, target_id(self.target))


@dataclass(frozen=True)
class DatasetCard:
    """What a dataset is: task, classes, attributes, provenance."""

    task: Task
    num_classes: int
    attributes: tuple[str, ...]
    patient_id_column: str
    license: str
    citation: str
    url: str
    spatial_dims: int = 2
    in_channels: int = 3
    revision: str = "unversioned"
    expected_layout: str = ""
    class_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatasetSpec(_Spec):
    """A dataset adapter. ``target`` is ``load(config: DatasetConfig) -> FairDataset``."""

    name: str
    target: Target
    card: DatasetCard
    summary: str = ""


@dataclass(frozen=True)
class GroupingSpec(_Spec):
    """A sensitive-attribute grouping.

    ``target`` is ``assign(metadata: pd.DataFrame) -> pd.Series`` returning a pandas
    Categorical aligned to the index (NaN = sample not in any group). ``dataset`` is the
    catalogue dataset it belongs to, or ``None`` for a generic grouping usable on any
    dataset that has ``columns``.
    """

    name: str
    target: Target
    columns: tuple[str, ...]
    description: str = ""
    min_group_size: int = 1
    dataset: str | None = None

    def assign(self, metadata: Any) -> Any:
        """Assign every row of ``metadata`` to a group (see class docstring)."""
        missing = [c for c in self.columns if c not in metadata.columns]
        if missing:
            raise ConfigError(
                f"Grouping {self.name!r} needs column(s) {missing} but the metadata has "
                f"{sorted(map(str, metadata.columns))}. Fix the grouping's `column` in "
                "datasets.yaml or the dataset adapter."
            )
        return self.load()(metadata)


@dataclass(frozen=True)
class MethodTags:
    """Capabilities of a method; they gate conformance checks and show on leaderboards."""

    uses_groups_in_fit: bool = False
    uses_groups_in_predict: bool = False
    tasks: tuple[Task, ...] = ("classification",)
    spatial_dims: tuple[int, ...] = (2,)
    multi_group: bool = True
    needs_gpu: bool = False
    non_deterministic: bool = False
    evaluation_only: bool = False
    needs_prompts: bool = False


@dataclass(frozen=True)
class MethodSpec(_Spec):
    """A bias-mitigation (or reference) method. ``target`` is a :class:`Method` subclass."""

    name: str
    target: Target
    tags: MethodTags = field(default_factory=MethodTags)
    summary: str = ""
    reference: str = ""
    unavailable: str | None = None  # why it cannot run here (missing package or weights); None = runnable

    @classmethod
    def from_class(cls, method_cls: type) -> MethodSpec:
        """Build a spec from a Method subclass's class attributes."""
        return cls(
            name=method_cls.name,
            target=method_cls,
            tags=method_cls.tags,
            summary=getattr(method_cls, "summary", ""),
            reference=getattr(method_cls, "reference", ""),
        )


METRIC_KINDS: tuple[str, ...] = ("performance", "fairness", "calibration", "hidden_failure", "descriptive")


@dataclass(frozen=True)
class MetricSpec(_Spec):
    """A metric over per-sample predictions.

    ``target`` is ``fn(y_true, y_score, *, sensitive_features, **kw) -> float``;
    ``kind`` is one of :data:`METRIC_KINDS`: "performance", "fairness", "calibration",
    "hidden_failure" (tail / failure indicators shown beside group means) or "descriptive"
    (says where or how errors occur; its direction orders tables but "better" is not implied).
    """

    name: str
    target: Target
    task: Task
    kind: str
    higher_is_better: bool
    needs: tuple[str, ...] = ("labels", "scores")
    summary: str = ""
    degenerate: str = "NaN with a warning when a group has a single class"


@dataclass(frozen=True)
class BackboneSpec(_Spec):
    """A network factory: ``target(*, in_channels, num_classes, spatial_dims, **kw) -> nn.Module``."""

    name: str
    target: Target
    tasks: tuple[Task, ...] = ("classification",)
    spatial_dims: tuple[int, ...] = (2,)
    summary: str = ""


@dataclass(frozen=True)
class SelectionStrategySpec(_Spec):
    """A model-selection strategy applied to validation history only."""

    name: str
    target: Target
    summary: str = ""


@dataclass(frozen=True)
class ReporterSpec(_Spec):
    """A reporter: ``target(results, out_dir: Path) -> list[Path]``."""

    name: str
    target: Target
    formats: tuple[str, ...] = ()
    summary: str = ""


@dataclass(frozen=True)
class ExecutorSpec(_Spec):
    """A sweep executor: ``target(**options) -> Executor`` (see :mod:`medfairx.runner.executors`)."""

    name: str
    target: Target
    summary: str = ""


SPEC_TYPES: dict[str, type] = {
    "datasets": DatasetSpec,
    "groupings": GroupingSpec,
    "methods": MethodSpec,
    "metrics": MetricSpec,
    "backbones": BackboneSpec,
    "selection_strategies": SelectionStrategySpec,
    "reporters": ReporterSpec,
    "executors": ExecutorSpec,
}

Register = Callable[..., None]
