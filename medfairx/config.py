"""The dataset catalogue (``datasets.yaml``): schema, loading and validation.

A catalogue names datasets (adapter, files, label, groupings, split) and suites (dataset ×
grouping pairs plus run settings). Strings may use ``${VAR}`` and ``${VAR:-default}``;
relative paths resolve against the directory of the yaml file that holds them. Every
validation error names the file, the key path, the YAML line when known, and the fix.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from medfairx.contracts import TrainRecipe
from medfairx.errors import ConfigError, UnknownNameError
from medfairx.specs import NAME_RE, distribution_from_dict

EMBEDDED_CATALOGUE = Path(__file__).parent / "data" / "embedded.yaml"
INCLUDES: dict[str, Path] = {"embedded": EMBEDDED_CATALOGUE}
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Strict(BaseModel):
    """Base model: frozen; unknown keys are errors (reported with the allowed keys)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _raise_problems(problems: list[tuple[tuple[str, ...], str]]) -> None:
    """Raise one validation error carrying several ``(relative key path, message)`` problems."""
    if problems:
        raise PydanticCustomError(
            "problems", "{summary}", {"summary": "; ".join(m for _, m in problems), "problems": problems}
        )


def _absolute(value: str | Path, base: Path | None) -> Path:
    """``value`` made absolute against ``base`` (when relative) and normalised."""
    path = Path(value).expanduser()
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    return Path(os.path.normpath(path))


def _resolve_path(value: Any, info: ValidationInfo) -> Any:
    """Field validator: resolve a relative path against ``context['base_dir']``."""
    return None if value is None else _absolute(value, (info.context or {}).get("base_dir"))


class LabelConfig(_Strict):
    """Classification label: ``column`` plus either ``positive`` values (binary) or
    ``classes`` (ordered values, multi-class)."""

    column: str
    positive: list[str] | None = None
    classes: list[str] | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> LabelConfig:
        if self.positive is not None and self.classes is not None:
            raise ValueError("give either `positive` (binary label) or `classes` (multi-class), not both")
        if self.positive is not None and not self.positive:
            raise ValueError("`positive` must list at least one value")
        if self.classes is not None and len(set(self.classes)) < 2:
            raise ValueError("`classes` must list at least two distinct values")
        return self

    @property
    def num_classes(self) -> int:
        """Number of classes this label definition produces."""
        return len(self.classes) if self.classes else 2


class SplitConfig(_Strict):
    """Patient-disjoint split ratios (must sum to 1) and seed; ``manifest`` pins a saved split."""

    train: float = Field(default=0.6, ge=0, le=1)
    val: float = Field(default=0.2, ge=0, le=1)
    test: float = Field(default=0.2, ge=0, le=1)
    seed: int = 0
    stratify: bool = True
    manifest: Path | None = None

    _resolve = field_validator("manifest", mode="before")(_resolve_path)

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitConfig:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(
                f"split ratios train={self.train} + val={self.val} + test={self.test} = {total:g}; "
                "they must sum to 1"
            )
        if self.train <= 0:
            raise ValueError("split `train` must be > 0")
        return self

    @property
    def ratios(self) -> dict[str, float]:
        """``{"train": ..., "val": ..., "test": ...}``."""
        return {"train": self.train, "val": self.val, "test": self.test}


