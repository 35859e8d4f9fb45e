"""Shared parsing helpers for the dataset adapters: header checks, code maps, reports.

Every adapter's ``read_metadata`` returns a frame indexed by ``sample_id`` whose
``frame.attrs["report"]`` is a :class:`Report` dict (see :meth:`Report.to_dict`): what was
read, what was excluded and why, which codes were unknown, which rows lack an image.
Problems are reported with the file, the line and the fix; nothing is dropped silently.
"""

from __future__ import annotations

import difflib
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medfairx.errors import ConfigError, DataError

MISSING = "unknown"
"""Value written for a missing or unknown categorical attribute (never forms a group)."""

UNNAMED_INDEX = re.compile(r"^(Unnamed: 0|)$")


class MetadataWarning(UserWarning):
    """A metadata problem the adapter worked around (unknown code, edited copy, fallback key)."""


class DataLeakageWarning(UserWarning):
    """Using this dataset together with another one can leak test images into training."""


@dataclass
class Report:
    """What ``read_metadata`` found; stored as ``frame.attrs["report"]``.

    Attributes:
        adapter: adapter name.
        files: file name → ``{"rows": int, "line_endings": "LF" | "CRLF" | "CR" | "mixed" | "n/a"}``.
        source_rows: rows of the primary metadata file(s).
        excluded: reason → rows removed by a documented policy (e.g. suspicious diagnosis).
        rows_without_image: rows whose image file is absent (``None``: not checked).
        missing_image_examples: up to five absent image paths (relative to the root).
        unknown_codes: column → {raw value → count} for values outside the documented coding.
        missing_values: column → count of empty cells (kept, coded ``unknown`` / NaN).
        notes: free-text facts (fallback keys, header version, assumptions).
    """

    adapter: str
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    source_rows: int = 0
    excluded: dict[str, int] = field(default_factory=dict)
    rows_without_image: int | None = None
    missing_image_examples: list[str] = field(default_factory=list)
    unknown_codes: dict[str, dict[str, int]] = field(default_factory=dict)
    missing_values: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def exclude(self, reason: str, count: int) -> None:
        """Record ``count`` rows removed for ``reason`` (zero counts are recorded too)."""
        self.excluded[reason] = self.excluded.get(reason, 0) + int(count)

    def to_dict(self, rows: int) -> dict[str, Any]:
        """JSON-ready dict; ``rows`` is the number of rows returned."""
        return {
            "adapter": self.adapter,
            "files": self.files,
            "source_rows": self.source_rows,
            "rows": rows,
            "excluded": dict(self.excluded),
            "rows_without_image": self.rows_without_image,
            "missing_image_examples": list(self.missing_image_examples),
            "unknown_codes": {k: dict(v) for k, v in self.unknown_codes.items()},
            "missing_values": dict(self.missing_values),
            "notes": list(self.notes),
        }


def report_info(report: Mapping[str, Any]) -> dict[str, int | str]:
    """Flatten a report into the scalar ``info`` facts ``FairDataset.describe`` shows."""
    info: dict[str, int | str] = {"source_rows": int(report["source_rows"])}
    info.update({f"excluded: {k}": int(v) for k, v in report["excluded"].items()})
    info.update({f"unknown codes: {k}": int(sum(v.values())) for k, v in report["unknown_codes"].items()})
    info.update({f"missing values: {k}": int(v) for k, v in report["missing_values"].items()})
    return info


# --- reading files -------------------------------------------------------------------------


def line_endings(path: Path) -> str:
    """``"LF"``, ``"CRLF"``, ``"CR"`` (old Mac), ``"mixed"`` or ``"n/a"`` (binary / compressed)."""
    if path.suffix.lower() in (".gz", ".xlsx", ".xls", ".zip", ".bz2", ".xz"):
        return "n/a"
    data = path.read_bytes()
    crlf = data.count(b"\r\n")
    cr, lf = data.count(b"\r") - crlf, data.count(b"\n") - crlf
    kinds = [k for k, n in (("CRLF", crlf), ("CR", cr), ("LF", lf)) if n]
    # a file of bare CRs that ends in one CRLF (TN-SCUI 2020) is a CR file
    if kinds == ["CRLF", "CR"] and crlf == 1 and data.endswith(b"\r\n"):
        return "CR"
    return kinds[0] if len(kinds) == 1 else ("mixed" if kinds else "LF")


