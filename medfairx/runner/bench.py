"""``medfairx bench``: plan a suite, skip finished runs, execute the rest, report."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from medfairx.contracts import RunSpec
from medfairx.errors import ConfigError
from medfairx.plugins import PluginHost
from medfairx.runner.execute import Echo, SweepResult
from medfairx.runner.executors import LocalExecutor, SweepJob
from medfairx.runner.lock import StoreLock
from medfairx.runner.plan import Plan, plan_runs
from medfairx.runner.progress import emit
from medfairx.store import RunStore, write_data_card


class BenchInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a sweep; the message says what the store keeps."""


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
    trials: int | None = None  # hyper-parameter search budget per method (overrides the suite's search.trials)
    sampler: str | None = None  # random, tpe or grid (overrides the suite's search.sampler)


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


def _suite(catalogue: Any, opts: BenchOptions) -> Any:
    if opts.suite not in catalogue.suites:
        from medfairx.errors import UnknownNameError

        raise UnknownNameError("suite", opts.suite, catalogue.suites, hint=f"Suites are defined in {catalogue.path}.")
    return catalogue.suites[opts.suite]


def _unknown(what: str, name: str, available: list[str], *, listed: bool = False) -> str:
    close = difflib.get_close_matches(name, available, n=3, cutoff=0.5)
    if close:
        return f"{what} {name!r} (did you mean {', '.join(map(repr, close))}?)"
    return f"{what} {name!r}" + (f" (it takes: {', '.join(available) or 'none'})" if listed else "")


def check_names(catalogue: Any, opts: BenchOptions, host: PluginHost) -> None:
    """Report every unknown method, backbone and hyper-parameter of a sweep at once, before planning.

    Methods come from ``--methods``, the suite's ``methods`` and ``method_params``; backbones
    from ``backbones``; hyper-parameters are checked against the method's ``__init__``.

    Raises:
        ConfigError: one line listing the unknown names, each with its close matches.
    """
    suite = _suite(catalogue, opts)
    methods, backbones = host.registry("methods"), host.registry("backbones")
    held = methods.conflicts()  # looked up later, with the conflict's own message
    problems = [
        _unknown("method", m, methods.names())
        for m in dict.fromkeys([*opts.methods, *(suite.methods or []), *suite.method_params])
        if m not in methods and m not in held
    ]
    from medfairx.methods.backbones import split_backbone_name

    named = [(f"{task} backbone", b) for task, b in suite.backbones.items()]
    if suite.encoder is not None:
        named.append(("encoder backbone", suite.encoder.backbone))
    problems += [
        _unknown(what, b, backbones.names()) for what, b in named if split_backbone_name(b)[0] not in backbones
    ]
    for name, params in suite.method_params.items():
        if name not in methods or methods.get(name).unavailable:
            continue
        try:
            cls = methods.get(name).load()
        except Exception:  # noqa: BLE001 - an unloadable method fails its own runs with its error
            continue
        if any(p.kind is p.VAR_KEYWORD for p in inspect.signature(cls.__init__).parameters.values()):
            continue  # takes any keyword: nothing to check
        allowed = cls.param_names()
        problems += [_unknown(f"hyper-parameter of {name}", p, allowed, listed=True) for p in params if p not in allowed]
    if problems:
        raise ConfigError(
            f"Suite {opts.suite!r} ({catalogue.path}) or the command line names unknown items: "
            f"{'; '.join(problems)}. See `medfairx list methods` / `medfairx list backbones`; "
            "hyper-parameters are the method's constructor arguments."
        )


def check_device(catalogue: Any, opts: BenchOptions) -> None:
    """Fail before planning when a device this machine must run on is not there (local executor).

    Raises:
        ConfigError: e.g. ``--device cuda`` where torch sees no CUDA GPU.
    """
    if opts.executor != "local":
        return  # a cluster's nodes, not this machine, run the sweep
    from medfairx.runner.parallel import parse_device

    wanted = {opts.device or _suite(catalogue, opts).device} | {parse_device(d)[0] or "auto" for d in opts.devices}
    wanted -= {"auto", "cpu"}
    if wanted:
        from medfairx.methods.device import resolve_device

        for device in sorted(wanted):
            resolve_device(device)


