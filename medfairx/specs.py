"""Spec types: what plugins register. Specs are frozen data; heavy objects stay behind
lazy ``"module:attr"`` targets so that listing and ``medfairx plugins`` never import torch.
"""

from __future__ import annotations

import importlib
import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal

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
class PublishedFile:
    """One file of a published dataset release, as its publisher or a documented copy gives it.

    ``path`` is relative to the dataset root; every other field is optional (empty/``None``:
    not known, not checked). ``rows`` counts data rows (the header excluded). A file that is
    not ``required`` (e.g. an older version kept beside the current one) is checked when present.
    """

    path: str
    sha256: str = ""
    md5: str = ""
    size: int | None = None
    rows: int | None = None
    required: bool = True


@dataclass(frozen=True)
class PublishedFolder:
    """A folder of a known copy: how many files match ``pattern`` and, where known, which.

    Several entries with the same ``path`` are alternatives (e.g. the full release and a
    documented subset); a local folder matches the one whose names fit best.

    Attributes:
        path: folder relative to the dataset root (``images``).
        pattern: glob below it (``*.jpg``; ``**/*.png`` searches subfolders).
        count: number of matching files.
        label: which copy this is (shown in reports).
        listing_sha256: sha256 of the ``sha256sum`` listing (``"<sha256>  <prefix><relpath>"``
            lines sorted by path, bytewise), as published integrity checks give it.
        listing_prefix: what the listing writes before each relative path (``./`` for ``find .``).
        names: where the expected file names come from: ``"package:<file>"`` (a list shipped
            with medfairx, one name per line), ``"<csv or tsv in root>:<column>"`` (a manifest of
            the copy, whose own checksum is a :class:`PublishedFile`).
        name_suffix: appended to each name read from ``names`` (``.jpg``).
        sha256_column: column of the manifest holding each file's sha256 (names changed files).
    """

    path: str
    pattern: str
    count: int
    label: str = ""
    listing_sha256: str = ""
    listing_prefix: str = ""
    names: str = ""
    name_suffix: str = ""
    sha256_column: str = ""


@dataclass(frozen=True)
class PublishedRelease:
    """What is known of a dataset's published release: files with checksums, folders with counts."""

    source: str
    files: tuple[PublishedFile, ...] = ()
    folders: tuple[PublishedFolder, ...] = ()


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
    published: PublishedRelease | None = None
    caveats: tuple[str, ...] = ()
    """Facts that qualify every group comparison on the dataset (confounded attributes,
    automatic labels); leaderboards repeat them wherever a gap on the dataset is shown."""


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
    #: what ``fit`` can take: "images" (pixels) and/or "features" (frozen-encoder vectors)
    inputs: tuple[str, ...] = ("images", "features")