class GroupingConfig(_Strict):
    """A grouping rule: ``column`` (+ ``map`` or ``bins``/``labels``) or ``intersection``."""

    column: str | None = None
    map: dict[str, str | None] | None = None
    bins: list[float] | None = None
    labels: list[str] | None = None
    intersection: list[str] | None = None
    description: str = ""
    min_group_size: int | None = Field(None, ge=1)

    @field_validator("map", mode="before")
    @classmethod
    def _str_keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {_scalar_str(k): (None if v is None else str(v)) for k, v in value.items()}
        return value

    def rule_text(self) -> str:
        """The rule in one line, e.g. ``age: bins (60] -> <=60, >60``."""
        if self.intersection:
            return "intersection of " + " x ".join(self.intersection)
        if self.bins is not None:
            return f"{self.column}: right-closed cut points {self.bins} -> {self.labels or 'auto labels'}"
        if self.map:
            return f"{self.column}: map {self.map}"
        return f"{self.column}: its values"

    @model_validator(mode="after")
    def _consistent(self) -> GroupingConfig:
        if (self.column is None) == (self.intersection is None):
            raise ValueError("give exactly one of `column` or `intersection`")
        if self.intersection is not None:
            if len(self.intersection) < 2 or len(set(self.intersection)) != len(self.intersection):
                raise ValueError("`intersection` needs at least two distinct grouping names")
            if self.map or self.bins or self.labels:
                raise ValueError("`intersection` cannot be combined with `map`, `bins` or `labels`")
        if self.map is not None and self.bins is not None:
            raise ValueError("give either `map` (categorical) or `bins` (numeric), not both")
        if self.labels is not None and self.bins is None:
            raise ValueError("`labels` needs `bins`")
        if self.bins is not None:
            if not self.bins or any(later <= earlier for earlier, later in zip(self.bins, self.bins[1:], strict=False)):
                raise ValueError("`bins` must be a non-empty, strictly increasing list of cut points")
            if self.labels is not None and len(self.labels) != len(self.bins) + 1:
                raise ValueError(
                    f"{len(self.bins)} cut point(s) make {len(self.bins) + 1} bins but "
                    f"{len(self.labels)} label(s) were given"
                )
        return self

    @property
    def kind(self) -> Literal["categorical", "bins", "intersection"]:
        """Which rule this is."""
        if self.intersection is not None:
            return "intersection"
        return "bins" if self.bins is not None else "categorical"


class HoldoutConfig(_Strict):
    """Leave-one-value-out: the rows whose ``column`` equals ``value`` are held out of training,
    validation and test, and scored as the external split ``external:<dataset>@<column>=<value>``."""

    column: str
    value: str

    @field_validator("value", mode="before")
    @classmethod
    def _str_value(cls, value: Any) -> Any:
        return _scalar_str(value)

    @property
    def split(self) -> str:
        """Name of the held-out split in the dataset's manifest."""
        return "holdout"


class DatasetConfig(_Strict):
    """One catalogue dataset. ``name`` is filled in from its key."""

    name: str = ""
    adapter: str
    root: Path | None = None
    description: str = ""
    task: Literal["classification", "segmentation"] | None = None
    label: LabelConfig | None = None
    image_size: int | tuple[int, ...] | None = None
    split: SplitConfig = Field(default_factory=SplitConfig)
    min_group_size: int = Field(1, ge=1)
    options: dict[str, Any] = Field(default_factory=dict)
    groupings: dict[str, GroupingConfig] = Field(default_factory=dict)
    holdout: HoldoutConfig | None = None

    _resolve = field_validator("root", mode="before")(_resolve_path)

    @field_validator("image_size")
    @classmethod
    def _size(cls, value: int | tuple[int, ...] | None) -> int | tuple[int, ...] | None:
        sizes = (value,) if isinstance(value, int) else (value or ())
        if any(s < 1 for s in sizes) or (isinstance(value, tuple) and len(value) not in (2, 3)):
            raise ValueError("image_size must be a positive int, [h, w] or [d, h, w]")
        return value

    @model_validator(mode="after")
    def _grouping_refs(self) -> DatasetConfig:
        problems: list[tuple[tuple[str, ...], str]] = []
        for gname, g in self.groupings.items():
            if not NAME_RE.match(gname):
                problems.append((("groupings", gname), f"grouping name {gname!r} must match {NAME_RE.pattern}"))
            for part in g.intersection or ():
                if part == gname or part not in self.groupings:
                    problems.append(
                        (
                            ("groupings", gname, "intersection"),
                            f"{part!r} is not another grouping of this dataset; groupings: {', '.join(self.groupings)}",
                        )
                    )
                elif self.groupings[part].intersection is not None:
                    problems.append((("groupings", gname, "intersection"), f"intersect plain groupings, not {part!r}"))
        _raise_problems(problems)
        return self

    def spatial_size(self, default: tuple[int, ...]) -> tuple[int, ...]:
        """``image_size`` as a tuple; an int repeats over ``len(default)`` dims."""
        if self.image_size is None:
            return default
        if isinstance(self.image_size, int):
            return (self.image_size,) * len(default)
        return tuple(self.image_size)

    def group_min_size(self, grouping: str) -> int:
        """``min_group_size`` of ``grouping``, falling back to the dataset's."""
        own = self.groupings[grouping].min_group_size
        return own if own is not None else self.min_group_size