def interrupted_summary(store: RunStore, plan: Plan, todo: list[RunSpec]) -> str:
    """What an interrupted sweep leaves in the store, and how to go on."""
    new = sum(store.is_finished(r.run_id) for r in todo)
    finished = sum(store.is_finished(r.run_id) for r in plan.runs)
    return (
        f"interrupted: {new} run(s) finished in this sweep and are saved in {store.root} "
        f"({finished}/{len(plan.runs)} of the plan finished); the {len(plan.runs) - finished} others, including "
        "any cut off mid-training, run when the same command is given again (finished runs are never redone)."
    )


def prepare(catalogue: Any, opts: BenchOptions, host: PluginHost,
            echo: Echo) -> tuple[Plan, dict[str, Any], dict[str, dict[str, Any]]]:
    """Load the suite's datasets and plan its runs.

    Returns:
        ``(plan, datasets, data cards)``: the datasets as the runs see them, and the card of
        every dataset loaded (:func:`medfairx.data.dataset.data_card`).
    """
    suite = _suite(catalogue, opts)
    ds_names = _pick(opts.datasets, list(suite.datasets), "dataset", f"suite {opts.suite!r}")
    from medfairx.runner.protocols import KNN_METHODS, apply_protocol

    methods_reg = host.registry("methods")
    default = list(KNN_METHODS) if suite.protocol == "knn" else methods_reg.names()
    wanted = opts.methods or suite.methods or default
    method_specs = [methods_reg.get(m) for m in wanted]
    loaded: dict[str, Any] = {}
    cards: dict[str, dict[str, Any]] = {}
    ds_info: dict[str, dict[str, Any]] = {}
    external: dict[str, dict[str, Any]] = {}
    prepared: set[str] = set()  # loaded datasets already as the runs see them (protocol applied)

    def as_run_sees(ext_name: str) -> Any:
        """External dataset ``ext_name``, loaded once per sweep, under the suite's protocol."""
        if ext_name not in loaded:
            echo(f"loading external dataset {ext_name} ...")
            loaded[ext_name] = _load_recorded(catalogue, ext_name, cards)
        if ext_name not in prepared:
            loaded[ext_name] = apply_protocol(suite, loaded[ext_name], catalogue.cache_path, echo=echo)[0]
            prepared.add(ext_name)
        return loaded[ext_name]

    for name in ds_names:
        groupings = _pick(opts.groupings, list(suite.datasets[name]), "grouping", f"suite {opts.suite!r}, dataset {name!r}")
        if not groupings:
            continue
        echo(f"loading dataset {name} ...")
        ds = _load_recorded(catalogue, name, cards)
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
        from medfairx.runner.external import plan_external

        loaded[name], extra = apply_protocol(suite, ds, catalogue.cache_path, echo=echo)
        prepared.add(name)
        ds_info[name].update(extra)
        external[name] = plan_external(suite, loaded[name], as_run_sees)
    recipe = dict(suite.recipe or {})
    if opts.epochs is not None:
        recipe["epochs"] = opts.epochs

    def versions_of(spec: Any) -> dict[str, str | None]:
        from medfairx.version import __version__

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
        dataclasses.replace(r, save_state=opts.save_state, amp=opts.amp, compile=opts.compile,
                            external=external.get(r.dataset, {})) for r in plan.runs
    ]
    return plan, loaded, cards


