"""pytest fixtures of the conformance kit (entry point ``pytest11: medfairx``).

This module imports nothing from medfairx at import time (pytest loads it in every
session of every project that has medfairx installed); each fixture imports lazily.

Fixtures:

* ``make_toy_fair_dataset``: factory ``(n=64, n_groups=3, shape=(1, 16, 16),
  group_label_correlation=0.5, *, seed=0) -> ToyFairDataset``;
* ``toy_task_data``: ``{"train", "val", "test"}`` classification :class:`TaskData`;
* ``toy_grouping``: a :class:`GroupingSpec` over the toy metadata's ``sex`` column;
* ``cpu_run_context``: a seeded CPU :class:`RunContext` (2 epochs, batch 16);
* ``plugin_host``: a fresh :class:`PluginHost` with built-ins only (no entry points),
  installed as the process-wide host for the test and restored afterwards;
* ``one_torch_thread``: torch runs on one intra-op thread during the test (tiny models gain
  nothing from more, and parallel test workers do not oversubscribe the cores); use it with
  ``@pytest.mark.usefixtures("one_torch_thread")`` or pytest's ``usefixtures`` ini option.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from medfairx.contracts import TaskData
    from medfairx.methods.base import RunContext
    from medfairx.plugins import PluginHost
    from medfairx.specs import GroupingSpec
    from medfairx.testing.toy import ToyFairDataset


@pytest.fixture
def make_toy_fair_dataset() -> Callable[..., ToyFairDataset]:
    """Factory of small synthetic datasets with the ``FairDataset`` interface."""
    from medfairx.testing.toy import make_toy_fair_dataset as factory

    return factory


@pytest.fixture
def toy_task_data() -> dict[str, TaskData]:
    """Train / val / test toy classification splits (48 / 24 / 24 images of 1×16×16)."""
    from medfairx.testing.toy import make_toy_splits

    return make_toy_splits("classification")


@pytest.fixture
def toy_grouping() -> GroupingSpec:
    """The toy ``sex`` grouping."""
    from medfairx.testing.toy import TOY_GROUPING

    return TOY_GROUPING


@pytest.fixture
def cpu_run_context() -> RunContext:
    """A seeded CPU classification context with a 2-epoch recipe."""
    from medfairx.testing.toy import make_cpu_run_context

    return make_cpu_run_context("classification")


@pytest.fixture
def plugin_host() -> Iterator[PluginHost]:
    """A fresh host (built-ins only), set as the process-wide host for this test."""
    from medfairx import plugins

    previous: Any = plugins._HOST  # restored below
    host = plugins.make_plugin_host(entrypoints=False)
    plugins.set_host(host)
    try:
        yield host
    finally:
        plugins.set_host(previous)


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """torch on one intra-op thread for the test, restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
