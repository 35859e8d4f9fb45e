"""DDI (Diverse Dermatology Images) adapter: ``ddi_metadata.csv`` + ``images/<DDI_file>``.

Tested on fixtures written from the documentation (``../shared/data/ddi/NOT-STAGED.md``);
no original file was available.

* Header ``,DDI_ID,DDI_file,skin_tone,malignant,disease``: the unnamed first column is a
  written-out pandas index and is dropped. Some distributions name the malignancy column
  ``malignancy(malig=1)``; it is accepted as ``malignant``.
* ``malignant``: ``TRUE`` / ``FALSE`` strings (any case; ``1`` / ``0`` in the alternative
  column) → label malignant vs benign.
* ``skin_tone``: the group codes ``12``, ``34``, ``56`` (Fitzpatrick I–II, III–IV, V–VI),
  kept as categories (strings), never as numbers.
* No patient id (656 images of 570 patients): ``patient_id`` is ``DDI_ID``. DDI is
  normally an external test set.
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
    read_id_table,
)
from medfairx.data.dataset import FairDataset

NAME = "ddi"
HEADER = Header(
    required=("DDI_ID", "DDI_file", "skin_tone", "malignant", "disease"),
    aliases={"malignancy(malig=1)": "malignant"},
    drop_unnamed_index=True,
    strict=True,
)
SKIN_TONE = {"12": "12", "34": "34", "56": "56"}
MALIGNANT = {v: "malignant" for v in ("TRUE", "True", "true", "1", "1.0")} | {
    v: "benign" for v in ("FALSE", "False", "false", "0", "0.0")
}
DEFAULT_LABEL = LabelConfig(column="malignancy", positive=["malignant"])
OPTIONS: dict[str, Any] = {"metadata": "ddi_metadata.csv", "images_dir": "images"}
LAYOUT = "ddi_metadata.csv and images/<DDI_file> (000001.png ... 000656.png)"


def read_metadata(
    root: Path,
    *,
    metadata: str = OPTIONS["metadata"],
    images_dir: str = OPTIONS["images_dir"],
    label: LabelConfig | None = None,
    check: bool = True,
) -> pd.DataFrame:
    """Parse ``ddi_metadata.csv`` into the standard metadata frame.

    Returns:
        Frame indexed by ``sample_id`` (= ``DDI_file`` without extension) with ``label``,
        ``malignancy``, ``patient_id`` (= ``DDI_ID``), ``skin_tone`` (``"12"``/``"34"``/
        ``"56"``/``"unknown"``), ``disease``, ``image_path``.
    """
    root = Path(root)
    report = Report(NAME)
    table = read_id_table(root / metadata, HEADER, report, "DDI_file")
    df = table.frame
    out = pd.DataFrame(index=df["DDI_file"].str.rsplit(".", n=1).str[0].to_numpy())
    out["patient_id"] = df["DDI_ID"].to_numpy()
    report.notes.append("no patient id in DDI (656 images of 570 patients): patient_id = DDI_ID")
    out["skin_tone"] = codes(table, "skin_tone", SKIN_TONE, report).to_numpy()
    malignancy = codes(table, "malignant", MALIGNANT, report, attribute="malignancy")
    unlabelled = malignancy.eq("unknown").to_numpy()
    out["malignancy"] = malignancy.to_numpy()
    out["disease"] = df["disease"].to_numpy()
    out["image_path"] = [f"{images_dir}/{f}" for f in df["DDI_file"]]
    if unlabelled.any():
        report.exclude("malignant not TRUE/FALSE", int(unlabelled.sum()))
        out = out.loc[~unlabelled]
    return _loading.labelled(out, report, root, label=label, default=DEFAULT_LABEL, names=("benign", "malignant"), check=check)


def load(cfg: DatasetConfig, *, cache_dir: Path) -> FairDataset:
    """Adapter entry point: metadata, images, cache and splits as a :class:`FairDataset`."""
    return _loading.load_classification(cfg, cache_dir, NAME, OPTIONS, LAYOUT, read_metadata, files=("metadata",))
