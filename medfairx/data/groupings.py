"""Declarative grouping rules → :class:`~medfairx.specs.GroupingSpec`.

A rule is a picklable callable ``rule(metadata) -> pd.Series``: a pandas Categorical aligned
to ``metadata.index``, NaN for samples outside every group. Groups smaller than
``min_group_size`` are excluded with a warning and recorded in ``series.attrs["dropped"]``
(``{label: count}``); ``series.attrs["counts"]`` holds the kept groups' sizes.
"""

from __future__ import annotations

import itertools
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from medfairx.errors import ConfigError
from medfairx.specs import GroupingSpec

if TYPE_CHECKING:
    from medfairx.config import DatasetConfig, GroupingConfig

EXCLUDED_VALUES: frozenset[str] = frozenset({"", "unknown", "nan", "none"})
"""Raw categorical values that never form a group (case-insensitive)."""


MIN_GROUPS = 2
"""A grouping is usable (checked, planned, scored) only with at least this many groups."""
TOO_FEW_GROUPS = "grouping {name!r} has {n} group(s) after exclusions; it needs {need}"


UNMAPPED = ("{where}: column {column!r} has value(s) its `map` does not list: {values} ({n} sample(s)); they are "
            "outside every group.{case} Add them to the grouping's `map` in datasets.yaml (map a value to null to "
            "exclude it on purpose).")
CASE_HINT = " Map keys are case-sensitive."


class GroupSizeWarning(UserWarning):
    """Some groups were smaller than ``min_group_size`` and were excluded."""


class UnmappedValueWarning(UserWarning):
    """A categorical grouping met values its ``map`` does not list (they belong to no group)."""


def too_few_groups(name: str, n_groups: int) -> str | None:
    """The problem of a grouping left with fewer than :data:`MIN_GROUPS` groups, else ``None``."""
    return TOO_FEW_GROUPS.format(name=name, n=n_groups, need=MIN_GROUPS) if n_groups < MIN_GROUPS else None


def value_str(value: object) -> str | None:
    """A metadata value as a group label (``60.0`` → ``"60"``; missing → ``None``)."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class Rule:
    """Base rule: subclasses implement :meth:`raw`; ``__call__`` applies ``min_group_size``."""

    name: str
    min_group_size: int = 1
    dataset: str | None = None

    def raw(self, metadata: pd.DataFrame) -> pd.Series:
        """Groups before the size filter."""
        raise NotImplementedError

    def __call__(self, metadata: pd.DataFrame) -> pd.Series:
        return apply_min_size(self.raw(metadata), self.min_group_size, self._where())

    def _where(self) -> str:
        return f"grouping {self.name!r}" + (f" of dataset {self.dataset!r}" if self.dataset else "")

    def _column(self, metadata: pd.DataFrame, column: str) -> pd.Series:
        if column not in metadata.columns:
            raise ConfigError(
                f"{self._where()}: column {column!r} is not in the metadata; available columns: "
                f"{', '.join(map(str, metadata.columns))}. Fix the grouping's `column` in datasets.yaml."
            )
        return metadata[column]


@dataclass(frozen=True)
class CategoricalRule(Rule):
    """Groups are column values, optionally renamed by ``mapping``.

    With a mapping, unmapped values (and values mapped to ``None``) are outside every group;
    unmapped values other than :data:`EXCLUDED_VALUES` raise an :class:`UnmappedValueWarning`
    naming them and their counts. Without one, :data:`EXCLUDED_VALUES` and missing values
    are outside. Categories follow the mapping's order, else sorted values.
    """

    column: str = ""
    mapping: tuple[tuple[str, str | None], ...] | None = None

    def raw(self, metadata: pd.DataFrame) -> pd.Series:
        values = [value_str(v) for v in self._column(metadata, self.column)]
        if self.mapping is not None:
            table = dict(self.mapping)
            self._warn_unmapped(values, table)
            labels = [table.get(v) if v is not None else None for v in values]
            cats = list(dict.fromkeys(v for _, v in self.mapping if v is not None))
        else:
            labels = [v if v is not None and v.lower() not in EXCLUDED_VALUES else None for v in values]
            cats = sorted({v for v in labels if v is not None})
        result: pd.Series = pd.Series(pd.Categorical(labels, categories=cats), index=metadata.index, name=self.name)
        return result

    def _warn_unmapped(self, values: list[str | None], table: dict[str, str | None]) -> None:
        unmapped = Counter(v for v in values if v is not None and v not in table and v.lower() not in EXCLUDED_VALUES)
        if not unmapped:
            return
        keys = {k.lower() for k in table}
        shown = dict(sorted(unmapped.items(), key=lambda kv: (-kv[1], kv[0]))[:10])
        more = f" and {len(unmapped) - len(shown)} more" if len(unmapped) > len(shown) else ""
        case = CASE_HINT if any(v.lower() in keys for v in unmapped) else ""
        warnings.warn(UNMAPPED.format(where=self._where(), column=self.column, values=f"{shown}{more}",
                                      n=sum(unmapped.values()), case=case), UnmappedValueWarning, stacklevel=4)


@dataclass(frozen=True)
class BinsRule(Rule):
    """Numeric bins with right-closed cut points: ``bins=[60]`` → ``x <= 60`` and ``x > 60``."""

    column: str = ""
    bins: tuple[float, ...] = ()
    labels: tuple[str, ...] | None = None

    def bin_labels(self) -> tuple[str, ...]:
        """The given labels, or ``<=a``, ``(a, b]``, ``>b`` style ones."""
        if self.labels is not None:
            return self.labels
        cuts = [value_str(b) for b in self.bins]
        middle = [f"({a}, {b}]" for a, b in zip(cuts, cuts[1:], strict=False)]
        return (f"<={cuts[0]}", *middle, f">{cuts[-1]}")

    def raw(self, metadata: pd.DataFrame) -> pd.Series:
        col = self._column(metadata, self.column)
        numeric = pd.to_numeric(col, errors="coerce")
        bad = col[numeric.isna() & col.notna() & (col.astype(str).str.strip() != "")]
        if len(bad):
            raise ConfigError(
                f"{self._where()}: column {self.column!r} has non-numeric value(s) "
                f"{sorted(set(map(str, bad)))[:5]} (first at row {bad.index[0]!r}); `bins` needs numbers. "
                "Use `map` for a categorical column."
            )
        edges = [-np.inf, *self.bins, np.inf]
        cut = pd.cut(numeric.astype(float), bins=edges, right=True, labels=list(self.bin_labels()))
        result: pd.Series = pd.Series(cut, index=metadata.index, name=self.name)
        return result


@dataclass(frozen=True)
class IntersectionRule(Rule):
    """Every combination of the parts' groups, labelled ``"a|b"``; observed ones only."""

    parts: tuple[Rule, ...] = ()

    def raw(self, metadata: pd.DataFrame) -> pd.Series:
        series = [p.raw(metadata) for p in self.parts]
        frame = pd.concat([s.astype(object) for s in series], axis=1)
        complete = frame.notna().all(axis=1)
        labels = ["|".join(map(str, row)) if ok else None for row, ok in zip(frame.itertuples(index=False), complete, strict=False)]
        observed = set(labels)
        cats = ["|".join(c) for c in itertools.product(*(s.cat.categories.astype(str) for s in series))]
        cats = [c for c in cats if c in observed]
        result: pd.Series = pd.Series(pd.Categorical(labels, categories=cats), index=metadata.index, name=self.name)
        return result


