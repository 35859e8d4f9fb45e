"""Conformance checks for groupings (``assign(metadata) -> Categorical``).

Checks run on ``metadata`` when given, else on the toy metadata
(:func:`~medfairx.testing.toy.make_toy_metadata`) when it has the grouping's columns;
otherwise the data checks are skipped, saying which columns were missing.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from medfairx.errors import ConfigError
from medfairx.specs import GroupingSpec
from medfairx.testing._run import Check, OnFail, fail, run_checks
from medfairx.testing.report import CheckFailure, CheckReport, SkipCheck
from medfairx.testing.toy import make_toy_metadata


@dataclass
class GroupingSubject:
    """A grouping under test and the metadata it is applied to."""

    spec: GroupingSpec
    metadata: pd.DataFrame | None
    no_data_reason: str = ""

    @property
    def label(self) -> str:
        """How messages name the grouping."""
        return f"grouping {self.spec.name!r}"

    def __str__(self) -> str:
        return self.label

    def meta(self) -> pd.DataFrame:
        """A deep copy of the metadata (:class:`SkipCheck` when there is none)."""
        if self.metadata is None:
            raise SkipCheck(self.no_data_reason)
        result: pd.DataFrame = self.metadata.copy(deep=True)
        return result

    def assign(self, meta: pd.DataFrame) -> pd.Series:
        """Apply the grouping the way the framework does (``GroupingSpec.assign``)."""
        result: pd.Series = self.spec.assign(meta)
        return result


def grouping_subject(spec: GroupingSpec | str, metadata: pd.DataFrame | None = None) -> GroupingSubject:
    """Resolve ``spec`` (or a registry name) and the metadata to test it on."""
    if isinstance(spec, str):
        from medfairx.plugins import get_host

        spec = get_host().registry("groupings").get(spec)
    if not isinstance(spec, GroupingSpec):
        raise ConfigError(f"check_grouping needs a GroupingSpec or a registered name; got {spec!r}.")
    if metadata is not None:
        return GroupingSubject(spec, metadata)
    toy = make_toy_metadata(96)
    missing = [c for c in spec.columns if c not in toy.columns]
    if missing or spec.dataset is not None:
        why = f"needs column(s) {missing}" if missing else f"belongs to dataset {spec.dataset!r}"
        return GroupingSubject(spec, None, f"the grouping {why}, not in the toy metadata; pass metadata= to check it")
    return GroupingSubject(spec, toy)


def check_grouping_declares_columns(s: GroupingSubject) -> None:
    """``columns`` is not empty and is all the grouping reads (it works on those columns alone)."""
    fail(len(s.spec.columns) > 0, f"{s.label}: declares no columns; list the metadata columns it reads in GroupingSpec.columns.")
    meta = s.meta()
    only = meta[list(s.spec.columns)]
    try:
        a = s.assign(only)
    except Exception as exc:
        raise CheckFailure(
            f"{s.label}: failed on metadata restricted to its declared columns {list(s.spec.columns)} "
            f"({type(exc).__name__}: {exc}); declare every column it reads."
        ) from exc
    b = s.assign(meta)
    fail(
        a.astype(object).equals(b.astype(object)),
        f"{s.label}: the result changed when columns outside {list(s.spec.columns)} were dropped; declare every column it reads.",
    )


def check_grouping_categorical_aligned(s: GroupingSubject) -> None:
    """The result is a pandas Categorical Series aligned to the metadata index."""
    meta = s.meta()
    out = s.assign(meta)
    fail(isinstance(out, pd.Series), f"{s.label}: assign returned {type(out).__name__}; expected a pandas Series.")
    fail(
        isinstance(out.dtype, pd.CategoricalDtype),
        f"{s.label}: assign returned dtype {out.dtype}; expected a Categorical (pd.Categorical / .astype('category')).",
    )
    fail(out.index.equals(meta.index), f"{s.label}: the result's index is not the metadata index (same labels, same order).")


def check_grouping_deterministic(s: GroupingSubject) -> None:
    """Two calls on the same metadata give the same groups."""
    meta = s.meta()
    a, b = s.assign(meta), s.assign(meta)
    fail(a.astype(object).equals(b.astype(object)), f"{s.label}: two calls on the same metadata gave different groups.")


def check_grouping_has_two_groups(s: GroupingSubject) -> None:
    """At least two groups are non-empty on the data."""
    counts = s.assign(s.meta()).value_counts(dropna=True)
    present = sorted(str(k) for k, v in counts.items() if v > 0)
    fail(len(present) >= 2, f"{s.label}: only {len(present)} non-empty group(s) {present} on the data; expected at least 2.")


def check_grouping_input_not_mutated(s: GroupingSubject) -> None:
    """``assign`` does not modify the metadata it is given."""
    meta = s.meta()
    before = meta.copy(deep=True)
    s.assign(meta)
    try:
        pd.testing.assert_frame_equal(meta, before)
    except AssertionError as exc:
        raise CheckFailure(f"{s.label}: assign modified the metadata in place ({str(exc).splitlines()[0]}); work on a copy.") from exc


def check_grouping_missing_column_error(s: GroupingSubject) -> None:
    """Metadata without a declared column raises ConfigError listing the available columns."""
    fail(len(s.spec.columns) > 0, f"{s.label}: declares no columns, so a missing column cannot be reported.")
    meta = s.meta()
    for col in s.spec.columns:
        reduced = meta.drop(columns=[col])
        try:
            s.assign(reduced)
        except ConfigError as exc:
            shown = [c for c in map(str, reduced.columns) if c in str(exc)]
            fail(bool(shown) or reduced.columns.empty,
                 f"{s.label}: the ConfigError for missing {col!r} does not list the available columns: {exc}")
            continue
        except Exception as exc:
            raise CheckFailure(f"{s.label}: missing column {col!r} raised {type(exc).__name__}: {exc}; expected ConfigError.") from exc
        raise CheckFailure(f"{s.label}: metadata without column {col!r} did not raise ConfigError.")


GROUPING_CHECKS: tuple[Check, ...] = (
    Check("check_grouping_declares_columns", check_grouping_declares_columns),
    Check("check_grouping_categorical_aligned", check_grouping_categorical_aligned),
    Check("check_grouping_deterministic", check_grouping_deterministic),
    Check("check_grouping_has_two_groups", check_grouping_has_two_groups),
    Check("check_grouping_input_not_mutated", check_grouping_input_not_mutated),
    Check("check_grouping_missing_column_error", check_grouping_missing_column_error),
)
"""Grouping checks in run order."""


def check_grouping(
    spec: GroupingSpec | str,
    metadata: pd.DataFrame | None = None,
    *,
    expected_failed_checks: dict[str, str] | None = None,
    on_fail: OnFail = "raise",
) -> CheckReport:
    """Run the grouping checks on ``metadata`` (default: the toy metadata, if it has the
    grouping's columns).

    Args:
        spec: the :class:`GroupingSpec` (or its registered name).
        metadata: metadata to apply it to (indexed by sample id).
        expected_failed_checks: ``{check_name: reason}``.
        on_fail: ``"raise"`` or ``"report"``.
    """
    subject = grouping_subject(spec, metadata)
    return run_checks(
        subject, GROUPING_CHECKS, item=subject.spec.name, kind="groupings",
        expected_failed_checks=expected_failed_checks, on_fail=on_fail,
    )