#: Smallest allowed value of the numeric recipe keys (``lr`` must be above its bound).
RECIPE_MINIMA: dict[str, float] = {
    "epochs": 1, "batch_size": 1, "lr": 0.0, "weight_decay": 0.0, "momentum": 0.0, "step_size": 1,
    "gamma": 0.0, "patience": 0, "max_steps_per_epoch": 1, "num_workers": 0,
}


def recipe_range_problems(recipe: dict[str, Any]) -> list[str]:
    """``key: must be ...`` for every numeric recipe value out of range (empty: all fine)."""
    problems = []
    for key, low in RECIPE_MINIMA.items():
        value = recipe.get(key)
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if key == "lr" and not value > low:
            problems.append(f"{key} must be > {low:g} (got {value})")
        elif value < low:
            problems.append(f"{key} must be >= {low:g} (got {value})")
    return problems


class EncoderConfig(_Strict):
    """A suite's ``encoder:``: the network whose features the frozen protocols train heads on
    (or that ``finetune`` trains end to end), with its weights."""

    backbone: str = "efficientnet_lite0"
    pretrained: bool = True
    weights: Path | None = None
    batch_size: int = Field(64, ge=1)
    options: dict[str, Any] = Field(default_factory=dict)

    _resolve = field_validator("weights", mode="before")(_resolve_path)


#: Feature heads a frozen protocol trains (``backbones.classification`` under such a protocol).
FEATURE_HEADS = ("linear", "mlp")


#: Objectives a search can maximise on validation (``auc`` and ``dice`` are aliases across tasks).
SEARCH_OBJECTIVES = ("auc", "worst_group_auc", "dice", "worst_group_dice")


