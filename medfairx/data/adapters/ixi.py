"""IXI adapter: 3-D T1 brain MRIs (NIfTI) with DLMUSE brain-structure label maps, age and sex.

The layout is that of the CBICA NiChart release of IXI (Hammersmith subjects) as resampled
copies (e.g. 3 mm, 80x80x60):

* ``images/<MRID>_T1.nii.gz``: the T1 volume (``MRID`` such as ``IXI012-HH-1211``).
* ``labels/<MRID>_seg.nii.gz``: the coarse label map, 0 background and seven structures
  (:data:`COARSE`: lateral ventricles, hippocampus, thalamus, caudate, putamen,
  cerebellum, brainstem; left and right merged).
* ``labels_dlmuse/<MRID>_dlmuse.nii.gz``: the full DLMUSE label map (DLMUSE ROI ids,
  named in ``list_MUSE_all.csv``).
* ``IXI_Demog_n181.csv``: ``MRID,Age,Sex`` (``F``/``M``); subjects with a volume but no row
  here are counted, left out and named in a warning.

Volumes are read with nibabel (stored voxel values, no reorientation: the array axes are
the file's voxel axes, ``(D, H, W)``), checked to share shape and affine with their label
map, resized to ``image_size`` (``[d, h, w]``; an int repeats; default the stored grid) by
area averaging (T1) and nearest neighbour (labels), and cached in the HDF5 pixel cache.

Targets (``options.labels``): ``coarse`` (default; 8 classes) or ``dlmuse`` (every single
DLMUSE ROI of ``list_MUSE_all.csv`` plus the unnamed ids 46 and 69 found in the maps, as
contiguous class indices). ``options.structure`` (one :data:`COARSE` name) turns the coarse
map into a binary target. The labels are automatic (DLMUSE), not expert.
"""

from __future__ import annotations

import re
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medfairx.config import DatasetConfig
from medfairx.data.adapters import _loading
from medfairx.data.adapters._tabular import (
    MISSING,
    Header,
    MetadataWarning,
    Report,
    choose,
    codes,
    empty_ids,
    finish,
    numbers,
    read_csv_table,
    report_info,
    unique_ids,
)
from medfairx.data.cache import cache_key, file_fingerprints, file_sha256
from medfairx.data.dataset import FairDataset
from medfairx.errors import ConfigError, DataError

NAME = "ixi"
COARSE: tuple[str, ...] = (
    "background", "lateral_ventricles", "hippocampus", "thalamus", "caudate", "putamen", "cerebellum", "brainstem",
)
"""Class names of the coarse label map (class index = position)."""
UNNAMED_DLMUSE = {46: "id46 (unnamed)", 69: "id69 (unnamed)"}
"""DLMUSE ids that occur in the maps but in no ROI table."""
SINGLE_ROI_MAX = 300
"""ROI ids below this are single structures in ``list_MUSE_all.csv``; the others are composites."""
HEADER = Header(required=("MRID", "Age", "Sex"))
SEX = {"F": "female", "M": "male"}
MRID = re.compile(r"^(IXI\d{3})-([A-Za-z]+)-(\d+)$")
IMAGE_SUFFIX, COARSE_SUFFIX, DLMUSE_SUFFIX = "_T1.nii.gz", "_seg.nii.gz", "_dlmuse.nii.gz"
LABEL_SETS = {"coarse": ("labels", COARSE_SUFFIX), "dlmuse": ("labels_dlmuse", DLMUSE_SUFFIX)}
OPTIONS: dict[str, Any] = {
    "demographics": "IXI_Demog_n181.csv",
    "roi_table": "list_MUSE_all.csv",
    "labels": "coarse",
    "structure": None,
    "images_dir": "images",
}
LAYOUT = (
    "images/<MRID>_T1.nii.gz, labels/<MRID>_seg.nii.gz (coarse), labels_dlmuse/<MRID>_dlmuse.nii.gz (full DLMUSE), "
    "IXI_Demog_n181.csv (MRID,Age,Sex), list_MUSE_all.csv"
)


