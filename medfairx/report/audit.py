"""Audit a model trained elsewhere: score a table of its predictions like a run.

A CSV or Parquet file with one row per sample (a label column, a score column, attribute
columns) is turned into the predictions table of the run store (``split``, ``sample_id``,
``group:<grouping>``, ``y_true``, ``score``) and scored by
:func:`medfairx.metrics.evaluate.score_predictions`, the function ``medfairx report`` uses:
the same metrics, bootstrap and DeLong intervals, threshold policies and undefined-value
notes. The pages, ``results.csv`` and ``provenance.json`` are written by
:func:`medfairx.report.leaderboard.build_leaderboard`.

Groupings follow the catalogue's rules (:mod:`medfairx.data.groupings`): a column's values,
or numeric bins with right-closed cut points (``age=40,60,80`` gives ``<=40``,
``(40, 60]``, ``(60, 80]``, ``>80``), and intersections labelled ``"a|b"``.

Thresholds are chosen on the rows of a validation part (``split_col == val_value``) and
the metrics computed on the other rows. Without a validation part, the thresholds are
chosen on the audited rows themselves, and the pages say so.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from medfairx.errors import ConfigError, DataError

CLS, SEG = "classification", "segmentation"
VAL, TEST = "val", "test"
STRATEGY = "final"
MISSING_COLUMN = "{where}: no column {column!r} (given as {option}); available columns: {available}."
NOT_NUMERIC = "{where}: score column {column!r} is not numeric (e.g. {example!r} at row {row}); scores must be numbers in [0, 1]."
BAD_SCORE = ("{where}: score column {column!r} has {n} value(s) that are {what} (first at row {row}: {value}); "
             "scores must be probabilities in [0, 1], without missing values.")
BAD_LABEL = ("{where}: label column {column!r} has value(s) other than {allowed}: {values} (first at row {row}); "
             "recode the labels (positive class = 1).")
ONE_CLASS = ("{where}: label column {column!r} has a single class ({value!r}) in the audited rows; AUC, TPR and "
             "FPR need positives and negatives.")
FEW_GROUPS = ("{where}: sensitive attribute {name!r} has {n} group(s) ({groups}); a fairness audit needs at least 2. "
              "Choose another column, or other --bins.")
NO_VAL_ROWS = ("{where}: split column {column!r} has no row equal to {value!r} (values: {values}); pass the "
               "validation part's value with --val-value.")
NO_TEST_ROWS = "{where}: every row is in the validation part ({column!r} == {value!r}); nothing is left to audit."
DUPLICATE_IDS = "{where}: id column {column!r} has duplicate value(s) {values}; sample ids must be unique."
BAD_BINS = "--bins {item!r}: expected COLUMN=CUT[,CUT...] with numbers, e.g. age=40,60,80."
BINS_UNUSED = "--bins {column!r}: the column is not among the sensitive attributes or intersections ({used})."
BAD_FORMAT = "{where}: unknown file type {suffix!r}; give a .csv, .tsv or .parquet file."
NO_SEG_COLUMNS = "{where}: segmentation audits need per-sample columns named {names}; found none of them."
NO_SENSITIVE = "No sensitive attribute given: name at least one column with --sensitive (or sensitive=[...])."
SELF_THRESHOLD = ("Thresholds were chosen on the audited data itself (no validation part was given), so TPR, FPR "
                  "and the other thresholded metrics are optimistic. Name a validation part with --split-col to "
                  "choose them on other rows.")
VAL_THRESHOLD = "Thresholds were chosen on the validation part ({column} == {value!r}, {n_val} rows); metrics on the other {n_test} rows."


@dataclass
class AuditResult:
    """The tables of one audit.

    Attributes:
        results: the long results table (columns of
            :data:`medfairx.metrics.evaluate.RESULT_COLUMNS`), as ``results.csv``.
        by_group: a fairlearn ``MetricFrame.by_group``-like wide table: index
            ``(grouping, group)``, one column per base metric, the point values.
        overall: one value per base metric on every audited row.
        thresholds: grouping → the decision threshold used (NaN for segmentation and
            multi-class).
        settings: what was audited and how (file, columns, bins, threshold source).
        notes: the caveats shown on every page (e.g. thresholds chosen on the audited data).
    """

    results: pd.DataFrame
    by_group: pd.DataFrame
    overall: pd.Series
    thresholds: dict[str, float]
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write the leaderboard pages, ``results.csv``, ``provenance.json`` and ``audit.json``."""
        return write_audit(self, Path(out_dir))


