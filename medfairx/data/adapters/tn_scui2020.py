"""TN-SCUI 2020 adapter: thyroid-nodule ultrasound, ``train.csv`` (``ID,CATE``) + images/masks.

* ``train.csv`` separates rows with a bare carriage return (``\\r``) and ends in ``\\r\\n``;
  CR, LF and CRLF files are all accepted and the style is recorded in the report.
* ``ID`` is the file name with its upper-case extension (``5189.PNG``): image
  ``<root>/image/<ID>``, mask ``<root>/mask/<ID>`` (case-sensitive).
* ``CATE``: ``0`` benign, ``1`` malignant (label). ``task: segmentation`` uses the masks.
* The challenge released **no** sensitive attributes and no patient id: ``patient_id`` is
  the image id. Attributes come from a side table the user supplies,
  ``options.attributes_csv`` (path relative to ``root``) with an ``ID`` column
  (``options.id_column``; ids match with or without the ``.PNG`` extension) and the
  attribute columns (``options.attributes``, default: all other columns). Every image id
  must be in the side table, or a :class:`DataError` lists the missing ones.
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
    codes,
    option_path,
    read_csv_table,
    read_id_table,
    typed_attribute,
    unique_ids,
)
from medfairx.data.dataset import FairDataset
from medfairx.errors import ConfigError, DataError

NAME = "tn_scui2020"
HEADER = Header(required=("ID", "CATE"), strict=True)
CATE = {"0": "benign", "1": "malignant"}
DEFAULT_LABEL = LabelConfig(column="category", positive=["malignant"])
OPTIONS: dict[str, Any] = {
    "labels": "train.csv",
    "images_dir": "image",
    "masks_dir": "mask",
    "attributes_csv": None,
    "id_column": "ID",
    "attributes": None,
}
LAYOUT = "train.csv (ID,CATE), image/<ID> and mask/<ID>; attributes from options.attributes_csv"


def _stem(value: str) -> str:
    return value[:-4] if value.lower().endswith(".png") else value


def read_attributes(path: Path, ids: pd.Index, *, id_column: str = "ID", attributes: list[str] | None = None) -> pd.DataFrame:
    """The side table's attribute columns for ``ids`` (numeric columns as numbers, empty cells
    as NaN / ``"unknown"``).

    Raises:
        DataError: the id column or an attribute column is absent, an id repeats, or image
            ids are missing from the table (the message lists them and says what to add).
    """
    report = Report(NAME)
    header = Header(required=(id_column, *(attributes or ())))
    table = read_csv_table(path, header, report)
    df = table.frame
    key = df[id_column].map(_stem)
    unique_ids(key, table, id_column)
    cols = list(attributes) if attributes is not None else [c for c in df.columns if c != id_column]
    if not cols:
        raise DataError(f"{path}: no attribute columns besides {id_column!r}. Add columns such as sex, age.")
    clash = [c for c in cols if c in ("label", "patient_id", "image_path", "category")]
    if clash:
        raise DataError(f"{path}: column(s) {clash} clash with the adapter's columns; rename them.")
    side = df.set_index(key)[cols]
    wanted = ids.map(_stem)
    missing = wanted[~wanted.isin(side.index)]
    if len(missing):
        raise DataError(
            f"{path}: {len(missing):,} of {len(ids):,} image ids are not in column {id_column!r} "
            f"(e.g. {', '.join(list(missing[:5]))}). Add a row for every image of train.csv "
            "(leave unknown attributes empty), or point options.attributes_csv at the right table."
        )
    out: pd.DataFrame = side.loc[wanted].apply(typed_attribute)
    out.index = ids
    return out


def read_metadata(
    root: Path,
    *,
    labels: str = OPTIONS["labels"],
    images_dir: str = OPTIONS["images_dir"],
    masks_dir: str = OPTIONS["masks_dir"],
    attributes_csv: str | None = None,
    id_column: str = "ID",
    attributes: list[str] | None = None,
    label: LabelConfig | None = None,
    masks: bool = False,
    check: bool = True,
) -> pd.DataFrame:
    """Parse ``train.csv`` (any line endings) and join the optional attribute side table.

    Returns:
        Frame indexed by ``sample_id`` (= ``ID``) with ``label``, ``category``,
        ``patient_id`` (= ``ID``), ``image_path``, ``mask_path`` and the side table's
        attribute columns.
    """
    root = Path(root)
    report = Report(NAME)
    table = read_id_table(root / labels, HEADER, report, "ID")
    df = table.frame
    out = pd.DataFrame(index=df["ID"].to_numpy())
    out["category"] = codes(table, "CATE", CATE, report, attribute="category").to_numpy()
    unlabelled = out["category"].eq("unknown")
    if unlabelled.any():
        report.exclude("CATE not 0 or 1", int(unlabelled.sum()))
        out = out.loc[~unlabelled]
    out["patient_id"] = out.index
    report.notes.append("no patient id in TN-SCUI 2020: patient_id = image ID (image-level splits may leak)")
    out["image_path"] = [f"{images_dir}/{i}" for i in out.index]
    out["mask_path"] = [f"{masks_dir}/{i}" for i in out.index]
    if attributes_csv is not None:
        side = read_attributes(option_path(root, attributes_csv), out.index, id_column=id_column, attributes=attributes)
        out = out.join(side)
        report.notes.append(f"attributes {list(side.columns)} from {attributes_csv}")
    columns = ("image_path", "mask_path") if masks else ("image_path",)
    names = ("benign", "malignant")
    return _loading.labelled(out, report, root, label=label, default=DEFAULT_LABEL, names=names, check=check, columns=columns)


def load(cfg: DatasetConfig, *, cache_dir: Path) -> FairDataset:
    """Adapter entry point (classification, or segmentation with ``task: segmentation``)."""
    run = _loading.begin(cfg, cache_dir, NAME, OPTIONS, LAYOUT, tasks=("classification", "segmentation"))
    if run.opts["attributes"] is not None and not isinstance(run.opts["attributes"], list):
        raise ConfigError(f"datasets.{cfg.name}.options.attributes must be a list of column names.")
    seg = run.task == "segmentation"
    frame = read_metadata(run.root, label=cfg.label, masks=seg, **{k: run.opts[k] for k in OPTIONS})
    attrs = tuple(c for c in frame.columns if c not in ("category", "patient_id", "image_path", "mask_path", "label"))
    return _loading.build(
        run,
        frame if seg else frame.drop(columns=["mask_path"]),
        source_files=_loading.metadata_files(run.root, run.opts, ("labels", "attributes_csv")),
        class_names=("background", "nodule") if seg else frame.attrs["class_names"],
        mask_column="mask_path" if seg else None,
        card_changes={"attributes": attrs},
    )