def _subjects(folder: Path) -> list[str]:
    """``MRID`` of every ``<MRID>_T1.nii.gz`` in ``folder``, sorted."""
    if not folder.is_dir():
        raise DataError(f"IXI image folder {folder} does not exist. Expected: {LAYOUT}.")
    return sorted(p.name[: -len(IMAGE_SUFFIX)] for p in folder.iterdir() if p.name.endswith(IMAGE_SUFFIX))


def read_metadata(
    root: Path,
    *,
    demographics: str = OPTIONS["demographics"],
    images_dir: str = OPTIONS["images_dir"],
    labels: str = OPTIONS["labels"],
) -> pd.DataFrame:
    """One row per subject with a T1 volume and a row in the demographics table.

    Subjects with a volume but no demographics are counted in ``report.excluded`` and named
    in a :class:`MetadataWarning`; demographics rows without a volume are counted as rows
    without image.

    Returns:
        Frame indexed by ``sample_id`` (= ``MRID``) with ``patient_id`` (IXI id), ``site``,
        ``age``, ``sex``, ``image_path`` and ``label_path`` (of the chosen label set, relative
        to ``root``); ``attrs["report"]`` holds the counts.

    Raises:
        DataError: the image folder or the demographics file is missing, or an id is
            duplicated or empty.
    """
    root = Path(root)
    choose(labels, tuple(LABEL_SETS), f"{NAME} option labels")
    report = Report(NAME)
    table = read_csv_table(root / demographics, HEADER, report)
    df = table.frame
    empty_ids(df["MRID"], table, "MRID")
    unique_ids(df["MRID"], table, "MRID")
    demog = pd.DataFrame(index=df["MRID"].to_numpy())
    demog["age"] = numbers(table, "Age", report, attribute="age").to_numpy()
    demog["sex"] = codes(table, "Sex", SEX, report, attribute="sex").to_numpy()
    subjects = _subjects(root / images_dir)
    report.source_rows = len(subjects)
    report.files[images_dir] = {"rows": len(subjects), "line_endings": "n/a"}
    without_demographics = [s for s in subjects if s not in demog.index]
    if without_demographics:
        report.exclude(f"no age or sex in {demographics}", len(without_demographics))
        warnings.warn(
            f"{NAME}: {len(without_demographics)} of {len(subjects)} subjects have a volume but no row in "
            f"{root / demographics} ({', '.join(without_demographics)}); they are left out. Add their MRID,Age,Sex "
            "rows to include them.",
            MetadataWarning,
            stacklevel=2,
        )
    kept = [s for s in subjects if s in demog.index]
    out = demog.loc[kept].copy()
    parsed = [MRID.match(s) for s in kept]
    out["patient_id"] = [m.group(1) if m else s for m, s in zip(parsed, kept, strict=False)]
    out["site"] = [m.group(2) if m else MISSING for m in parsed]
    folder, suffix = LABEL_SETS[labels]
    out["image_path"] = [f"{images_dir}/{s}{IMAGE_SUFFIX}" for s in kept]
    out["label_path"] = [f"{folder}/{s}{suffix}" for s in kept]
    no_volume = [s for s in demog.index if s not in set(subjects)]
    report.rows_without_image = len(no_volume)
    report.missing_image_examples = [f"{images_dir}/{s}{IMAGE_SUFFIX}" for s in no_volume[:5]]
    report.notes.append(
        f"{len(subjects)} subjects with a T1 volume, {len(kept)} with age and sex; "
        f"{len(no_volume)} demographics rows without a volume"
    )
    return finish(out, report)