@dataclass(frozen=True)
class Header:
    """The expected header of one metadata file.

    Attributes:
        required: columns that must be present (canonical names).
        optional: further columns of the original file.
        aliases: older/alternative name → canonical name (accepted, noted in the report).
        renamed: names seen in edited public copies → canonical name (rejected with a hint).
        drop_unnamed_index: drop a leading unnamed column (a written-out pandas index).
        strict: warn about columns that are not in the original header (edited copies).
    """

    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    aliases: Mapping[str, str] = field(default_factory=dict)
    renamed: Mapping[str, str] = field(default_factory=dict)
    drop_unnamed_index: bool = False
    strict: bool = False

    @property
    def expected(self) -> str:
        """The original header as one comma-separated line."""
        return ",".join((*self.required, *self.optional))


@dataclass(frozen=True)
class Table:
    """A parsed metadata file: every cell a stripped string (empty cells are ``""``).

    Attributes:
        frame: the cells, with canonical column names; its index is the 0-based data row.
        path: the file.
        first_line: file line (or spreadsheet row) of the first data row.
        unit: ``"line"`` (text files) or ``"row"`` (spreadsheets).
        row_files: for tables built from one file per row (npz): each row's file name.
    """

    frame: pd.DataFrame
    path: Path
    first_line: int = 2
    unit: str = "line"
    row_files: tuple[str, ...] | None = None

    def line(self, pos: int) -> int:
        """File line (spreadsheet row) of data row ``pos``."""
        return self.first_line + int(pos)

    def locate(self, pos: int) -> str:
        """``"line <n>"``, ``"row <n>"`` or ``"file <name>"`` of data row ``pos``."""
        if self.row_files is not None:
            return f"file {self.row_files[int(pos)]}"
        return f"{self.unit} {self.line(pos)}"

    def where(self, pos: int) -> str:
        """``"<file>, line <n>"`` of data row ``pos``."""
        return f"{self.path}, {self.locate(pos)}"


def read_csv_table(path: Path, header: Header, report: Report, **read_kw: Any) -> Table:
    """Read a CSV (LF, CRLF or bare-CR line endings; ``.gz`` too) and check its header.

    Raises:
        DataError: the file is missing or unreadable, or a required column is absent (the
            message names the file, the expected header and the likely renamed column).
    """
    if not path.is_file():
        raise DataError(f"Metadata file {path} does not exist. Check the dataset `root` and the file name option.")
    try:
        frame = pd.read_csv(
            path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig", index_col=False, **read_kw
        )
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"Cannot read metadata file {path}: {exc}. Check that it is the original CSV.") from None
    endings = line_endings(path)
    report.files[path.name] = {"rows": len(frame), "line_endings": endings}
    if endings == "mixed":
        warnings.warn(
            f"{path} mixes line endings (LF, CRLF and/or bare CR); it was parsed anyway, but it is "
            "probably an edited copy. Compare it with the original download.",
            MetadataWarning,
            stacklevel=3,
        )
    return Table(check_header(frame, path, header, report), path)


def check_header(frame: pd.DataFrame, path: Path, header: Header, report: Report) -> pd.DataFrame:
    """Canonical column names, or a :class:`DataError` naming the missing ones."""
    frame = frame.rename(columns=lambda c: str(c).strip())
    if header.drop_unnamed_index and len(frame.columns) and UNNAMED_INDEX.match(str(frame.columns[0])):
        frame = frame.drop(columns=frame.columns[0])
        report.notes.append(f"{path.name}: dropped the unnamed leading index column (not an id).")
    for old, new in header.aliases.items():
        if old in frame.columns and new not in frame.columns:
            frame = frame.rename(columns={old: new})
            report.notes.append(f"{path.name}: column {old!r} read as {new!r}.")
    found = [str(c) for c in frame.columns]
    missing = [c for c in header.required if c not in frame.columns]
    if missing:
        hints = []
        for col in missing:
            renamed = [old for old, new in header.renamed.items() if new == col and old in found]
            close = renamed or difflib.get_close_matches(col, found, n=1, cutoff=0.6)
            if close:
                hints.append(f"{close[0]!r} looks like a renamed {col!r}")
        hint = (" (" + "; ".join(hints) + ")") if hints else ""
        raise DataError(
            f"{path}: column(s) {missing} not found{hint}.\n  expected header: {header.expected}\n"
            f"  found header:    {','.join(found)}\nUse the original file as downloaded (edited copies "
            "rename columns), or rename the column(s) back."
        )
    if header.strict:
        known = {*header.required, *header.optional, *header.aliases.values()}
        extra = [c for c in found if c not in known]
        if extra:
            warnings.warn(
                f"{path}: column(s) {extra} are not in the original header ({header.expected}); they "
                "are ignored. The file is probably an edited copy; prefer the original download.",
                MetadataWarning,
                stacklevel=3,
            )
            report.notes.append(f"{path.name}: ignored non-original column(s) {extra}.")
    result: pd.DataFrame = frame.apply(lambda s: s.astype(str).str.strip())
    return result


