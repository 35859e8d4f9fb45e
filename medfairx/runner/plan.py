"""Planning: a suite becomes a list of :class:`RunSpec` (one trained model each).

Group-unaware methods train once per (method, dataset, seed) and are scored under every
grouping; group-aware methods train once per (method, dataset, grouping, seed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from medfairx.contracts import RunSpec
from medfairx.data.groupings import too_few_groups
from medfairx.errors import ConfigError
from medfairx.specs import MethodSpec

GROUPING_NOT_PLANNED = ("dataset {dataset!r}: {problem}, so no between-group metric is defined; not planned "
                        "(`medfairx datasets check {dataset}` shows its groups: fix its `map`, `bins` or "
                        "`min_group_size`, or leave it out of the suite).")
DATASET_NOT_PLANNED = "dataset {dataset!r}: no grouping with at least two groups is left; no run is planned on it."


@dataclass
class Plan:
    """Planned runs plus the reasons for every (method, dataset, grouping) left out."""

    runs: list[RunSpec]
    skipped: list[str]
    unavailable: list[str] = field(default_factory=list)
    #: groupings (and datasets left without one) not planned because fewer than two groups remain
    groupings_left_out: list[str] = field(default_factory=list)


def method_applies(spec: MethodSpec, task: str, spatial_dims: int, inputs: str = "images") -> str | None:
    """``None`` if ``spec`` can run on the task, else the reason it cannot.

    ``inputs`` is ``"images"`` (pixels) or ``"features"`` (a frozen protocol's cached vectors).
    """
    if spec.unavailable:
        return f"{spec.name} is unavailable: {spec.unavailable}"
    if task not in spec.tags.tasks:
        return f"{spec.name} does not support {task} (tags.tasks={list(spec.tags.tasks)})"
    if spatial_dims not in spec.tags.spatial_dims:
        return f"{spec.name} does not support {spatial_dims}D data"
    if inputs not in spec.tags.inputs:
        what = "frozen-encoder features (it needs pixels)" if inputs == "features" else "pixels (it needs frozen-encoder features)"
        return f"{spec.name} cannot run on {what}; tags.inputs={list(spec.tags.inputs)}"
    return None


def plan_runs(
    *,
    suite: str,
    datasets: dict[str, dict[str, Any]],
    method_specs: list[MethodSpec],
    seeds: list[int],
    params_mode: str,
    recipe: dict[str, Any],
    backbones: dict[str, str],
    device: str,
    versions_of: Any,
    method_params: dict[str, dict[str, Any]] | None = None,
) -> Plan:
    """Expand the (dataset × grouping × method × seed) grid.

    Args:
        suite: suite name.
        datasets: name → {"task", "spatial_dims", "groupings": [...], "n_groups": {g: k},
            "revision", "split_hash"}, and optionally "inputs" ("features" under a frozen
            protocol), "backbone" (overrides ``backbones``) and "protocol" (the record runs
            carry). A grouping with fewer than two groups (``n_groups``)
            is not planned, and a dataset left without a grouping gets no run; both are
            listed in :attr:`Plan.groupings_left_out`.
        method_specs: methods to run.
        seeds: training seeds.
        params_mode: "default" or "test" (``Method.test_params()``).
        recipe: TrainRecipe overrides.
        backbones: task → backbone name.
        device: "auto", "cpu" or "cuda".
        versions_of: callable(spec) → dict of version strings recorded in the run id.
        method_params: method → hyper-parameter overrides (the suite's ``method_params``),
            applied on top of the defaults or ``test_params()``.
    """
    runs: list[RunSpec] = []
    skipped: list[str] = []
    unavailable: list[str] = []
    left_out: list[str] = []
    for ds_name, ds in datasets.items():
        usable = []
        for g in ds["groupings"]:
            problem = too_few_groups(g, ds["n_groups"].get(g, 2))
            if problem is None:
                usable.append(g)
            else:
                left_out.append(GROUPING_NOT_PLANNED.format(dataset=ds_name, problem=problem))
        if ds["groupings"] and not usable:
            left_out.append(DATASET_NOT_PLANNED.format(dataset=ds_name))
            continue
        ds = {**ds, "groupings": usable}
        task = ds["task"]
        if task not in backbones and not ds.get("backbone"):
            raise ConfigError(
                f"Suite {suite!r} has no backbone for task {task!r} (dataset {ds_name!r}); "
                f"add `backbones: {{{task}: <name>}}` to the suite in datasets.yaml."
            )
        for spec in method_specs:
            reason = method_applies(spec, task, ds["spatial_dims"], ds.get("inputs", "images"))
            if reason:
                (unavailable if spec.unavailable else skipped).append(f"{ds_name}: {reason}")
                continue
            cls = spec.load()
            params = dict(cls.test_params()) if params_mode == "test" else {}
            params.update((method_params or {}).get(spec.name, {}))
            if spec.tags.uses_groups_in_fit or spec.tags.uses_groups_in_predict:
                trainings = []
                for g in ds["groupings"]:
                    if ds["n_groups"].get(g, 2) > 2 and not spec.tags.multi_group:
                        skipped.append(f"{ds_name}/{g}: {spec.name} supports only two groups")
                        continue
                    trainings.append((g, (g,)))
            else:
                trainings = [(None, tuple(ds["groupings"]))]
            for train_grouping, scored in trainings:
                for seed in seeds:
                    runs.append(
                        RunSpec(
                            suite=suite,
                            method=spec.name,
                            dataset=ds_name,
                            seed=int(seed),
                            train_grouping=train_grouping,
                            groupings=scored,
                            params=params,
                            params_mode=params_mode,
                            backbone=ds.get("backbone") or backbones[task],
                            recipe=dict(recipe),
                            device=device,
                            dataset_revision=ds["revision"],
                            split_hash=ds["split_hash"],
                            versions=versions_of(spec),
                            protocol=dict(ds.get("protocol") or {}),
                        )
                    )
    return Plan(runs, skipped, unavailable, left_out)