@dataclass(frozen=True)
class Uniform:
    """A float drawn uniformly from ``[low, high]``."""

    low: float
    high: float
    kind: ClassVar[str] = "uniform"

    def problems(self) -> list[str]:
        """Why this range is empty or invalid (empty list: it is fine)."""
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (self.low, self.high)):
            return [f"{self!r}: low and high must be numbers"]
        return [] if self.low < self.high else [f"{self!r} is an empty range: low must be < high"]

    def grid(self, n: int = 3) -> list[Any]:
        """``n`` evenly spaced values from ``low`` to ``high`` (the grid sampler's points)."""
        return [float(self.low + (self.high - self.low) * i / (n - 1)) for i in range(n)]

    def sample(self, rng: random.Random) -> Any:
        """One value drawn with ``rng``."""
        return rng.uniform(self.low, self.high)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``medfairx list methods --json``)."""
        return {"type": self.kind, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class LogUniform(Uniform):
    """A positive float whose logarithm is uniform on ``[log low, log high]`` (learning rates)."""

    kind: ClassVar[str] = "log_uniform"

    def problems(self) -> list[str]:
        """As :meth:`Uniform.problems`, and ``low`` must be > 0."""
        problems = super().problems()
        if not problems and self.low <= 0:
            problems.append(f"{self!r}: a log-uniform range needs low > 0")
        return problems

    def grid(self, n: int = 3) -> list[Any]:
        """``n`` log-spaced values from ``low`` to ``high``."""
        a, b = math.log(self.low), math.log(self.high)
        inner = [float(math.exp(a + (b - a) * i / (n - 1))) for i in range(1, n - 1)]
        return [float(self.low), *inner, float(self.high)]

    def sample(self, rng: random.Random) -> Any:
        """One value drawn with ``rng``."""
        return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))


@dataclass(frozen=True)
class IntRange:
    """An integer drawn uniformly from ``low, low + step, ..., high`` (both ends included)."""

    low: int
    high: int
    step: int = 1
    kind: ClassVar[str] = "int"

    def problems(self) -> list[str]:
        """Why this range is empty or invalid (empty list: it is fine)."""
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (self.low, self.high, self.step)):
            return [f"{self!r}: low, high and step must be integers"]
        if self.step < 1:
            return [f"{self!r}: step must be >= 1"]
        return [] if self.low < self.high else [f"{self!r} is an empty range: low must be < high"]

    def values(self) -> list[int]:
        """Every value of the range."""
        return list(range(self.low, self.high + 1, self.step))

    def grid(self, n: int = 3) -> list[Any]:
        """Every value when there are at most 5, else ``n`` evenly spaced ones."""
        values = self.values()
        if len(values) <= 5:
            return values
        return sorted({values[round(i * (len(values) - 1) / (n - 1))] for i in range(n)})

    def sample(self, rng: random.Random) -> Any:
        """One value drawn with ``rng``."""
        return rng.choice(self.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``medfairx list methods --json``)."""
        return {"type": self.kind, "low": self.low, "high": self.high, "step": self.step}


