"""Data layer: catalogue datasets as :class:`FairDataset` (metadata, groupings, splits, pixels)."""

from __future__ import annotations

from medfairx.data.cache import CacheRebuildWarning, H5ImageCache, cache_key
from medfairx.data.dataset import ArraySource, FairDataset, ImageSource, assemble, describe_dataset, load_dataset
from medfairx.data.groupings import GroupSizeWarning, build_groupings
from medfairx.data.splits import SplitManifest, make_splits

__all__ = [
    "ArraySource",
    "CacheRebuildWarning",
    "FairDataset",
    "GroupSizeWarning",
    "H5ImageCache",
    "ImageSource",
    "SplitManifest",
    "assemble",
    "build_groupings",
    "cache_key",
    "describe_dataset",
    "load_dataset",
    "make_splits",
]