def apply_min_size(groups: pd.Series, min_size: int, where: str = "grouping") -> pd.Series:
    """Exclude groups with fewer than ``min_size`` samples, with a warning; record them."""
    counts = groups.value_counts(sort=False)
    small = {str(k): int(v) for k, v in counts.items() if v < max(min_size, 1)}
    out = groups.cat.remove_categories(list(small)) if small else groups.copy()
    non_empty = {k: v for k, v in small.items() if v > 0}
    if non_empty:
        warnings.warn(
            f"{where}: group(s) {non_empty} have fewer than min_group_size={min_size} samples; "
            "they are excluded (their samples count as outside every group).",
            GroupSizeWarning,
            stacklevel=3,
        )
    out.attrs = {"dropped": small, "counts": {str(k): int(v) for k, v in counts.items() if str(k) not in small}}
    return out


def build_rule(name: str, cfg: GroupingConfig, siblings: dict[str, GroupingConfig], *, min_group_size: int = 1,
               dataset: str | None = None) -> Rule:
    """The rule object for one catalogue grouping (``siblings`` resolves intersections)."""
    if cfg.intersection is not None:
        parts = tuple(build_rule(p, siblings[p], siblings, dataset=dataset) for p in cfg.intersection)
        return IntersectionRule(name, min_group_size, dataset, parts=parts)
    assert cfg.column is not None
    if cfg.bins is not None:
        labels = tuple(cfg.labels) if cfg.labels is not None else None
        return BinsRule(name, min_group_size, dataset, column=cfg.column, bins=tuple(cfg.bins), labels=labels)
    mapping = tuple(cfg.map.items()) if cfg.map is not None else None
    return CategoricalRule(name, min_group_size, dataset, column=cfg.column, mapping=mapping)


def rule_columns(rule: Rule) -> tuple[str, ...]:
    """Metadata columns a rule reads."""
    if isinstance(rule, IntersectionRule):
        return tuple(dict.fromkeys(c for p in rule.parts for c in rule_columns(p)))
    return (rule.column,)  # type: ignore[attr-defined]  # every rule but an intersection reads one column


def build_groupings(cfg: DatasetConfig) -> dict[str, GroupingSpec]:
    """The :class:`GroupingSpec` of every grouping a catalogue dataset defines."""
    out: dict[str, GroupingSpec] = {}
    for name, g in cfg.groupings.items():
        min_size = cfg.group_min_size(name)
        rule = build_rule(name, g, cfg.groupings, min_group_size=min_size, dataset=cfg.name)
        out[name] = GroupingSpec(
            name=name,
            target=rule,
            columns=rule_columns(rule),
            description=g.description,
            min_group_size=min_size,
            dataset=cfg.name,
        )
    return out


# Generic groupings registered by medfairx.default_plugins.groupings (any dataset with the column).
SEX = CategoricalRule("sex", 1, column="sex", mapping=(("male", "male"), ("female", "female"), ("M", "male"), ("F", "female")))
AGE_60 = BinsRule("age_60", 1, column="age", bins=(60.0,), labels=("<=60", ">60"))
AGE4 = BinsRule("age4", 1, column="age", bins=(40.0, 60.0, 80.0), labels=("<=40", "41-60", "61-80", ">80"))