# --- input ---------------------------------------------------------------------------------


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV (``.csv``, ``.csv.gz``, ``.tsv``) or Parquet file as a DataFrame."""
    path = Path(path)
    name = path.name.lower()
    if not path.is_file():
        raise DataError(f"{path}: no such file; give the predictions table (CSV or Parquet).")
    if name.endswith((".parquet", ".pq")):
        return pd.read_parquet(path)
    if name.endswith((".csv", ".csv.gz")):
        return pd.read_csv(path)
    if name.endswith((".tsv", ".tsv.gz")):
        return pd.read_csv(path, sep="\t")
    raise DataError(BAD_FORMAT.format(where=path, suffix="".join(path.suffixes) or path.name))


def parse_bins(items: Mapping[str, Sequence[float]] | Sequence[str] | None) -> dict[str, tuple[float, ...]]:
    """``{"age": (40, 60, 80)}`` from a mapping or from ``["age=40,60,80", ...]`` (CLI form)."""
    if not items:
        return {}
    if isinstance(items, Mapping):
        return {str(k): tuple(float(x) for x in v) for k, v in items.items()}
    out: dict[str, tuple[float, ...]] = {}
    for item in items:
        column, sep, cuts = str(item).partition("=")
        try:
            values = tuple(float(x) for x in cuts.replace(",", " ").split())
        except ValueError:
            raise ConfigError(BAD_BINS.format(item=item)) from None
        if not sep or not column.strip() or not values:
            raise ConfigError(BAD_BINS.format(item=item))
        out[column.strip()] = tuple(sorted(values))
    return out


def _names(items: str | Sequence[str] | None) -> list[str]:
    """Column names from ``"a,b"``, ``["a", "b,c"]`` or ``None``."""
    if items is None:
        return []
    if isinstance(items, str):
        items = [items]
    return [n for item in items for n in str(item).replace(",", " ").split()]


def _require(frame: pd.DataFrame, column: str, option: str, where: str) -> None:
    if column not in frame.columns:
        raise DataError(MISSING_COLUMN.format(where=where, column=column, option=option,
                                              available=", ".join(map(str, frame.columns))))


def _first(mask: np.ndarray, frame: pd.DataFrame) -> Any:
    """Row label (in the file) of the first True of ``mask``."""
    return frame.index[int(np.flatnonzero(mask)[0])]


def _check_scores(frame: pd.DataFrame, columns: list[str], where: str) -> None:
    for col in columns:
        s = frame[col]
        if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            bad = pd.to_numeric(s, errors="coerce").isna() & s.notna()
            row = _first(bad.to_numpy(), frame) if bad.any() else frame.index[0]
            raise DataError(NOT_NUMERIC.format(where=where, column=col, example=s.loc[row], row=row))
        v = s.to_numpy(np.float64)
        for what, mask in (("missing (NaN)", np.isnan(v)), ("outside [0, 1]", ~np.isnan(v) & ((v < 0) | (v > 1)))):
            if mask.any():
                row = _first(mask, frame)
                raise DataError(BAD_SCORE.format(where=where, column=col, n=int(mask.sum()), what=what, row=row,
                                                 value=s.loc[row]))


def _check_labels(frame: pd.DataFrame, column: str, n_classes: int, where: str) -> np.ndarray:
    allowed = list(range(max(n_classes, 2)))
    raw = frame[column]
    numeric = pd.to_numeric(raw, errors="coerce") if not pd.api.types.is_bool_dtype(raw) else raw.astype(int)
    ok = numeric.isin(allowed).to_numpy()
    if not ok.all():
        bad = raw[~ok]
        shown = sorted({str(v) for v in bad})[:5]
        raise DataError(BAD_LABEL.format(where=where, column=column, allowed="/".join(map(str, allowed)),
                                         values=", ".join(shown), row=_first(~ok, frame)))
    return numeric.to_numpy().astype(np.int64)


# --- groupings -----------------------------------------------------------------------------


def _rule(column: str, bins: Mapping[str, tuple[float, ...]]) -> Any:
    """The catalogue rule of one attribute column: numeric bins if given, else its values."""
    from medfairx.data.groupings import BinsRule, CategoricalRule

    if column in bins:
        return BinsRule(column, 1, column=column, bins=bins[column])
    return CategoricalRule(column, 1, column=column)


def intersection_name(parts: Sequence[str]) -> str:
    """Grouping name of an intersection: ``"sex_x_age"``."""
    return "_x_".join(parts)


def build_group_columns(frame: pd.DataFrame, sensitive: Sequence[str], intersect: Sequence[Sequence[str]],
                        bins: Mapping[str, tuple[float, ...]], where: str) -> dict[str, pd.Series]:
    """Grouping name → group label per row (``None`` outside every group), by the catalogue rules."""
    from medfairx.data.groupings import IntersectionRule, too_few_groups

    for column in bins:
        if column not in {*sensitive, *(c for p in intersect for c in p)}:
            raise ConfigError(BINS_UNUSED.format(column=column, used=", ".join([*sensitive, *map(",".join, intersect)])))
    rules = [_rule(c, bins) for c in sensitive]
    for parts in intersect:
        rules.append(IntersectionRule(intersection_name(parts), 1, parts=tuple(_rule(c, bins) for c in parts)))
    out: dict[str, pd.Series] = {}
    for rule in rules:
        groups = rule(frame)
        labels = groups.astype(object).where(groups.notna(), None)
        present = sorted({str(v) for v in labels if v is not None})
        if too_few_groups(rule.name, len(present)):
            raise DataError(FEW_GROUPS.format(where=where, name=rule.name, n=len(present),
                                              groups=", ".join(present) or "none"))
        out[rule.name] = labels.map(lambda v: None if v is None else str(v))
    return out


# --- the audit -----------------------------------------------------------------------------


def predictions_table(frame: pd.DataFrame, *, task: str, label: str | None, score: Sequence[str],
                      groups: Mapping[str, pd.Series], split: np.ndarray, ids: pd.Series,
                      where: str = "data") -> pd.DataFrame:
    """The run store's predictions schema (docs/CONTRACTS.md) for the audited rows."""
    from medfairx.store import GROUP_PREFIX, PER_SAMPLE_COLUMNS

    out: pd.DataFrame = pd.DataFrame({"split": split, "sample_id": ids.to_numpy()})
    for name, labels in groups.items():
        out[GROUP_PREFIX + name] = labels.to_numpy()
    if task == CLS:
        out["y_true"] = _check_labels(frame, str(label), len(score), where)
        if len(score) == 1:
            out["score"] = frame[score[0]].to_numpy(np.float64)
        for k, col in enumerate(score if len(score) > 1 else ()):
            out[f"score_{k}"] = frame[col].to_numpy(np.float64)
    else:
        for col in PER_SAMPLE_COLUMNS:
            if col in frame.columns:
                out[col] = pd.to_numeric(frame[col], errors="coerce").to_numpy(np.float64)
    return out