def _load_recorded(catalogue: Any, name: str, cards: dict[str, dict[str, Any]]) -> Any:
    """Load dataset ``name`` and keep its data card (with the warnings loading raised, which
    are shown as usual) in ``cards``, for the store."""
    from medfairx.data.dataset import data_card, load_dataset

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = load_dataset(catalogue, name)
    shown = {(w.category, str(w.message)): w for w in caught}  # each distinct warning once
    for w in shown.values():
        warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    cards[name] = data_card(dataset, [str(w.message) for w in caught])
    return dataset


def run_bench(catalogue: Any, opts: BenchOptions, host: PluginHost, echo: Echo, *, verbose: bool = False) -> SweepResult:
    """Run (or resume) a suite; finished runs are skipped, failing runs recorded."""
    t0 = time.perf_counter()
    check_names(catalogue, opts, host)
    check_device(catalogue, opts)
    store = RunStore(Path(opts.out) / opts.suite)
    store.root.mkdir(parents=True, exist_ok=True)
    with StoreLock(store.root):  # a second bench on this store refuses, naming this process
        return _run_locked(catalogue, opts, host, echo, store, t0, verbose=verbose)


def _run_locked(catalogue: Any, opts: BenchOptions, host: PluginHost, echo: Echo, store: RunStore, t0: float, *,
                verbose: bool) -> SweepResult:
    plan, datasets, cards = prepare(catalogue, opts, host, echo)
    for name, card in cards.items():  # the data as this sweep found them, for the report's data cards
        write_data_card(store.root, name, card)
    from medfairx.runner import search

    search_cfg = search.search_config(_suite(catalogue, opts), opts.trials, opts.sampler)
    units = [] if search_cfg is None else search.prepare_search(opts.suite, search_cfg, plan.runs, datasets, host)
    if store.clean_temporaries():
        echo("removed temporary files left by an interrupted run")
    for reason in sorted(set(r.split(": ", 1)[1] for r in plan.unavailable)):
        echo(f"not planned: {reason}")
    for reason in plan.groupings_left_out:
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
    emit(echo, "planned", planned=total, reused=len(result.skipped))
    job = SweepJob(catalogue.path, store.root, todo, verbose=verbose)
    if opts.jobs is None:
        opts.jobs = catalogue.suites[opts.suite].jobs
    in_process = opts.executor == "local" and (opts.jobs or 1) <= 1 and not opts.devices and not opts.executor_options
    executor = LocalExecutor(datasets, host) if in_process else make_executor(host, opts)
    try:
        ran = executor.run(job, echo)
    except KeyboardInterrupt:
        raise BenchInterrupted(interrupted_summary(store, plan, todo)) from None
    result.done, result.failed, result.pending = ran.done, ran.failed, ran.pending
    result.skipped += ran.skipped
    if units and not result.pending:
        def run_specs(root: Path, specs: list[RunSpec]) -> SweepResult:
            try:
                return executor.run(SweepJob(catalogue.path, root, specs, verbose=verbose), echo)
            except KeyboardInterrupt:
                raise BenchInterrupted(f"interrupted: the search keeps every finished trial and its study in "
                                       f"{search.search_root(store.root)}; the same command continues it.") from None

        ctx = search.search_context(search_cfg, plan.runs, host, run_specs, echo, opts.jobs or 1,
                                    lambda s, spec: add_groupings(s, spec, datasets[spec.dataset]))
        found = search.run_search(units, store.root, ctx)
        for name in ("done", "failed", "pending", "skipped"):
            getattr(result, name).extend(getattr(found, name))
    result.seconds = time.perf_counter() - t0
    return result


def add_groupings(store: RunStore, spec: RunSpec, dataset: Any) -> bool:
    """Give a finished run the group columns of groupings added to the suite since it ran.

    Predictions are per sample, so a new grouping needs no retraining: its labels are
    joined on ``sample_id`` and ``run.json`` lists it. Returns whether anything changed.
    """
    from medfairx.store import (
        EPOCHS,
        PREDICTIONS,
        atomic_write_json,
        atomic_write_parquet,
    )

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