# --- values --------------------------------------------------------------------------------


def _warn_rows(table: Table, column: str, bad: pd.Series, what: str, fix: str) -> None:
    first = [f"{table.locate(p)} ({v!r})" for p, v in bad.head(3).items()]
    warnings.warn(
        f"{table.path}: column {column!r} has {len(bad):,} {what}, first at {', '.join(first)}. "
        f"{fix}",
        MetadataWarning,
        stacklevel=3,
    )


def codes(
    table: Table,
    column: str,
    mapping: Mapping[str, str],
    report: Report,
    *,
    attribute: str | None = None,
    missing: Iterable[str] = ("",),
) -> pd.Series:
    """Map a coded column to labels; missing cells and unknown codes become ``"unknown"``.

    Unknown codes (values neither in ``mapping`` nor ``missing``) are counted in
    ``report.unknown_codes[attribute]`` and warned about with their line numbers.
    """
    attribute = attribute or column
    raw = table.frame[column]
    is_missing = raw.isin(list(missing))
    mapped = raw.map(dict(mapping))
    unknown = raw[mapped.isna() & ~is_missing]
    if int(is_missing.sum()):
        report.missing_values[attribute] = report.missing_values.get(attribute, 0) + int(is_missing.sum())
    if len(unknown):
        counts = report.unknown_codes.setdefault(attribute, {})
        for value, n in unknown.value_counts().items():
            counts[str(value)] = counts.get(str(value), 0) + int(n)
        _warn_rows(
            table, column, unknown, "value(s) outside the documented coding "
            f"{sorted(mapping)}", f"They are kept as {MISSING!r} (outside every group). Fix the file or report a new code.",
        )
    return mapped.fillna(MISSING).astype(object)


def numbers(table: Table, column: str, report: Report, *, attribute: str | None = None, unknown: Iterable[str] = ()) -> pd.Series:
    """Parse a numeric column; empty cells (and ``unknown`` values) become NaN and are counted.

    Non-numeric cells are counted as unknown codes and warned about with their lines.
    """
    attribute = attribute or column
    raw = table.frame[column]
    is_missing = raw.eq("") | raw.isin(list(unknown))
    values = pd.to_numeric(raw.where(~is_missing), errors="coerce")
    bad = raw[values.isna() & ~is_missing]
    if int(is_missing.sum()):
        report.missing_values[attribute] = report.missing_values.get(attribute, 0) + int(is_missing.sum())
    if len(bad):
        counts = report.unknown_codes.setdefault(attribute, {})
        for value, n in bad.value_counts().items():
            counts[str(value)] = counts.get(str(value), 0) + int(n)
        _warn_rows(table, column, bad, "non-numeric value(s)", "They are read as missing. Fix the file.")
    result: pd.Series = values.astype(float)
    return result


def binarise(values: pd.Series, groups: Mapping[str, Sequence[str]]) -> pd.Series:
    """Collapse labels into groups (``{"1-3": ["1", "2", "3"], ...}``); others → ``"unknown"``."""
    table = {v: name for name, members in groups.items() for v in members}
    return values.map(table).fillna(MISSING).astype(object)


def unique_ids(ids: pd.Series, table: Table, what: str) -> None:
    """Raise :class:`DataError` if ``ids`` has a duplicate (naming both lines)."""
    dup = ids[ids.duplicated(keep=False)]
    if len(dup):
        first = dup.iloc[0]
        lines = [table.line(p) for p in dup.index[dup == first][:2]]
        raise DataError(
            f"{table.path}: {what} {first!r} appears more than once (lines {lines[0]} and {lines[1]}). "
            "Sample ids must be unique; remove the duplicate row."
        )