@dataclass(frozen=True)
class Choice:
    """One of ``values`` (strings, numbers, booleans or ``None``), each equally likely."""

    values: tuple[Any, ...]
    kind: ClassVar[str] = "choice"

    def __post_init__(self) -> None:
        if isinstance(self.values, (list, set, frozenset)):
            object.__setattr__(self, "values", tuple(self.values))

    def problems(self) -> list[str]:
        """Why this choice is empty or invalid (empty list: it is fine)."""
        if not isinstance(self.values, tuple) or len(self.values) < 2:
            return [f"{self!r} is empty: give at least two values"]
        if len(set(map(repr, self.values))) != len(self.values):
            return [f"{self!r} repeats a value"]
        bad = [v for v in self.values if v is not None and not isinstance(v, (str, int, float, bool))]
        return [f"{self!r}: values must be str, int, float, bool or None, not {type(bad[0]).__name__}"] if bad else []

    def grid(self, n: int = 3) -> list[Any]:
        """Every value."""
        return list(self.values)

    def sample(self, rng: random.Random) -> Any:
        """One value drawn with ``rng``."""
        return rng.choice(self.values)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``medfairx list methods --json``)."""
        return {"type": self.kind, "values": list(self.values)}


Distribution = Uniform | LogUniform | IntRange | Choice
DISTRIBUTIONS: tuple[type[Uniform], type[IntRange], type[Choice]] = (Uniform, IntRange, Choice)  # LogUniform is a Uniform

def distribution_from_dict(data: Any) -> Distribution:
    """The distribution a suite writes in YAML: the JSON form of ``to_dict`` (``{type: uniform |
    log_uniform | int | choice, ...}``) or a plain list, which is a :class:`Choice`.

    Raises:
        ValueError: an unknown ``type``, missing or extra keys, or an empty range (the message
            names what to write instead).
    """
    if isinstance(data, (list, tuple)):
        data = {"type": "choice", "values": list(data)}
    kinds = {cls.kind: cls for cls in (Uniform, LogUniform, IntRange, Choice)}
    if not isinstance(data, dict) or data.get("type") not in kinds:
        raise ValueError(f"{data!r} is not a distribution: write a list of choices or {{type: {' | '.join(kinds)}, "
                         "...}} (uniform/log_uniform: low, high; int: low, high, step; choice: values)")
    cls = kinds[data["type"]]
    kwargs = {k: v for k, v in data.items() if k != "type"}
    try:
        dist: Distribution = cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"{data!r}: {exc}; a {data['type']} takes "
                         f"{', '.join(f.name for f in fields(cls))}") from exc
    problems = dist.problems()
    if problems:
        raise ValueError("; ".join(problems))
    return dist


#: The recipe's own hyper-parameters, searched for every method that takes a ``recipe``
#: (ranges of MEDFAIR's learning-rate / weight-decay search for Adam); a method's own
#: ``search_space`` entry of the same name replaces the default.
RECIPE_SEARCH_SPACE: dict[str, Distribution] = {
    "lr": LogUniform(1e-5, 1e-2),
    "weight_decay": LogUniform(1e-6, 1e-2),
}


def search_space_problems(space: Any, *, params: list[str], recipe_keys: list[str], takes_any: bool = False) -> list[str]:
    """Every problem of a declared search space, each naming the parameter (empty list: fine).

    Args:
        space: ``{name: distribution}`` as a method declares it.
        params: the method's ``__init__`` arguments.
        recipe_keys: :class:`~medfairx.methods.base.TrainRecipe` fields (searched through the
            method's ``recipe`` argument).
        takes_any: ``__init__`` takes ``**kwargs`` (any name is accepted).
    """
    if not isinstance(space, dict):
        return [f"search_space must be a dict {{name: distribution}}, not {type(space).__name__}"]
    problems = []
    for name, dist in space.items():
        if not isinstance(dist, DISTRIBUTIONS):
            problems.append(f"{name!r}: {dist!r} is not a Uniform, LogUniform, IntRange or Choice")
            continue
        problems += [f"{name!r}: {p}" for p in dist.problems()]
        if name == "recipe":
            problems.append("'recipe' is searched key by key (declare 'lr', 'weight_decay', ... instead)")
        elif name in recipe_keys and name not in params:
            if "recipe" not in params and not takes_any:
                problems.append(f"{name!r} is a recipe key but __init__ takes no `recipe` argument to pass it")
        elif name not in params and not takes_any:
            problems.append(f"{name!r} is not an __init__ argument (it takes: {', '.join(params) or 'none'})")
    return problems


def split_sample(sample: dict[str, Any], *, params: list[str], recipe_keys: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(init arguments, recipe changes)`` of one sampled configuration."""
    recipe = {k: v for k, v in sample.items() if k in recipe_keys and k not in params}
    return {k: v for k, v in sample.items() if k not in recipe}, recipe


@dataclass(frozen=True)
class MethodSpec(_Spec):
    """A bias-mitigation (or reference) method. ``target`` is a :class:`Method` subclass."""

    name: str
    target: Target
    tags: MethodTags = field(default_factory=MethodTags)
    summary: str = ""
    reference: str = ""
    unavailable: str | None = None  # why it cannot run here (missing package or weights); None = runnable
    #: ``{name: Uniform | LogUniform | IntRange | Choice}``: what ``medfairx bench --trials``
    #: searches; names are ``__init__`` arguments or recipe keys (``lr``, ``weight_decay``,
    #: passed through ``recipe``), on top of :data:`RECIPE_SEARCH_SPACE`
    search_space: dict[str, Any] = field(default_factory=dict, hash=False)
    #: ``{task: {name: distribution | None}}``: entries that replace (``None``: drop) entries of
    #: ``search_space`` on that task, for values a method accepts on one task only
    task_search_space: dict[str, dict[str, Any]] = field(default_factory=dict, hash=False)
    #: ``{backbone: {name: distribution | None}}``: the same, for the network a run trains
    #: (e.g. a frozen protocol's ``linear`` head, which has no layers to split)
    backbone_search_space: dict[str, dict[str, Any]] = field(default_factory=dict, hash=False)

    def search_space_for(self, task: str | None, backbone: str | None = None) -> dict[str, Any]:
        """``search_space`` with ``task``'s entries of ``task_search_space``, then ``backbone``'s
        of ``backbone_search_space``, applied."""
        merged = {**self.search_space, **self.task_search_space.get(task or "", {}),
                  **self.backbone_search_space.get(backbone or "", {})}
        return {name: dist for name, dist in merged.items() if dist is not None}

    @classmethod
    def from_class(cls, method_cls: type[Any]) -> MethodSpec:
        """Build a spec from a Method subclass's class attributes (``name``, ``tags``, ...)."""
        return cls(
            name=method_cls.name,
            target=method_cls,
            tags=method_cls.tags,
            summary=getattr(method_cls, "summary", ""),
            reference=getattr(method_cls, "reference", ""),
            search_space=dict(getattr(method_cls, "search_space", None) or {}),
            task_search_space=dict(getattr(method_cls, "task_search_space", None) or {}),
            backbone_search_space=dict(getattr(method_cls, "backbone_search_space", None) or {}),
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
    namespace: bool = False  # a family named as "<name>:<model>" (e.g. timm:resnet18); target gets model=


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


CLAIM_DIRECTIONS: tuple[str, ...] = ("up", "down", "not_down")
CLAIM_GROUPS: tuple[str, ...] = ("every", "minority", "dominant")


@dataclass(frozen=True)
class ClaimComparison:
    """One required comparison of a claim's method against a baseline.

    Attributes:
        metric: results-table metric name (``auc``, ``worst_group_auc``, ``f1`` ...).
        scope: ``overall``, ``summary`` or ``group``.
        baseline: the method compared against.
        direction: ``up`` (method higher), ``down`` (method lower, e.g. a smaller gap) or
            ``not_down`` (method not lower beyond CI overlap).
        groups: for ``scope="group"``: ``every``, ``minority`` (smallest n) or
            ``dominant`` (largest n).
        label: human-readable name of the compared quantity.
    """

    metric: str
    scope: str
    baseline: str
    direction: str
    groups: str = ""
    label: str = ""

    def __post_init__(self) -> None:
        if self.direction not in CLAIM_DIRECTIONS:
            raise ValueError(f"direction must be one of {CLAIM_DIRECTIONS}; got {self.direction!r}")
        if self.scope == "group" and self.groups not in CLAIM_GROUPS:
            raise ValueError(f"a group comparison needs groups in {CLAIM_GROUPS}; got {self.groups!r}")


@dataclass(frozen=True)
class ClaimSpec:
    """A published claim about ``method``: comparisons that must all hold (plain data, no target).

    The leaderboard index checks every registered claim (:mod:`medfairx.report.claims`) in
    each (dataset, grouping) block where the method and all its baselines have results.

    Attributes:
        name: registry name, also the page anchor ``claim-<name>``.
        method: the claiming method.
        text: the paper's claim, in words.
        comparisons: the :class:`ClaimComparison` s that make up the claim.
        title: shown as the claim's heading (default: ``name``).
    """

    name: str
    method: str
    text: str
    comparisons: tuple[ClaimComparison, ...]
    title: str = ""

    @property
    def key(self) -> str:
        """The registry name (the page anchor is ``claim-<key>``)."""
        return self.name

    @property
    def label(self) -> str:
        """The heading shown on the page."""
        return self.title or self.name

    @property
    def methods(self) -> tuple[str, ...]:
        """The claiming method first, then every baseline (no repeats)."""
        return tuple(dict.fromkeys([self.method, *(c.baseline for c in self.comparisons)]))

    def identity(self) -> tuple[Any, ...]:
        """What makes two registrations of the same name identical: all of the claim."""
        return (type(self).__name__, self.name, self.method, self.text, self.comparisons, self.title)


SPEC_TYPES: dict[str, type[_Spec] | type[ClaimSpec]] = {
    "datasets": DatasetSpec,
    "groupings": GroupingSpec,
    "methods": MethodSpec,
    "metrics": MetricSpec,
    "backbones": BackboneSpec,
    "selection_strategies": SelectionStrategySpec,
    "reporters": ReporterSpec,
    "executors": ExecutorSpec,
    "claims": ClaimSpec,
}

Register = Callable[..., None]
