"""Data layer: catalogue datasets as :class:`FairDataset` (metadata, groupings, splits, pixels).

The names below are loaded on first use (PEP 562), so importing a light module of this
package (``medfairx.data.cards``, ``medfairx.data.prompts``) does not import h5py or pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the same names, for type checkers
    from medfairx.data.cache import CacheRebuildWarning, H5ImageCache, cache_key
    from medfairx.data.dataset import ArraySource, FairDataset, ImageSource, assemble, describe_dataset, load_dataset
    from medfairx.data.groupings import GroupSizeWarning, build_groupings
    from medfairx.data.splits import SplitManifest, make_splits

_WHERE = {
    "CacheRebuildWarning": "cache", "H5ImageCache": "cache", "cache_key": "cache",
    "ArraySource": "dataset", "FairDataset": "dataset", "ImageSource": "dataset", "assemble": "dataset",
    "describe_dataset": "dataset", "load_dataset": "dataset",
    "GroupSizeWarning": "groupings", "build_groupings": "groupings",
    "SplitManifest": "splits", "make_splits": "splits",
}

__all__ = [
    "ArraySource", "CacheRebuildWarning", "FairDataset", "GroupSizeWarning", "H5ImageCache", "ImageSource",
    "SplitManifest", "assemble", "build_groupings", "cache_key", "describe_dataset", "load_dataset", "make_splits",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