def audit(
    data: pd.DataFrame | str | Path,
    *,
    label: str | None = None,
    score: str | Sequence[str] | None = None,
    sensitive: str | Sequence[str] | None = None,
    bins: Mapping[str, Sequence[float]] | Sequence[str] | None = None,
    intersect: Sequence[str | Sequence[str]] | None = None,
    split_col: str | None = None,
    val_value: str = VAL,
    id_col: str | None = None,
    task: str = CLS,
    metrics: list[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    threshold_policy: str = "f1",
    model: str | None = None,
    dataset: str | None = None,
) -> AuditResult:
    """Score a table of outside predictions like a medfairx run.

    Args:
        data: the table, or a path to a CSV / Parquet file.
        label: label column (0/1; ``0..K-1`` with ``K`` score columns). Not for segmentation.
        score: P(positive) column, or one column per class (multi-class).
        sensitive: attribute columns, one grouping each (``"sex,age"`` or a list).
        bins: numeric cut points per column, right-closed as in ``datasets.yaml``:
            ``{"age": [40, 60, 80]}`` or ``["age=40,60,80"]``.
        intersect: column combinations scored as one grouping each (``["sex,age"]``).
        split_col: column naming the validation part; thresholds are chosen on its rows.
        val_value: the value of ``split_col`` that marks validation rows.
        id_col: sample id column (default: the row number).
        task: ``classification`` or ``segmentation`` (per-sample ``dice``, ``iou``, ...).
        metrics: metric names (default: every built-in metric of the task).
        n_boot: bootstrap replicates.
        seed: bootstrap seed.
        threshold_policy: see :mod:`medfairx.metrics.thresholds` (default F1-optimal).
        model: name shown as the method (default ``"model"``).
        dataset: name shown as the dataset (default: the file's stem, else ``"audit"``).

    Returns:
        The :class:`AuditResult`.

    Raises:
        DataError: a missing column, bad scores or labels, a single class, an attribute
            with fewer than two groups.
        ConfigError: malformed options.
    """
    from medfairx.contracts import RESULT_COLUMNS
    from medfairx.metrics.evaluate import score_predictions
    from medfairx.metrics.thresholds import parse_policy
    from medfairx.store import PER_SAMPLE_COLUMNS

    parse_policy(threshold_policy)
    if task not in (CLS, SEG):
        raise ConfigError(f"task must be {CLS!r} or {SEG!r}; got {task!r}.")
    source = str(data) if isinstance(data, (str, Path)) else "data"
    frame = read_table(data) if isinstance(data, (str, Path)) else data.reset_index(drop=True)
    where = Path(source).name if isinstance(data, (str, Path)) else "data"
    dataset = dataset or (Path(source).name.split(".")[0] if isinstance(data, (str, Path)) else "audit")
    sens, scores = _names(sensitive), _names(score)
    inter = [_names(p) for p in (intersect or [])]
    cut_points = parse_bins(bins)
    if not sens and not inter:
        raise ConfigError(NO_SENSITIVE)
    if task == CLS:
        if label is None or not scores:
            raise ConfigError("Classification audits need a label column (--label) and a score column (--score).")
        _require(frame, label, "--label", where)
        for col in scores:
            _require(frame, col, "--score", where)
    elif not any(c in frame.columns for c in PER_SAMPLE_COLUMNS):
        raise DataError(NO_SEG_COLUMNS.format(where=where, names=", ".join(PER_SAMPLE_COLUMNS)))
    for col in [*sens, *(c for p in inter for c in p)]:
        _require(frame, col, "--sensitive" if col in sens else "--intersect", where)
    for named, option in ((split_col, "--split-col"), (id_col, "--id-col")):
        if named is not None:
            _require(frame, named, option, where)
    if task == CLS:
        _check_scores(frame, scores, where)

    split, notes = _split(frame, split_col, val_value, where)
    ids = _ids(frame, id_col, where)
    groups = build_group_columns(frame, sens, inter, cut_points, where)
    preds = predictions_table(frame, task=task, label=label, score=scores, groups=groups, split=split, ids=ids,
                              where=where)
    if task == CLS:
        audited = preds.loc[preds["split"] == TEST, "y_true"].unique()
        if len(audited) < 2:
            raise DataError(ONE_CLASS.format(where=where, column=label, value=audited[0].item()))
    if split_col is None:  # thresholds from the audited rows themselves: they also serve as the validation part
        preds = pd.concat([preds, preds.assign(split=VAL)], ignore_index=True)
    model = model or "model"
    tables = []
    for grouping in groups:
        rows = score_predictions(preds, task=task, grouping=grouping, metrics=metrics, n_boot=n_boot, seed=seed,
                                 threshold_policy=threshold_policy, run_name=where)
        rows = rows.assign(suite=dataset, dataset=dataset, grouping=grouping, method=model, seed=0, strategy=STRATEGY)
        tables.append(rows)
    results = pd.concat(tables, ignore_index=True)[list(RESULT_COLUMNS)]
    n_val = int((split == VAL).sum())
    settings = {
        "file": source, "rows": len(frame), "audited_rows": len(frame) - n_val, "validation_rows": n_val,
        "task": task, "label": label, "score": scores, "sensitive": sens, "intersect": inter,
        "bins": {k: list(v) for k, v in cut_points.items()}, "split_col": split_col,
        "val_value": val_value if split_col else None, "id_col": id_col, "threshold_policy": threshold_policy,
        "threshold_source": "validation part" if split_col else "audited rows", "n_boot": n_boot, "seed": seed,
        "model": model, "dataset": dataset,
    }
    thresholds = results.groupby("grouping", sort=False)["threshold"].first()
    return AuditResult(results=results, by_group=_by_group(results), overall=_overall(results),
                       thresholds={str(g): float(t) for g, t in thresholds.items()}, settings=settings, notes=notes)


def _split(frame: pd.DataFrame, split_col: str | None, val_value: str, where: str) -> tuple[np.ndarray, list[str]]:
    """``val`` / ``test`` per row, and the page notes about where thresholds come from."""
    if split_col is None:
        return np.full(len(frame), TEST, dtype=object), [SELF_THRESHOLD]
    values = frame[split_col].astype(str).str.strip()
    is_val = (values == str(val_value)).to_numpy()
    if not is_val.any():
        shown = ", ".join(sorted(set(values))[:10])
        raise DataError(NO_VAL_ROWS.format(where=where, column=split_col, value=str(val_value), values=shown))
    if is_val.all():
        raise DataError(NO_TEST_ROWS.format(where=where, column=split_col, value=str(val_value)))
    return np.where(is_val, VAL, TEST).astype(object), []


def _ids(frame: pd.DataFrame, id_col: str | None, where: str) -> pd.Series:
    if id_col is None:
        result: pd.Series = pd.Series(np.arange(len(frame)), index=frame.index)
        return result
    ids = frame[id_col]
    if ids.dtype == object:
        ids = ids.astype(str)
    dup = ids[ids.duplicated()]
    if len(dup):
        raise DataError(DUPLICATE_IDS.format(where=where, column=id_col, values=sorted(set(map(str, dup)))[:5]))
    return ids


def _by_group(results: pd.DataFrame) -> pd.DataFrame:
    rows = results[results["scope"] == "group"]
    wide: pd.DataFrame = rows.set_index(["grouping", "group", "metric"])["value"].unstack("metric")
    wide.columns.name = None
    return wide


def _overall(results: pd.DataFrame) -> pd.Series:
    rows = results[results["scope"] == "overall"]
    first = rows[rows["grouping"] == rows["grouping"].iloc[0]] if len(rows) else rows
    result: pd.Series = pd.Series(first["value"].to_numpy(), index=first["metric"].to_numpy(), name="overall")
    return result


# --- output --------------------------------------------------------------------------------


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value


def write_audit(result: AuditResult, out_dir: Path) -> list[Path]:
    """The leaderboard of one audit (index, group pages, method page, results.csv,
    provenance.json) and ``audit.json`` (settings, thresholds, per-group values)."""
    from medfairx.fileio import atomic_write_json
    from medfairx.report.leaderboard import build_leaderboard
    from medfairx.version import __version__

    s = result.settings
    source = (VAL_THRESHOLD.format(column=s["split_col"], value=s["val_value"], n_val=s["validation_rows"],
                                   n_test=s["audited_rows"]) if s.get("split_col") else SELF_THRESHOLD)
    methods = {s["model"]: {"summary": f"Predictions audited from {Path(str(s['file'])).name}. {source}"}}
    prov = {"medfairx": __version__, "audit": {k: v for k, v in s.items() if k != "file"} | {
        "file": Path(str(s["file"])).name}, "thresholds": result.thresholds}
    written = build_leaderboard(result.results, out_dir, suite=str(s["dataset"]), methods=methods,
                                provenance=_json_safe(prov), caveats={str(s["dataset"]): list(result.notes)})
    by_group: dict[str, dict[str, dict[Hashable, Any]]] = {}
    for key, row in result.by_group.iterrows():
        grouping, group = cast(tuple[Hashable, Hashable], key)  # by_group is indexed by (grouping, group)
        by_group.setdefault(str(grouping), {})[str(group)] = row.to_dict()
    path = Path(out_dir) / "audit.json"
    atomic_write_json(path, _json_safe({"settings": s, "notes": result.notes, "thresholds": result.thresholds,
                                        "overall": result.overall.to_dict(), "by_group": by_group}), newline=True)
    return [*written, path]