def empty_ids(ids: pd.Series, table: Table, what: str) -> None:
    """Raise :class:`DataError` if an id cell is empty (naming the line)."""
    empty = ids[ids.eq("")]
    if len(empty):
        raise DataError(f"{table.where(empty.index[0])}: empty {what} ({len(empty)} row(s)). Every row needs one.")


def read_id_table(path: Path, header: Header, report: Report, id_column: str) -> Table:
    """The primary metadata file: :func:`read_csv_table`, its rows counted as ``report.source_rows``,
    and ``id_column`` checked to be never empty (:func:`empty_ids`) and unique (:func:`unique_ids`)."""
    table = read_csv_table(path, header, report)
    report.source_rows = len(table.frame)
    empty_ids(table.frame[id_column], table, id_column)
    unique_ids(table.frame[id_column], table, id_column)
    return table


# --- images --------------------------------------------------------------------------------


class _Listing:
    """Cached directory listings, so checking 100k files costs one ``listdir`` per folder."""

    def __init__(self) -> None:
        self._dirs: dict[Path, frozenset[str]] = {}

    def exists(self, path: Path) -> bool:
        folder = path.parent
        if folder not in self._dirs:
            try:
                self._dirs[folder] = frozenset(os.listdir(folder))
            except OSError:
                self._dirs[folder] = frozenset()
        return path.name in self._dirs[folder]


def present(root: Path, relpaths: Iterable[str]) -> np.ndarray:
    """Whether each ``root / relpath`` exists (case-sensitive, one listing per folder)."""
    listing = _Listing()
    return np.array([bool(p) and listing.exists(root / p) for p in relpaths], dtype=bool)


def check_images(
    frame: pd.DataFrame, root: Path, report: Report, *, columns: Sequence[str] = ("image_path",), stacklevel: int = 3
) -> np.ndarray:
    """Count rows whose files (``columns``, relative to ``root``) are absent; warn with examples.

    ``stacklevel`` places the warning (default: the caller of the adapter's ``read_metadata``).

    Returns:
        Boolean array, ``True`` where every file of the row exists.
    """
    ok = np.ones(len(frame), dtype=bool)
    for col in columns:
        ok &= present(root, frame[col].astype(str))
    missing = frame.loc[~ok, list(columns)]
    report.rows_without_image = int((~ok).sum())
    report.missing_image_examples = [str(v) for v in missing[columns[0]].head(5)]
    if len(missing):
        from medfairx.data.labels import MissingImagesWarning

        some = ", ".join(report.missing_image_examples[:3])
        warnings.warn(
            f"{report.adapter}: {len(missing):,} of {len(frame):,} metadata rows have no image file under "
            f"{root} (e.g. {some}). Put the files there (see the dataset card's expected layout); "
            "rows without an image are skipped when the dataset is loaded.",
            MissingImagesWarning,
            stacklevel=stacklevel,
        )
    return ok


def finish(frame: pd.DataFrame, report: Report, *, class_names: Sequence[str] = ()) -> pd.DataFrame:
    """Index by ``sample_id`` (strings), attach the report; the adapters' last step."""
    frame = frame.copy()
    frame.index = pd.Index(frame.index.astype(str), name="sample_id")
    frame.attrs["report"] = report.to_dict(len(frame))
    if class_names:
        frame.attrs["class_names"] = tuple(class_names)
    return frame


def option_path(root: Path, value: str | os.PathLike[str]) -> Path:
    """An option naming a file: absolute as given, else relative to ``root``."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else root / path


def choose(value: str, allowed: Sequence[str], what: str) -> str:
    """Validate an enumerated option, with the allowed values in the error."""
    if value not in allowed:
        raise ConfigError(f"{what}: {value!r} is not allowed; use one of: {', '.join(allowed)}.")
    return value


def typed_attribute(values: pd.Series) -> pd.Series:
    """A user-supplied attribute column: numeric if every non-empty cell is a number (empty →
    NaN, so ``bins`` groupings work), else strings with empty cells as ``"unknown"``."""
    text = values.astype(str).str.strip()
    filled = text.ne("")
    numeric = pd.to_numeric(text.where(filled), errors="coerce")
    if filled.any() and numeric[filled].notna().all():
        result: pd.Series = numeric.astype(float)
        return result
    result = text.where(filled, MISSING).astype(object)
    return result