def dlmuse_classes(root: Path, roi_table: str = OPTIONS["roi_table"]) -> tuple[np.ndarray, tuple[str, ...]]:
    """``(DLMUSE ids, class names)`` of the full label set: 0, the single ROIs, 46 and 69.

    Raises:
        DataError: the ROI table is missing or lacks its ``Index,Code,Name`` columns.
    """
    report = Report(NAME)
    table = read_csv_table(Path(root) / roi_table, Header(required=("Index", "Name")), report)
    rois = table.frame.assign(Index=pd.to_numeric(table.frame["Index"], errors="coerce"))
    single = rois[rois["Index"] < SINGLE_ROI_MAX]
    names = {0: "background", **{int(i): str(n) for i, n in zip(single["Index"], single["Name"], strict=False)}, **UNNAMED_DLMUSE}
    ids = np.array(sorted(names), dtype=np.int64)
    return ids, tuple(names[int(i)] for i in ids)


def label_lookup(ids: np.ndarray) -> np.ndarray:
    """A table ``lut[raw id] = class index`` (``-1`` for ids outside ``ids``)."""
    lut = np.full(int(ids.max()) + 1 if ids.size else 1, -1, dtype=np.int64)
    lut[ids] = np.arange(ids.size)
    return lut


def _read_nifti(path: Path, subject: str) -> Any:
    """The nibabel image at ``path`` with its voxels loaded, or a :class:`DataError`."""
    import nibabel as nib

    try:
        image = nib.load(str(path))
        data = np.asarray(image.dataobj.get_unscaled())  # type: ignore[attr-defined]  # nibabel types load() as the base image
    except (OSError, EOFError, ValueError, zlib.error, nib.filebasedimages.ImageFileError) as exc:
        raise DataError(
            f"Cannot read NIfTI file {path} (subject {subject}): {type(exc).__name__}: {' '.join(str(exc).split())} "
            "- the file is corrupt or truncated; replace it with the original."
        ) from None
    return image, data


def _resize(volume: np.ndarray, size: tuple[int, ...], *, labels: bool) -> np.ndarray:
    """``volume`` resized to ``size``: area averaging (or trilinear when enlarging) / nearest."""
    if volume.shape == tuple(size):
        return volume
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))[None, None]
    if labels:
        y = F.interpolate(x, size=size, mode="nearest")
    elif all(s <= v for s, v in zip(size, volume.shape, strict=False)):
        y = F.interpolate(x, size=size, mode="area")
    else:
        y = F.interpolate(x, size=size, mode="trilinear", align_corners=False)
    return y[0, 0].numpy()


