"""Harvard-FairSeg adapter: one ``data_XXXXX.npz`` per patient (SLO fundus, disc/cup mask,
six demographic attributes); optic cup and rim segmentation.

Tested on fixture npz files written from the documentation
(``../shared/data/harvard-fairseg/NOT-STAGED.md``); no original file was available.

* Files ``data_*.npz`` anywhere below ``root`` (e.g. ``Training/`` and ``Test/``); the
  sub-folder is kept as ``folder``. ``sample_id`` and ``patient_id`` are the file stem.
* Attribute keys and codings (README): ``gender`` 0 = Female, 1 = Male → ``sex``;
  ``race`` 0 Asian, 1 Black, 2 White; ``ethnicity`` 0 Non-Hispanic, 1 Hispanic;
  ``language`` 0 English, 1 Spanish, 2 Others; ``maritalstatus`` 0 Married or Partnered,
  1 Single, 2 Divorced, 3 Widowed, 4 Legally Separated → ``marital_status``; ``-1`` =
  ``unknown``. Scalars are 0-d arrays. Other codes are kept as ``unknown`` with a warning
  naming the file.
* Masks: the README does not give the label values. Public loader code reads
  ``abs(disc_cup_mask)`` with values {0, -1, -2}: 0 background, 1 rim (disc minus cup),
  2 cup. That is the default ``options.mask_values`` (``{0: 0, -1: 1, -2: 2, 1: 1, 2: 2}``,
  raw value → class index). Any other value stops the cache build with an error naming the
  file and the values found (``np.unique``); set ``options.mask_values`` to map them.
* The image (``slo_fundus``, 2-D grey) is resized bilinearly and repeated on 3 channels;
  masks are resized nearest-neighbour.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from medfairx.config import DatasetConfig
from medfairx.data.adapters import _loading
from medfairx.data.adapters._tabular import Report, Table, codes, finish, numbers
from medfairx.data.dataset import FairDataset
from medfairx.errors import ConfigError, DataError

NAME = "harvard_fairseg"
KEYS: tuple[str, ...] = ("slo_fundus", "disc_cup_mask", "age", "gender", "race", "ethnicity", "language", "maritalstatus")
CODINGS: dict[str, tuple[str, dict[str, str]]] = {
    "gender": ("sex", {"0": "female", "1": "male"}),
    "race": ("race", {"0": "Asian", "1": "Black", "2": "White"}),
    "ethnicity": ("ethnicity", {"0": "Non-Hispanic", "1": "Hispanic", "-1": "unknown"}),
    "language": ("language", {"0": "English", "1": "Spanish", "2": "Others", "-1": "unknown"}),
    "maritalstatus": (
        "marital_status",
        {"0": "Married or Partnered", "1": "Single", "2": "Divorced", "3": "Widowed", "4": "Legally Separated", "-1": "unknown"},
    ),
}
MASK_VALUES: dict[int, int] = {0: 0, -1: 1, -2: 2, 1: 1, 2: 2}
CLASS_NAMES = ("background", "rim", "cup")
OPTIONS: dict[str, Any] = {"pattern": "**/data_*.npz", "mask_values": None}
LAYOUT = "data_XXXXX.npz files (keys slo_fundus, disc_cup_mask, age, gender, race, ethnicity, language, maritalstatus)"


def _scalar(value: np.ndarray) -> str:
    """A 0-d (or 1-element) array as the code string (``1.0`` → ``"1"``)."""
    item = np.asarray(value).reshape(-1)[0].item()
    if isinstance(item, bytes):
        item = item.decode()
    if isinstance(item, float) and item.is_integer():
        item = int(item)
    return str(item).strip()


def read_metadata(root: Path, *, pattern: str = OPTIONS["pattern"], check: bool = True) -> pd.DataFrame:
    """Read the attributes of every subject file (images and masks are not decoded).

    Returns:
        Frame indexed by ``sample_id`` (file stem) with ``patient_id``, ``folder``, ``age``,
        ``sex``, ``race``, ``ethnicity``, ``language``, ``marital_status``, ``image_path``.

    Raises:
        DataError: no file matches, a file cannot be opened, or a documented key is absent.
    """
    root = Path(root)
    report = Report(NAME)
    files = sorted(root.glob(pattern), key=lambda p: (p.name, str(p)))
    if not files:
        raise DataError(f"No Harvard-FairSeg file matches {pattern!r} under {root}. Expected: {LAYOUT}.")
    rows = []
    for path in files:
        try:
            with np.load(path, allow_pickle=False) as npz:
                missing = [k for k in KEYS if k not in npz.files]
                if missing:
                    raise DataError(
                        f"{path}: key(s) {missing} not found; it has {sorted(npz.files)}. Expected keys: {', '.join(KEYS)} "
                        "(sex is 'gender' in FairSeg, 'male' in Harvard-DR: use the right adapter)."
                    )
                rows.append({k: _scalar(npz[k]) for k in KEYS[2:]})
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise DataError(f"Cannot read {path}: {exc}. Replace the file.") from None
    raw = pd.DataFrame(rows)
    names = tuple(p.name for p in files)
    table = Table(raw, root, row_files=names)
    report.source_rows = len(raw)
    report.files["*.npz"] = {"rows": len(raw), "line_endings": "n/a"}
    stems = [p.stem for p in files]
    if len(set(stems)) != len(stems):
        dup = pd.Series(stems)[pd.Series(stems).duplicated()].iloc[0]
        raise DataError(f"{root}: subject file {dup}.npz occurs in two folders; sample ids must be unique.")
    out = pd.DataFrame(index=stems)
    out["patient_id"] = stems
    out["folder"] = [str(p.parent.relative_to(root)) for p in files]
    out["age"] = numbers(table, "age", report).to_numpy()
    for key, (attribute, mapping) in CODINGS.items():
        out[attribute] = codes(table, key, mapping, report, attribute=attribute).to_numpy()
        report.missing_values[attribute] = report.missing_values.get(attribute, 0) + int(raw[key].eq("-1").sum())
    out["image_path"] = [str(p.relative_to(root)) for p in files]
    report.rows_without_image = 0 if check else None
    return finish(out, report)


def mask_table(values: Mapping[Any, Any] | None) -> dict[int, int]:
    """``options.mask_values`` as ``{raw value: class index}`` (default :data:`MASK_VALUES`)."""
    if values is None:
        return dict(MASK_VALUES)
    try:
        table = {int(k): int(v) for k, v in values.items()}
    except (TypeError, ValueError, AttributeError):
        raise ConfigError(f"harvard_fairseg option mask_values must map raw mask values to class indices, got {values!r}.") from None
    bad = [v for v in table.values() if v not in range(len(CLASS_NAMES))]
    if bad:
        raise ConfigError(f"harvard_fairseg option mask_values: class indices must be 0 (background), 1 (rim) or 2 (cup), got {bad}.")
    return table


def read_subject(path: Path, size: tuple[int, int], values: Mapping[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``(image (3, h, w) uint8, mask (h, w) uint8 class indices)`` of one subject file."""
    with np.load(path, allow_pickle=False) as npz:
        image, raw_mask = np.asarray(npz["slo_fundus"]), np.asarray(npz["disc_cup_mask"])
    if image.ndim == 3 and image.shape[-1] in (1, 3):
        image = image[..., 0] if image.shape[-1] == 1 else np.asarray(Image.fromarray(image.astype(np.uint8)).convert("L"))
    if image.dtype != np.uint8:
        image = np.clip(image * (255.0 if image.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    found = np.unique(raw_mask)
    unknown = [int(v) for v in found if int(v) not in values]
    if unknown:
        raise DataError(
            f"{path}: disc_cup_mask has value(s) {unknown} (all values: {found.tolist()}) that options.mask_values "
            f"does not map (mapping: {dict(values)}). Set datasets.<name>.options.mask_values, e.g. "
            "{0: 0, <rim value>: 1, <cup value>: 2}."
        )
    lut = np.vectorize(lambda v: values[int(v)], otypes=[np.uint8])
    mask = lut(raw_mask)
    grey = Image.fromarray(image).resize((size[1], size[0]), Image.Resampling.BILINEAR)
    small = Image.fromarray(mask).resize((size[1], size[0]), Image.Resampling.NEAREST)
    return np.repeat(np.asarray(grey)[None], 3, axis=0), np.asarray(small, dtype=np.uint8)


def load(cfg: DatasetConfig, *, cache_dir: Path) -> FairDataset:
    """Adapter entry point: subject files, cached images/masks and splits (segmentation)."""
    run = _loading.begin(cfg, cache_dir, NAME, OPTIONS, LAYOUT, tasks=("segmentation",))
    values = mask_table(run.opts["mask_values"])
    frame = read_metadata(run.root, pattern=run.opts["pattern"])
    return _loading.build(
        run,
        frame,
        source_files=[],
        class_names=CLASS_NAMES,
        default_size=(200, 200),
        read_item=lambda row, size: read_subject(run.root / row["image_path"], size, values),
    )