class SearchConfig(_Strict):
    """A suite's ``search:``: hyper-parameter search per method (see :mod:`medfairx.runner.search`).

    ``trials`` configurations per (method, dataset[, grouping]) are trained on the search
    ``seed`` (never one of the suite's seeds); ``objective`` (a validation metric, on the
    epoch ``strategy`` picks) is what the sampler maximises.
    """

    trials: int = Field(default=20, ge=1)
    sampler: Literal["random", "tpe", "grid"] = "tpe"
    seed: int = Field(default=1000, ge=0)
    objective: Literal["auc", "worst_group_auc", "dice", "worst_group_dice"] = "auc"
    strategy: str = "final"
    #: method → ``{parameter: distribution}`` replacing entries of its declared space in this
    #: suite (a list is a choice; else ``{type: uniform | log_uniform | int | choice, ...}``)
    space: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("space")
    @classmethod
    def _distributions(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for method, entries in value.items():
            out[method] = {}
            for name, data in entries.items():
                try:
                    out[method][name] = distribution_from_dict(data).to_dict()
                except ValueError as exc:
                    raise ValueError(f"search.space.{method}.{name}: {exc}") from None
        return out

    def space_overrides(self) -> dict[str, dict[str, Any]]:
        """``space`` as distributions (:mod:`medfairx.specs`)."""
        return {m: {k: distribution_from_dict(d) for k, d in e.items()} for m, e in self.space.items()}


class SuiteConfig(_Strict):
    """A named benchmark suite: dataset → groupings, methods, seeds and run settings.

    ``protocol``: ``finetune`` (end to end, the default), ``linear_probe`` or ``knn`` (heads on
    features the ``encoder`` computes once and caches; ``backbones.classification`` is then the
    head, ``linear`` or ``mlp``).
    """

    description: str = ""
    datasets: dict[str, list[str]]
    methods: list[str] | None = None
    seeds: list[Annotated[int, Field(ge=0)]] = Field(default_factory=lambda: [0], min_length=1)
    params: Literal["default", "test"] = "default"
    method_params: dict[str, dict[str, Any]] = Field(default_factory=dict)  # per-method hyper-parameter overrides
    backbones: dict[Literal["classification", "segmentation"], str] = Field(default_factory=dict)
    recipe: dict[str, Any] = Field(default_factory=dict)
    device: str = "auto"
    jobs: int = Field(1, ge=1)  # runs at once on this machine (local executor), unless --jobs says otherwise
    time_budget_s: float | None = Field(None, gt=0)
    protocol: Literal["finetune", "linear_probe", "knn"] = "finetune"
    encoder: EncoderConfig | None = None
    #: frozen protocols: heads standardise each feature with the training split's mean and std
    standardize_features: bool = False
    search: SearchConfig | None = None
    #: training dataset → external datasets it is also scored on: a list (each scored under the
    #: training dataset's suite groupings) or ``{external: [groupings]}``
    evaluate_on: dict[str, list[str] | dict[str, list[str]]] = Field(default_factory=dict)

    def external_sets(self, dataset: str) -> dict[str, list[str]]:
        """External datasets of training dataset ``dataset`` → the groupings they are scored under."""
        listed = self.evaluate_on.get(dataset) or {}
        if isinstance(listed, list):
            return {name: list(self.datasets.get(dataset, [])) for name in listed}
        return {name: list(gs) for name, gs in listed.items()}

    @model_validator(mode="after")
    def _search_seed(self) -> SuiteConfig:
        if self.search is not None and self.search.seed in self.seeds:
            raise ValueError(f"search.seed {self.search.seed} is one of the suite's seeds {self.seeds}; trials are "
                             "trained on a seed of their own: choose another search.seed")
        return self

    @model_validator(mode="after")
    def _protocol_head(self) -> SuiteConfig:
        if self.standardize_features and self.protocol == "finetune":
            raise ValueError("standardize_features applies to the cached features of a frozen protocol "
                             "(protocol: linear_probe or knn), not to protocol 'finetune'")
        head = self.backbones.get("classification")
        if self.protocol != "finetune" and head is not None and head not in FEATURE_HEADS:
            raise ValueError(
                f"under protocol {self.protocol!r}, backbones.classification is the head trained on the cached "
                f"features ({' or '.join(FEATURE_HEADS)}), not {head!r}; name the encoder in `encoder: {{backbone: ...}}`"
            )
        return self

    @field_validator("recipe")
    @classmethod
    def _recipe_fields(cls, value: dict[str, Any]) -> dict[str, Any]:
        allowed = [f.name for f in dataclasses.fields(TrainRecipe)]
        unknown = [k for k in value if k not in allowed]
        if unknown:
            raise PydanticCustomError(
                "unknown_key",
                "unknown key(s) {keys}; allowed keys: {allowed}",
                {"keys": unknown, "allowed": allowed},
            )
        recipe = TypeAdapter(TrainRecipe).validate_python(value)
        out = {k: getattr(recipe, k) for k in value}
        problems = recipe_range_problems(out)
        if problems:
            raise ValueError("; ".join(problems))
        return out

    @field_validator("method_params")
    @classmethod
    def _method_recipes(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """A method's ``recipe`` override is checked like the suite's ``recipe``, before any run."""
        for method, params in value.items():
            recipe = params.get("recipe") if isinstance(params, dict) else None
            if recipe is None:
                continue
            if not isinstance(recipe, dict):
                raise ValueError(f"{method}.recipe must be a mapping of recipe keys, got {recipe!r}")
            try:
                params["recipe"] = cls._recipe_fields(recipe)
            except (ValueError, PydanticCustomError) as exc:
                raise ValueError(f"{method}.recipe: {exc}") from exc
        return value

    @field_validator("datasets")
    @classmethod
    def _nonempty(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        if not value:
            raise ValueError("a suite needs at least one dataset")
        return value

    def train_recipe(self, base: TrainRecipe | None = None) -> TrainRecipe:
        """The suite's :class:`TrainRecipe` (``base`` or defaults, updated by ``recipe``)."""
        return (base or TrainRecipe()).updated(**self.recipe)


class Catalogue(_Strict):
    """A validated catalogue: ``datasets``, ``suites``, ``cache_dir``; ``path`` is its file."""

    version: Literal[1] = 1
    include: list[Literal["embedded"]] = Field(default_factory=list)
    cache_dir: Path | None = None
    datasets: dict[str, DatasetConfig] = Field(default_factory=dict)
    suites: dict[str, SuiteConfig] = Field(default_factory=dict)

    _path: Path | None = PrivateAttr(default=None)
    _sources: dict[str, Path] = PrivateAttr(default_factory=dict)

    _resolve = field_validator("cache_dir", mode="before")(_resolve_path)

    @model_validator(mode="before")
    @classmethod
    def _names_from_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("datasets"), dict):
            data = dict(data)
            datasets = {}
            for key, cfg in data["datasets"].items():
                if isinstance(cfg, dict):
                    if cfg.get("name", key) != key:
                        raise ValueError(f"dataset {key!r} has name {cfg['name']!r}; remove `name`")
                    cfg = {**cfg, "name": key}
                datasets[key] = cfg
            data["datasets"] = datasets
        return data

    @model_validator(mode="after")
    def _check_refs(self) -> Catalogue:
        problems: list[tuple[tuple[str, ...], str]] = []
        for section, names in (("datasets", self.datasets), ("suites", self.suites)):
            for name in names:
                if not NAME_RE.match(name):
                    problems.append(((section, name), f"name {name!r} must match {NAME_RE.pattern}"))
        for sname, suite in self.suites.items():
            for dname, groupings in suite.datasets.items():
                where = ("suites", sname, "datasets", dname)
                if dname not in self.datasets:
                    problems.append(
                        (where, f"unknown dataset {dname!r}; datasets: {', '.join(sorted(self.datasets)) or '(none)'}")
                    )
                    continue
                known = self.datasets[dname].groupings
                missing = [g for g in groupings if g not in known and not _generic_grouping(g)]
                if missing:
                    problems.append(
                        (
                            where,
                            f"grouping(s) {', '.join(map(repr, missing))} are not defined for dataset {dname!r}; "
                            f"its groupings: {', '.join(known) or '(none)'}",
                        )
                    )
            problems += _external_problems(sname, suite, self.datasets)
        _raise_problems(problems)
        return self

    @property
    def path(self) -> Path | None:
        """The yaml file this catalogue was read from (``None`` if built in memory)."""
        return self._path

    @property
    def cache_path(self) -> Path:
        """Cache directory: ``cache_dir``, else ``$MEDFAIRX_CACHE``, else ``./.medfairx-cache``."""
        if self.cache_dir is not None:
            return self.cache_dir
        return Path(os.environ.get("MEDFAIRX_CACHE") or ".medfairx-cache").absolute()

    def source_of(self, dataset: str) -> Path | None:
        """The yaml file that defines ``dataset`` (an included file or this one)."""
        return self._sources.get(dataset, self._path)

    def dataset(self, name: str) -> DatasetConfig:
        """The dataset called ``name``; a miss suggests the nearest names."""
        if name not in self.datasets:
            raise UnknownNameError("dataset", name, self.datasets, hint=f"Datasets are defined in {self._path}.")
        return self.datasets[name]

    def suite(self, name: str) -> SuiteConfig:
        """The suite called ``name``; a miss suggests the nearest names."""
        if name not in self.suites:
            raise UnknownNameError("suite", name, self.suites, hint=f"Suites are defined in {self._path}.")
        return self.suites[name]


def _external_problems(sname: str, suite: SuiteConfig, datasets: dict[str, DatasetConfig]
                       ) -> list[tuple[tuple[str, ...], str]]:
    """What makes an ``evaluate_on`` entry of suite ``sname`` unusable: an unknown dataset, another
    task, number of classes or ``image_size`` than the training dataset, a missing grouping."""
    problems: list[tuple[tuple[str, ...], str]] = []
    for train_name in suite.evaluate_on:
        where = ("suites", sname, "evaluate_on", train_name)
        if train_name not in suite.datasets:
            problems.append((where, f"{train_name!r} is not a dataset of this suite; its datasets: "
                                    + ", ".join(suite.datasets)))
            continue
        train = datasets.get(train_name)
        if train is None:
            continue  # reported as an unknown suite dataset
        for ext_name, groupings in suite.external_sets(train_name).items():
            ext = datasets.get(ext_name)
            if ext is None:
                problems.append(((*where, ext_name), f"unknown dataset {ext_name!r}; datasets: "
                                                      + ", ".join(sorted(datasets))))
                continue
            for what, mine, theirs in (
                ("task", train.task or "classification", ext.task or "classification"),
                ("number of classes", train.label.num_classes if train.label else 2,
                 ext.label.num_classes if ext.label else 2),
                ("image_size", train.image_size, ext.image_size),
            ):
                if mine != theirs:
                    message = (f"{what} {theirs!r} differs from the training dataset {train_name!r} ({mine!r}); "
                               f"define a catalogue entry of {ext_name!r} with {what} {mine!r}")
                    problems.append(((*where, ext_name), message))
            missing = [g for g in groupings if g not in ext.groupings and not _generic_grouping(g)]
            if missing:
                message = (f"grouping(s) {', '.join(map(repr, missing))} are not defined for external dataset "
                           f"{ext_name!r} (its groupings: {', '.join(ext.groupings) or '(none)'}); map them under "
                           f"datasets.{ext_name}.groupings or list the groupings it has as "
                           f"evaluate_on: {{{train_name}: {{{ext_name}: [...]}}}}")
                problems.append(((*where, ext_name), message))
    return problems


def _generic_grouping(name: str) -> bool:
    """Whether ``name`` is a registered generic grouping (applies to any dataset with its columns)."""
    try:
        from medfairx.plugins import get_host

        return name in get_host().registry("groupings")
    except Exception:  # noqa: BLE001 - a broken plugin host must not hide the config error
        return False


def _scalar_str(value: Any) -> str:
    """YAML scalars as the strings metadata values are compared with (``60.0`` → ``"60"``)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --- reading ------------------------------------------------------------------------------


def _line_marks(node: yaml.Node | None, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], int]]:
    """Yield ``(key path, 1-based line)`` for every mapping entry and list item of ``node``."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = (*path, key.value)
            yield sub, key.start_mark.line + 1
            yield from _line_marks(value, sub)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield (*path, i), item.start_mark.line + 1
            yield from _line_marks(item, (*path, i))


def _expand(value: Any, where: str, path: tuple[Any, ...] = ()) -> Any:
    """Expand ``${VAR}`` / ``${VAR:-default}`` in every string of ``value``."""
    if isinstance(value, dict):
        return {k: _expand(v, where, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, where, (*path, i)) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        var, default = m.group(1), m.group(2)
        if os.environ.get(var):
            return os.environ[var]
        if default is not None:
            return default
        raise ConfigError(
            f"{where}: key {_dotted(path)} uses ${{{var}}} but the environment variable {var} is not "
            f"set. Set it, or write ${{{var}:-default}} to give a default."
        )

    return _ENV_RE.sub(sub, value)


def _dotted(path: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


class _Source:
    """One parsed yaml file: data with env vars expanded, and line numbers of its keys."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"Cannot read catalogue {path}: {exc.strerror}. Check the path.") from None
        try:
            data = yaml.safe_load(text)
            self.lines = dict(_line_marks(yaml.compose(text)))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f", line {mark.line + 1}" if mark else ""
            raise ConfigError(f"{path}{line}: invalid YAML: {getattr(exc, 'problem', exc)}.") from None
        if data is None:
            raise ConfigError(
                f"{path}: the catalogue is empty. Add `datasets:` and `suites:` sections (or "
                "`include: [embedded]` for the built-in catalogue); see `medfairx validate --help`."
            )
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a catalogue must be a mapping with `datasets` and `suites`.")
        self.data: dict[str, Any] = _expand(data, str(path))

    def line(self, loc: tuple[Any, ...]) -> int | None:
        """Line of the longest prefix of ``loc`` that has a mark."""
        for n in range(len(loc), 0, -1):
            if loc[:n] in self.lines:
                return self.lines[loc[:n]]
        return None


def _absolutize(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Resolve the relative paths of an included file's datasets against its directory."""
    out = {}
    for name, cfg in (data.get("datasets") or {}).items():
        if isinstance(cfg, dict):
            cfg = dict(cfg)
            if isinstance(cfg.get("root"), str):
                cfg["root"] = str(_absolute(cfg["root"], base))
            split = cfg.get("split")
            if isinstance(split, dict) and isinstance(split.get("manifest"), str):
                cfg["split"] = {**split, "manifest": str(_absolute(split["manifest"], base))}
        out[name] = cfg
    return out


def default_catalogue_path() -> Path:
    """``$MEDFAIRX_CONFIG``, else ``./datasets.yaml`` if it exists, else the embedded catalogue."""
    env = os.environ.get("MEDFAIRX_CONFIG")
    if env:
        return Path(env)
    local = Path("datasets.yaml")
    return local.absolute() if local.is_file() else EMBEDDED_CATALOGUE


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """Read and validate a catalogue.

    Args:
        path: the yaml file; ``None`` uses :func:`default_catalogue_path`.

    Raises:
        ConfigError: the file is missing or invalid; the message names the file, key path,
            line and what to change.
    """
    path = Path(path) if path is not None else default_catalogue_path()
    if not path.is_file():
        raise ConfigError(f"Catalogue {path} does not exist. Pass an existing datasets.yaml (or unset MEDFAIRX_CONFIG).")
    top = _Source(path.absolute())
    data = dict(top.data)
    owners: dict[tuple[str, str], _Source] = {}
    merged: dict[str, dict[str, Any]] = {"datasets": {}, "suites": {}}
    includes = data.get("include") or []
    for inc in includes if isinstance(includes, list) else []:
        if inc not in INCLUDES:
            continue  # reported by validation (allowed values)
        sub = _Source(INCLUDES[inc])
        for section, entries in (("datasets", _absolutize(sub.data, sub.path.parent)), ("suites", sub.data.get("suites") or {})):
            for key, value in entries.items():
                merged[section][key] = value
                owners[(section, key)] = sub
    for section in ("datasets", "suites"):
        own = data.get(section)
        if isinstance(own, dict):
            for key in own:
                owners.pop((section, key), None)
            merged[section].update(own)
            data[section] = merged[section]
        elif own is None:
            data[section] = merged[section]
    try:
        cat = Catalogue.model_validate(data, context={"base_dir": top.path.parent})
    except ValidationError as exc:
        lines = [line for err in exc.errors() for line in _format_error(err, top, owners)]
        raise ConfigError(
            f"Invalid catalogue {top.path} ({len(lines)} problem(s)):\n  " + "\n  ".join(lines)
        ) from None
    cat._path = top.path
    cat._sources = {key: src.path for (section, key), src in owners.items() if section == "datasets"}
    return cat


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model found at key path ``loc`` below :class:`Catalogue`."""
    tp: Any = Catalogue
    for part in (*loc, None):
        args = [a for a in get_args(tp) if a is not type(None)] if get_origin(tp) in (Union, UnionType) else [tp]
        tp = args[0]
        if part is None:
            break
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if part not in tp.model_fields:
                return []
            tp = tp.model_fields[part].annotation
        elif get_origin(tp) in (dict, list):
            tp = get_args(tp)[-1]
        else:
            return []
    if not (isinstance(tp, type) and issubclass(tp, BaseModel)):
        return []
    return [k for k in tp.model_fields if not (tp is DatasetConfig and k == "name")]  # name comes from the key


def _format_error(err: Mapping[str, Any], top: _Source, owners: dict[tuple[str, str], _Source]) -> list[str]:
    """A validation error as ``file:line: key.path: message`` lines."""
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "literal["))))
    ctx = err.get("ctx") or {}
    if err["type"] == "problems":
        return [
            line
            for sub, message in ctx["problems"]
            for line in _format_error({"loc": (*loc, *sub), "msg": message, "type": "custom"}, top, owners)
        ]
    src = owners.get((loc[0], loc[1]), top) if len(loc) >= 2 else top
    msg = err["msg"]
    if err["type"] in ("unknown_key", "extra_forbidden"):
        if err["type"] == "extra_forbidden":
            keys, allowed = [str(loc[-1])], _allowed_keys(loc[:-1])
        else:
            keys, allowed = ctx["keys"], ctx["allowed"]
            loc = (*loc, keys[0]) if len(keys) == 1 else loc
        hints = [m for k in keys for m in difflib.get_close_matches(k, allowed, n=1)]
        msg = f"unknown key(s) {', '.join(map(repr, keys))}; allowed keys: {', '.join(allowed)}"
        if hints:
            msg += f" (did you mean {', '.join(map(repr, hints))}?)"
    elif err["type"] == "value_error":
        msg = msg.removeprefix("Value error, ")
    elif err["type"] == "literal_error":
        msg = f"{msg} (got {err.get('input')!r})"
    line = src.line(loc)
    where = f"{src.path}:{line}" if line else str(src.path)
    return [f"{where}: {_dotted(loc)}: {msg}"]