def read_subject(
    image_path: Path, label_path: Path, subject: str, size: tuple[int, ...], lut: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(image (1, d, h, w) uint8, label map (d, h, w) uint8 class indices)`` of one subject.

    Raises:
        DataError: a file is unreadable, the image and its label map differ in shape or
            affine, or the label map has a value outside ``lut``.
    """
    image, volume = _read_nifti(image_path, subject)
    label, raw = _read_nifti(label_path, subject)
    if volume.ndim != 3:
        raise DataError(
            f"{image_path} (subject {subject}): expected a 3-D volume, got shape {volume.shape}. Use a single T1 volume per file."
        )
    if raw.shape != volume.shape:
        raise DataError(
            f"{label_path} (subject {subject}): label map shape {raw.shape} differs from the image shape {volume.shape} "
            f"of {image_path.name}. Image and label map must share one voxel grid; resample the label map onto the image."
        )
    if not np.allclose(label.affine, image.affine, atol=1e-3):
        raise DataError(
            f"{label_path} (subject {subject}): its affine differs from that of {image_path.name}, so the label map is "
            "not aligned with the image. Resample the label map onto the image grid."
        )
    values = np.unique(raw).astype(np.int64)
    unknown = [int(v) for v in values if v < 0 or v >= lut.size or lut[v] < 0]
    if unknown:
        raise DataError(
            f"{label_path} (subject {subject}): label value(s) {unknown[:10]} are not in the label set ({lut.max() + 1} "
            "classes). Use the label maps of the release, or options.labels: dlmuse for the full DLMUSE map."
        )
    classes = lut[raw.astype(np.int64)]
    pixels = np.clip(np.rint(_resize(volume.astype(np.float32), size, labels=False)), 0, 255).astype(np.uint8)
    mask = _resize(classes.astype(np.float32), size, labels=True).astype(np.uint8)
    return pixels[None], mask


def target(root: Path, opts: dict[str, Any]) -> tuple[np.ndarray, tuple[str, ...]]:
    """``(lookup table raw id → class, class names)`` of the configured target.

    Raises:
        ConfigError: ``structure`` is not a coarse structure, or is given with ``labels: dlmuse``.
    """
    structure = opts["structure"]
    if opts["labels"] == "dlmuse":
        if structure is not None:
            raise ConfigError(f"{NAME} option structure selects one coarse structure; it cannot be used with labels: dlmuse.")
        ids, names = dlmuse_classes(root, opts["roi_table"])
        return label_lookup(ids), names
    ids = np.arange(len(COARSE))
    if structure is None:
        return label_lookup(ids), COARSE
    choose(str(structure), COARSE[1:], f"{NAME} option structure")
    lut = (ids == COARSE.index(structure)).astype(np.int64)
    return lut, ("background", str(structure))


def load(cfg: DatasetConfig, *, cache_dir: Path) -> FairDataset:
    """Adapter entry point: subjects, cached volumes and label maps, splits (3-D segmentation)."""
    run = _loading.begin(cfg, cache_dir, NAME, OPTIONS, LAYOUT, tasks=("segmentation",))
    opts, root = run.opts, run.root
    lut, class_names = target(root, opts)
    frame = read_metadata(root, demographics=opts["demographics"], images_dir=opts["images_dir"], labels=opts["labels"])
    kept = _loading.keep_with_files(cfg, frame, root, ["image_path", "label_path"], str(opts["missing_images"]))
    size = _size(cfg, root, kept)
    images = [root / p for p in kept["image_path"]]
    masks = [root / p for p in kept["label_path"]]
    key = cache_key(
        adapter=cfg.adapter,
        metadata=[file_sha256(root / opts["demographics"])],
        options={k: v for k, v in sorted(cfg.options.items()) if k != "workers"},
        images=file_fingerprints(images),
        masks=file_fingerprints(masks),
        classes=list(class_names),
        size=list(size),
        resize=["area (T1)", "nearest (labels)"],
    )
    ids = list(kept.index)
    report = frame.attrs["report"]
    info = {
        **report_info(report),
        "skipped_missing_images": len(frame) - len(kept),
        "metadata_file": str(root / opts["demographics"]),
        "label_set": opts["labels"] if opts["structure"] is None else f"coarse: {opts['structure']} vs rest",
    }
    return _loading.cache_and_assemble(
        run,
        kept.drop(columns=["label_path"]),
        _loading.Pixels(key, size, images, masks, int(opts["workers"])),
        class_names=class_names,
        info=info,
        read_item=lambda i: read_subject(images[i], masks[i], ids[i], size, lut),
    )


def _size(cfg: DatasetConfig, root: Path, frame: pd.DataFrame) -> tuple[int, int, int]:
    """``cfg.image_size`` as ``(d, h, w)``, default the stored grid of the first volume."""
    if cfg.image_size is None:
        if not len(frame):
            raise DataError(f"Dataset {cfg.name!r}: no subject with a volume, a label map and demographics under {root}.")
        shape = _read_nifti(root / frame["image_path"].iloc[0], str(frame.index[0]))[1].shape
        return (int(shape[0]), int(shape[1]), int(shape[2])) if len(shape) == 3 else (1, 1, 1)
    size = cfg.spatial_size((1, 1, 1))
    if len(size) != 3:
        raise ConfigError(f"datasets.{cfg.name}.image_size: IXI volumes are 3-D; give an int or [d, h, w].")
    return (int(size[0]), int(size[1]), int(size[2]))
