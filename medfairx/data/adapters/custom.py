"""Custom adapter: benchmark your own images from one CSV, without writing code.

``datasets.yaml``::

    my_data:
      adapter: custom
      root: /data/my_study            # paths in the CSV are relative to it
      task: classification            # or segmentation (needs mask_column)
      label: {column: diagnosis, positive: [malignant]}   # optional, see below
      options:
        csv: metadata.csv
        image_column: image           # relative image path (png, jpg, ...)
        label_column: label           # int classes 0..K-1 (when no `label:` is given)
        mask_column: null             # binary mask path (segmentation; foreground = grey > 127)
        attributes: [sex, age]        # default: every other column
        patient_column: null          # default: each image is its own patient
        id_column: null               # default: the image path is the sample id

Without a catalogue ``label``, ``label_column`` must hold integer classes ``0..K-1``; with
string labels give ``label: {column: ..., positive: [...]}`` (binary) or
``label: {column: ..., classes: [...]}``. Attribute columns that are all numbers (empty
cells allowed) stay numeric, so ``bins`` groupings work; others are strings with empty
cells read as ``unknown``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from medfairx.config import DatasetConfig, LabelConfig
from medfairx.data.adapters import _loading
from medfairx.data.adapters._tabular import (
    Header,
    Report,
    check_images,
    empty_ids,
    finish,
    option_path,
    read_csv_table,
    typed_attribute,
    unique_ids,
)
from medfairx.data.dataset import FairDataset
from medfairx.errors import ConfigError

NAME = "custom"
RESERVED = ("label", "patient_id", "image_path", "mask_path")
OPTIONS: dict[str, Any] = {
    "csv": "metadata.csv",
    "image_column": "image",
    "label_column": "label",
    "mask_column": None,
    "attributes": None,
    "patient_column": None,
    "id_column": None,
}
LAYOUT = "one CSV (options.csv) with an image path column, a label or mask column and attribute columns"


def read_metadata(
    root: Path,
    *,
    csv: str = OPTIONS["csv"],
    image_column: str = OPTIONS["image_column"],
    label_column: str | None = OPTIONS["label_column"],
    mask_column: str | None = None,
    attributes: list[str] | None = None,
    patient_column: str | None = None,
    id_column: str | None = None,
    label: LabelConfig | None = None,
    check: bool = True,
) -> pd.DataFrame:
    """Parse a user CSV into the standard metadata frame.

    Returns:
        Frame indexed by ``sample_id`` with ``patient_id``, ``image_path`` (and
        ``mask_path`` for segmentation, ``label`` for classification) and the attribute
        columns; ``attrs["class_names"]`` names the classes.

    Raises:
        DataError: the CSV or a named column is absent, an id repeats or is empty.
        ConfigError: labels are strings but no catalogue ``label`` says which is positive.
    """
    root = Path(root)
    report = Report(NAME)
    segmentation = mask_column is not None
    named = [image_column, mask_column, patient_column, id_column, *(attributes or [])]
    if not segmentation and label is None and label_column:
        named.append(label_column)
    if label is not None and not segmentation:
        named.append(label.column)
    required = tuple(dict.fromkeys(c for c in named if c))
    table = read_csv_table(option_path(root, csv), Header(required=required), report)
    df = table.frame
    report.source_rows = len(df)
    empty_ids(df[image_column], table, f"image path ({image_column!r})")
    ids = df[id_column] if id_column else df[image_column]
    empty_ids(ids, table, f"sample id ({id_column or image_column!r})")
    unique_ids(ids, table, "sample id")
    out = pd.DataFrame(index=ids.to_numpy())
    if patient_column:
        empty_ids(df[patient_column], table, f"patient id ({patient_column!r})")
        out["patient_id"] = df[patient_column].to_numpy()
    else:
        out["patient_id"] = ids.to_numpy()
        report.notes.append("no patient_column: every image is its own patient (image-level splits)")
    used = {image_column, mask_column, patient_column, id_column}
    label_source = label.column if label is not None else label_column
    cols = list(attributes) if attributes is not None else [c for c in df.columns if c not in used and c != label_source]
    clash = [c for c in cols if c in RESERVED]
    if clash:
        raise ConfigError(f"custom adapter: attribute column(s) {clash} clash with reserved names {RESERVED}; rename them in {table.path}.")
    for col in cols:
        out[col] = typed_attribute(df[col]).to_numpy()
        missing = int(df[col].eq("").sum())
        if missing:
            report.missing_values[col] = missing
    out["image_path"] = df[image_column].to_numpy()
    if segmentation:
        out["mask_path"] = df[mask_column].to_numpy()
        out.attrs["class_names"] = ("background", "foreground")
    elif label is not None:
        if label.column not in out.columns:
            out[label.column] = df[label.column].to_numpy()
        out = _loading.with_labels(out, label, label, (), NAME)
    else:
        out = _int_labels(out, df[label_column], table)
    if check:
        check_images(out, root, report, columns=("image_path", "mask_path") if segmentation else ("image_path",))
    return finish(out, report)


def _int_labels(out: pd.DataFrame, values: pd.Series, table: Any) -> pd.DataFrame:
    numeric = pd.to_numeric(values, errors="coerce")
    bad = values[numeric.isna() | (numeric % 1 != 0) | (numeric < 0)]
    if len(bad):
        raise ConfigError(
            f"{table.where(bad.index[0])}: label {bad.iloc[0]!r} in column {values.name!r} is not an integer class 0..K-1. "
            f"Give `label: {{column: {values.name}, positive: [...]}}` (or `classes: [...]`) in datasets.yaml for string labels."
        )
    k = int(numeric.max()) + 1
    absent = sorted(set(range(k)) - set(numeric.astype(int)))
    if absent or k < 2:
        raise ConfigError(
            f"{table.path}: column {values.name!r} must use every class 0..K-1 with K >= 2; classes present: "
            f"{sorted(set(numeric.astype(int)))}. Recode the labels or give a catalogue `label:`."
        )
    result: pd.DataFrame = out.assign(label=numeric.astype(int).to_numpy())
    result.attrs["class_names"] = tuple(str(i) for i in range(k))
    return result


def load(cfg: DatasetConfig, *, cache_dir: Path) -> FairDataset:
    """Adapter entry point (classification or segmentation, from ``task``)."""

    def check(opts: dict[str, Any], task: str) -> None:
        if task == "segmentation" and not opts["mask_column"]:
            raise ConfigError(f"datasets.{cfg.name}: task segmentation needs options.mask_column (the mask path column).")

    run = _loading.begin(cfg, cache_dir, NAME, OPTIONS, LAYOUT, tasks=("classification", "segmentation"), check=check)
    opts, seg = run.opts, run.task == "segmentation"
    keys = ("csv", "image_column", "label_column", "attributes", "patient_column", "id_column")
    mask_column = opts["mask_column"] if seg else None
    frame = read_metadata(run.root, label=None if seg else cfg.label, mask_column=mask_column, **{k: opts[k] for k in keys})
    skip = {"patient_id", "image_path", "mask_path", "label"}
    if cfg.label is not None:
        skip.add(cfg.label.column)
    attrs = tuple(c for c in frame.columns if c not in skip)
    return _loading.build(
        run,
        frame,
        source_files=_loading.metadata_files(run.root, opts, ("csv",)),
        class_names=frame.attrs["class_names"],
        mask_column="mask_path" if seg else None,
        card_changes={
            "attributes": attrs,
            "patient_id_column": opts["patient_column"] or "(none: one image per patient)",
        },
    )
