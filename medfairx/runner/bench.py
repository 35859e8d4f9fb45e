"""``medfairx bench``: plan a suite, skip finished runs, execute the rest, report."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from medfairx.errors import ConfigError
from medfairx.plugins import PluginHost
from medfairx.runner.execute import Echo, SweepResult
from medfairx.runner.executors import LocalExecutor, SweepJob
from medfairx.runner.plan import Plan, RunSpec, plan_runs
from medfairx.runner.store import RunStore


@dataclass
class BenchOptions:
    """Command-line selections that narrow or override a suite."""

    suite: str = "default"
    methods: list[str] = field(default_factory=list)
    groupings: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    device: str | None = None
    out: Path = Path("runs")
    params: str | None = None
    epochs: int | None = None
    executor: str = "local"
    jobs: int | None = None
    devices: list[str] = field(default_factory=list)
    executor_options: dict[str, Any] = field(default_factory=dict)
    save_state: bool = False
    amp: bool = True
    compile: bool = False


def make_executor(host: PluginHost, opts: BenchOptions) -> Any:
    """Build the registered executor ``opts.executor`` with the sweep's options."""
    spec = host.registry("executors").get(opts.executor)
    return spec.load()(jobs=opts.jobs or 1, devices=opts.devices, **opts.executor_options)


def _pick(requested: list[str], available: list[str], what: str, where: str) -> list[str]:
    if not requested:
        return available
    from medfairx.errors import UnknownNameError

    for name in requested:
        if name not in available:
            raise UnknownNameError(what, name, available, hint=f"Defined in {where}.")
    return [a for a in available if a in requested]


def prepare(catalogue: Any, opts: BenchOptions, host: PluginHost, echo: Echo) -> tuple[Plan, dict[str, Any]]:
    """Load the suite's datasets and plan its runs."""
    from medfairx.data import load_dataset

    if opts.suite not in catalogue.suites:
        from medfairx.errors import UnknownNameError

        raise UnknownNameError("suite", opts.suite, catalogue.suites, hint=f"Suites are defined in {catalogue.path}.")
    suite = catalogue.suites[opts.suite]
    ds_names = _pick(opts.datasets, list(suite.datasets), "dataset", f"suite {opts.suite!r}")
    methods_reg = host.registry("methods")
    wanted = opts.methods or suite.methods or methods_reg.names()
    method_specs = [methods_reg.get(m) for m in wanted]
    loaded: dict[str, Any] = {}
    ds_info: dict[str, dict[str, Any]] = {}
    for name in ds_names:
        groupings = _pick(opts.groupings, list(suite.datasets[name]), "grouping", f"suite {opts.suite!r}, dataset {name!r}")
        if not groupings:
            continue
        echo(f"loading dataset {name} ...")
        ds = load_dataset(catalogue, name)
        loaded[name] = ds
        n_groups = {}
        for g in groupings:
            if g not in ds.groupings:
                raise ConfigError(
                    f"Suite {opts.suite!r} uses grouping {g!r} on dataset {name!r}, which defines "
                    f"{sorted(ds.groupings)} in {catalogue.path}."
                )
            n_groups[g] = int(ds.group_labels("train")[g].dropna().nunique())
        ds_info[name] = {
            "task": ds.card.task,
            "spatial_dims": ds.card.spatial_dims,
            "groupings": groupings,
            "n_groups": n_groups,
            "revision": ds.revision,
            "split_hash": ds.splits.hash,
        }
    recipe = dict(suite.recipe or {})
    if opts.epochs is not None:
        recipe["epochs"] = opts.epochs

    def versions_of(spec: Any) -> dict[str, str | None]:
        from medfairx import __version__

        origin = methods_reg.origin(spec.name)
        return {"medfairx": __version__, "plugin": origin.dist, "plugin_version": origin.version}

    plan = plan_runs(
        suite=opts.suite,
        datasets=ds_info,
        method_specs=method_specs,
        seeds=opts.seeds or list(suite.seeds),
        params_mode=opts.params or suite.params,
        recipe=recipe,
        backbones=dict(suite.backbones),
        device=opts.device or suite.device,
        versions_of=versions_of,
        method_params=dict(suite.method_params),
    )
    plan.runs = [
        dataclasses.replace(r, save_state=opts.save_state, amp=opts.amp, compile=opts.compile) for r in plan.runs
    ]
    return plan, loaded


def run_bench(catalogue: Any, opts: BenchOptions, host: PluginHost, echo: Echo, *, verbose: bool = False) -> SweepResult:
    """Run (or resume) a suite; finished runs are skipped, failing runs recorded."""
    t0 = time.perf_counter()
    plan, datasets = prepare(catalogue, opts, host, echo)
    store = RunStore(Path(opts.out) / opts.suite)
    store.root.mkdir(parents=True, exist_ok=True)
    if store.clean_temporaries():
        echo("removed temporary files left by an interrupted run")
    for reason in sorted(set(r.split(": ", 1)[1] for r in plan.unavailable)):
        echo(f"not planned: {reason}")
    for reason in plan.skipped if verbose else []:
        echo(f"not planned: {reason}")
    result = SweepResult()
    total = len(plan.runs)
    todo = [r for r in plan.runs if not store.is_finished(r.run_id)]
    result.skipped = [r.run_id for r in plan.runs if r not in todo]
    for spec in plan.runs:
        if spec not in todo and add_groupings(store, spec, datasets[spec.dataset]):
            echo(f"rescored {spec.run_id} under new groupings (no retraining)")
    echo(f"suite {opts.suite}: {total} runs planned, {len(result.skipped)} already finished, {len(todo)} to run")
    job = SweepJob(catalogue.path, store.root, todo, verbose=verbose)
    if opts.jobs is None:
        opts.jobs = catalogue.suites[opts.suite].jobs
    executor = LocalExecutor(datasets, host) if opts.executor == "local" and (opts.jobs or 1) <= 1 and not opts.devices and not opts.executor_options else make_executor(host, opts)
    ran = executor.run(job, echo)
    result.done, result.failed, result.pending = ran.done, ran.failed, ran.pending
    result.skipped += ran.skipped
    result.seconds = time.perf_counter() - t0
    return result


def add_groupings(store: RunStore, spec: RunSpec, dataset: Any) -> bool:
    """Give a finished run the group columns of groupings added to the suite since it ran.

    Predictions are per sample, so a new grouping needs no retraining: its labels are
    joined on ``sample_id`` and ``run.json`` lists it. Returns whether anything changed.
    """
    from medfairx.runner.store import EPOCHS, PREDICTIONS, atomic_write_json, atomic_write_parquet

    record = store.record(spec.run_id) or {}
    new = [g for g in spec.groupings if g not in record.get("groupings", [])]
    if not new:
        return False
    run_dir = store.run_dir(spec.run_id)
    for name in (PREDICTIONS, EPOCHS):
        path = run_dir / name
        if not path.exists():
            continue
        frame = pd.read_parquet(path)
        for split in ("val", "test"):
            labels = dataset.group_labels(split)
            rows = frame["split"] == split
            for g in new:
                frame.loc[rows, f"group:{g}"] = labels.loc[frame.loc[rows, "sample_id"], g].to_numpy()
        atomic_write_parquet(path, frame)
    record["groupings"] = [*record.get("groupings", []), *new]
    atomic_write_json(run_dir / "run.json", record)
    return True
