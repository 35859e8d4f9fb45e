"""Hyper-parameter search: every method tuned on the same budget, selected on validation only.

The protocol follows MEDFAIR (Zong et al., ICLR 2023) and DomainBed (Gulrajani and
Lopez-Paz, ICLR 2021):

1. Each planned (method, dataset[, grouping]) is a *unit* (group-unaware methods train once
   per dataset, so they are searched once per dataset and reused across its groupings).
   Optuna samples ``trials`` configurations from the method's search space
   (:mod:`medfairx.search_space`); each is an ordinary run trained on the search seed and
   stored in ``runs/<suite>/search/trials/``. Its parameters are part of its run id, so a
   search resumes after a kill, runs on every executor through the same store and never
   redoes a finished trial. The Optuna studies live in ``runs/<suite>/search/study.journal``
   (a journal file storage), so a resumed search continues the same studies.
2. Trials are asked in batches of the number of workers per unit and told their validation
   objective as they finish; a trial still running when the process died is run (or, when
   its run finished, read) and told on the next invocation.
3. For every grouping and every registered selection strategy, the configuration is chosen
   from the trials' VALIDATION predictions only (the strategy's rule applied across the
   configurations' kept checkpoints; ``final`` takes the best objective); test rows are never
   read (the parquet files are read with a ``split == "val"`` filter).
4. Each chosen configuration is trained on the suite's seeds into ``runs/<suite>/search/tuned/``
   and scored on test by the leaderboard (:mod:`medfairx.report.search`).

``runs/<suite>/search/selection.json`` records the studies, every trial and every choice.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medfairx.contracts import RunSpec
from medfairx.errors import ConfigError, SearchSpaceError
from medfairx.runner.execute import Echo, SweepResult
from medfairx.store import (
    EPOCHS,
    PREDICTIONS,
    SEARCH_DIR,
    SEARCH_STORES,
    RunStore,
    atomic_write_json,
)

TRIALS_DIR, TUNED_DIR = SEARCH_STORES
STUDY_FILE = "study.journal"
SELECTION_FILE = "selection.json"
UNKNOWN_STRATEGY = ("Suite {suite!r}: search.strategy {name!r} is not a registered selection strategy; "
                    "registered: {names}. See `medfairx list selection_strategies`.")

__all__ = ["SEARCH_DIR", "SELECTION_FILE", "STUDY_FILE", "TRIALS_DIR", "TUNED_DIR", "SearchUnit", "candidates_history",
           "choose", "cost_line", "objective_value", "read_selection", "run_search", "search_root", "search_units"]


def search_root(store_root: Path) -> Path:
    """``runs/<suite>/search``: trials, tuned runs, the study journal and ``selection.json``."""
    return Path(store_root) / SEARCH_DIR


@dataclass
class SearchUnit:
    """One searched (method, dataset[, grouping]): its study, template run and space."""

    template: RunSpec
    space: dict[str, Any]
    cls: type
    task: str
    trials: list[dict[str, Any]] = field(default_factory=list)

    @property
    def study_name(self) -> str:
        """``<method>-<dataset>-<grouping|all>-<hash of the space and of everything but params and
        seed>``: a changed space is a new study, never a continuation of one sampled elsewhere."""
        base = dataclasses.replace(self.template, params={"space": {k: d.to_dict() for k, d in self.space.items()}},
                                   seed=0)
        return f"{self.template.method}-{self.template.dataset}-{self.template.train_grouping or 'all'}-" \
               f"{base.run_id.rsplit('-', 1)[1]}"

    def trial_spec(self, sample: dict[str, Any], seed: int) -> RunSpec:
        """The run of one sampled configuration on the search seed."""
        from medfairx.search_space import apply_sample

        return dataclasses.replace(self.template, seed=int(seed),
                                   params=apply_sample(self.template.params, sample, self.cls))


def search_units(runs: list[RunSpec], host: Any, tasks: dict[str, str],
                 overrides: dict[str, dict[str, Any]] | None = None) -> list[SearchUnit]:
    """One unit per planned (method, dataset, train grouping), in plan order; methods with an
    empty space (nothing to tune) are left out. ``overrides`` (the suite's ``search.space``)
    replaces or adds entries of a method's space.

    Raises:
        SearchSpaceError: a method's declared space (or its suite override) names a parameter
            its ``__init__`` does not take, or has an empty range.
        ConfigError: an override names a method the suite does not run.
    """
    from medfairx.search_space import RECIPE_KEYS, space_of, space_problems, validate_space

    overrides = overrides or {}
    unplanned = sorted(set(overrides) - {r.method for r in runs})
    if unplanned:
        raise ConfigError(f"search.space names {', '.join(map(repr, unplanned))}, which the suite does not run; "
                          f"planned methods: {', '.join(sorted({r.method for r in runs}))}.")
    units: dict[tuple[str, str, str | None], SearchUnit] = {}
    for run in runs:
        key = (run.method, run.dataset, run.train_grouping)
        if key in units:
            continue
        spec = host.registry("methods").get(run.method)
        cls = spec.load()
        validate_space(spec, cls)
        space = space_of(spec, cls, tasks[run.dataset], run.backbone)
        if run.method in overrides:
            problems = space_problems(dataclasses.replace(spec, search_space=overrides[run.method],
                                                          task_search_space={}, backbone_search_space={}), cls)
            if problems:
                raise SearchSpaceError(f"search.space.{run.method}: {'; '.join(problems)}. Name __init__ arguments "
                                       f"of {run.method!r} or recipe keys ({', '.join(RECIPE_KEYS)}).")
            space = {**space, **overrides[run.method]}
        if space:
            units[key] = SearchUnit(dataclasses.replace(run, seed=0), space, cls, tasks[run.dataset])
    return list(units.values())


# --- Optuna -------------------------------------------------------------------------------


def _optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ConfigError("Hyper-parameter search needs optuna: pip install 'optuna>=5,<6'.") from exc
    optuna.logging.set_verbosity(logging.WARNING)
    return optuna


def _distribution(dist: Any) -> Any:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    from medfairx.specs import Choice, IntRange, LogUniform

    if isinstance(dist, Choice):
        return CategoricalDistribution(list(dist.values))
    if isinstance(dist, IntRange):
        return IntDistribution(dist.low, dist.high, step=dist.step)
    return FloatDistribution(float(dist.low), float(dist.high), log=isinstance(dist, LogUniform))


def grid_size(space: dict[str, Any]) -> int:
    """How many configurations the grid sampler has for ``space``."""
    return math.prod(len(d.grid()) for d in space.values())


def _sampler(kind: str, seed: int, space: dict[str, Any]) -> Any:
    optuna = _optuna()
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "grid":
        return optuna.samplers.GridSampler({k: d.grid() for k, d in space.items()}, seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _storage(root: Path) -> Any:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    root.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(root / STUDY_FILE)))


# --- objective and selection (validation rows only) ---------------------------------------


def _val_rows(run_dir: Path, name: str, cache: dict[Path, pd.DataFrame | None] | None = None) -> pd.DataFrame | None:
    """The validation rows of ``run_dir/name`` (``None``: no such file), read once per ``cache``."""
    path = run_dir / name
    if cache is not None and path in cache:
        return cache[path]
    frame = pd.read_parquet(path, filters=[("split", "==", "val")]) if path.is_file() else None
    if cache is not None:
        cache[path] = frame
    return frame


def _kept_val(run_dir: Path, strategy: Callable[..., Any] | None, task: str, column: str | None,
              cache: dict[Path, pd.DataFrame | None] | None = None) -> pd.DataFrame:
    """Validation rows of the checkpoint ``strategy`` picks (``None``/``final``: the kept one)."""
    if strategy is not None:
        history = _val_rows(run_dir, EPOCHS, cache)
        if history is not None and len(history):
            epoch = strategy(history, task=task, group_column=column)
            if epoch is not None:
                result: pd.DataFrame = history[history["epoch"] == epoch].drop(columns="epoch")
                return result
    frame = _val_rows(run_dir, PREDICTIONS, cache)
    if frame is None:
        raise ConfigError(f"{run_dir}: no {PREDICTIONS}; the trial cannot be scored.")
    return frame


def _table(frame: pd.DataFrame, task: str, column: str | None) -> pd.DataFrame:
    from medfairx.selection import val_table

    return val_table(frame, task=task, group_column=column)


def _value(table: pd.DataFrame, objective: str) -> pd.Series:
    """Per candidate (table row): the overall metric, or the worst group's."""
    if objective.startswith("worst_group_"):
        groups = table[[c for c in table.columns if c.startswith("g:")]]
        return groups.min(axis=1, skipna=True).fillna(table["overall"]) if groups.shape[1] else table["overall"]
    return table["overall"]


def objective_value(run_dir: Path, *, task: str, groupings: tuple[str, ...], objective: str,
                    strategy: Callable[..., Any] | None = None) -> float:
    """The trial's validation objective (mean over its groupings; worst-group objectives
    depend on the grouping, the overall metric does not)."""
    values = []
    cache: dict[Path, pd.DataFrame | None] = {}  # each file read once for all groupings
    for g in groupings or (None,):
        column = None if g is None else f"group:{g}"
        frame = _kept_val(run_dir, strategy, task, column, cache).assign(epoch=0)
        values.append(float(_value(_table(frame, task, column), objective).iloc[0]))
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def candidates_history(candidates: list[tuple[int, Path, float]], task: str) -> pd.DataFrame:
    """The validation predictions of every candidate's kept checkpoint, ``epoch = trial number``
    (what :func:`choose` hands a strategy; build it once for many strategies and groupings)."""
    result: pd.DataFrame = pd.concat([_kept_val(d, None, task, None).assign(epoch=n) for n, d, _ in candidates], ignore_index=True)
    return result


def choose(candidates: list[tuple[int, Path, float]], *, task: str, grouping: str | None,
           strategy: Callable[..., Any], name: str, history: pd.DataFrame | None = None) -> int | None:
    """The trial number a selection strategy picks among finished trials, on validation only.

    Each candidate ``(trial number, run folder, objective)`` is represented by the validation
    predictions of its kept checkpoint, labelled as ``epoch = trial number``; the strategy
    (``fn(history, task, group_column)``) chooses among them as it chooses among epochs.
    When it returns ``None`` (``final``), the best objective wins (ties: the earliest trial).
    ``history``: :func:`candidates_history` of ``candidates`` when already built.
    """
    if not candidates:
        return None
    column = None if grouping is None else f"group:{grouping}"
    if name != "final":
        if history is None:
            history = candidates_history(candidates, task)
        picked = strategy(history, task=task, group_column=column)
        if picked is not None:
            return int(picked)
    best = max(candidates, key=lambda c: (c[2] if np.isfinite(c[2]) else -np.inf, -c[0]))
    return best[0]


# --- the search loop ----------------------------------------------------------------------


@dataclass
class SearchContext:
    """What the loop needs from ``medfairx bench``: how to run a list of specs, and settings."""

    run: Callable[[Path, list[RunSpec]], SweepResult]
    echo: Echo
    config: Any  # medfairx.config.SearchConfig
    seeds: list[int]
    workers: int
    strategies: dict[str, Callable[..., Any]]
    add_groupings: Callable[[RunStore, RunSpec], bool] | None = None


def _tell_finished(study: Any, unit: SearchUnit, trial: Any, spec: RunSpec, store: RunStore, ctx: SearchContext) -> None:
    """Tell the study the trial's objective, or that it failed (its run failed, or it cannot be
    scored: told FAIL, never left RUNNING; it still counts toward the budget)."""
    optuna = _optuna()
    record = store.record(spec.run_id) or {}
    why = (record.get("error") or {}).get("message") if record.get("status") == "failed" else None
    if store.is_finished(spec.run_id):
        strategy = None if ctx.config.strategy == "final" else ctx.strategies[ctx.config.strategy]
        try:
            value = objective_value(store.run_dir(spec.run_id), task=unit.task, groupings=spec.groupings,
                                    objective=ctx.config.objective, strategy=strategy)
        except Exception as exc:  # noqa: BLE001 - one unscorable trial must not stop the search
            value, why = float("nan"), f"cannot be scored: {type(exc).__name__}: {exc}"
        if np.isfinite(value):
            study.tell(trial, value)
            return
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    if why:
        ctx.echo(f"    trial {trial} of {unit.study_name} failed: {why}")


def _budget(unit: SearchUnit, ctx: SearchContext) -> int:
    """Trials of one study: ``trials`` (failed ones included), fewer when a grid is smaller."""
    result: int = ctx.config.trials if ctx.config.sampler != "grid" else min(ctx.config.trials, grid_size(unit.space))
    return result


def cost_line(units: list[SearchUnit], ctx: SearchContext) -> str:
    """What the search will train: every study's trials, then at most one tuned run per distinct
    chosen configuration and suite seed (strategies and groupings that choose the same trial share it)."""
    trials = sum(_budget(u, ctx) for u in units)
    tuned = sum(min(_budget(u, ctx), len(ctx.strategies) * max(1, len(u.template.groupings))) for u in units)
    return (f"search: {len(units)} studies, {trials} trial runs on seed {ctx.config.seed}, then at most "
            f"{tuned * len(ctx.seeds)} tuned runs on seeds {ctx.seeds}")


def _ask(study: Any, unit: SearchUnit, ctx: SearchContext) -> list[tuple[int, RunSpec]]:
    done = len(study.trials)
    budget = _budget(unit, ctx)
    out = []
    dists = {k: _distribution(d) for k, d in unit.space.items()}
    for _ in range(max(0, min(ctx.workers, budget - done))):
        trial = study.ask(fixed_distributions=dists)
        spec = unit.trial_spec(trial.params, ctx.config.seed)
        trial.set_user_attr("run_id", spec.run_id)
        out.append((trial.number, spec))
    return out


def _trial_rows(study: Any, unit: SearchUnit, store: RunStore) -> list[dict[str, Any]]:
    rows = []
    for t in study.trials:
        spec = unit.trial_spec(t.params, unit.template.seed)
        run_id = t.user_attrs.get("run_id") or spec.run_id
        rec = store.record(run_id) or {}
        rows.append({"number": t.number, "state": t.state.name, "value": t.value, "params": dict(t.params),
                     "run_id": run_id, "duration_s": rec.get("duration_s"), "device": rec.get("device")})
    return rows


def run_search(units: list[SearchUnit], store_root: Path, ctx: SearchContext) -> SweepResult:
    """Search every unit, choose per grouping and strategy on validation, train the choices.

    Returns:
        What the trial and tuned sweeps did (runs done, reused, failed, pending).
    """
    optuna = _optuna()
    root = search_root(store_root)
    trials_store, tuned_store = RunStore(root / TRIALS_DIR), RunStore(root / TUNED_DIR)
    for s in (trials_store, tuned_store):
        s.root.mkdir(parents=True, exist_ok=True)
        s.clean_temporaries()
    storage = _storage(root)
    studies = {}
    result = SweepResult()
    queue: list[tuple[SearchUnit, int, RunSpec]] = []
    for unit in units:
        unit.template = dataclasses.replace(unit.template, seed=ctx.config.seed)
        study = optuna.create_study(study_name=unit.study_name, storage=storage, direction="maximize",
                                    sampler=optuna.samplers.RandomSampler(seed=0), load_if_exists=True)
        # seeded by the search seed and the trials so far: a resumed study draws new configurations
        study.sampler = _sampler(ctx.config.sampler, ctx.config.seed + len(study.trials), unit.space)
        studies[unit.study_name] = study
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            queue.append((unit, t.number, unit.trial_spec(t.params, ctx.config.seed)))  # asked before a kill
    ctx.echo(cost_line(units, ctx))
    if queue:
        ctx.echo(f"search: {len(queue)} trial(s) asked before an interruption are finished first")
    while True:
        for unit in units:
            queue += [(unit, n, spec) for n, spec in _ask(studies[unit.study_name], unit, ctx)]
        if not queue:
            break
        todo = list({spec.run_id: spec for _, _, spec in queue if not trials_store.is_finished(spec.run_id)}.values())
        done = sum(len(s.trials) for s in studies.values())
        ctx.echo(f"search: {len(queue)} trial(s) ({len(todo)} to train); {done} of "
                 f"{len(units) * ctx.config.trials} asked")
        ran = ctx.run(trials_store.root, todo)
        _merge(result, ran, [s.run_id for _, _, s in queue if s not in todo])
        if ran.pending:  # a cluster still runs them: told on the next invocation
            return result
        for unit, number, spec in queue:
            _tell_finished(studies[unit.study_name], unit, number, spec, trials_store, ctx)
        queue = []
    for unit in units:
        unit.trials = _trial_rows(studies[unit.study_name], unit, trials_store)
    selection = _select(units, trials_store, ctx)
    tuned = _tuned_specs(units, selection, ctx)
    todo = [s for s in tuned if not tuned_store.is_finished(s.run_id)]
    for spec in tuned:
        if spec not in todo and ctx.add_groupings is not None:
            ctx.add_groupings(tuned_store, spec)
    ctx.echo(f"search: {len(tuned)} tuned run(s) of the chosen configurations on seeds {ctx.seeds} "
             f"({len(todo)} to train)")
    ran = ctx.run(tuned_store.root, todo)
    _merge(result, ran, [s.run_id for s in tuned if s not in todo])
    _write_selection(root, units, selection, ctx)
    return result


def _merge(result: SweepResult, ran: SweepResult, reused: list[str]) -> None:
    result.done += ran.done
    result.failed += ran.failed
    result.pending += ran.pending
    result.skipped += ran.skipped + reused


def _select(units: list[SearchUnit], store: RunStore, ctx: SearchContext) -> dict[str, dict[str, dict[str, Any]]]:
    """study → grouping → strategy → the chosen trial (number and parameters)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for unit in units:
        ok = [t for t in unit.trials if t["state"] == "COMPLETE" and store.is_finished(t["run_id"])]
        candidates = [(t["number"], store.run_dir(t["run_id"]), float(t["value"])) for t in ok]
        by_number = {t["number"]: t for t in ok}
        history = candidates_history(candidates, unit.task) if candidates else None  # read once per unit
        per: dict[str, dict[str, Any]] = {}
        for g in unit.template.groupings:
            per[g] = {}
            for name, fn in ctx.strategies.items():
                number = choose(candidates, task=unit.task, grouping=g, strategy=fn, name=name, history=history)
                if number is not None:
                    per[g][name] = {"trial": number, "params": by_number[number]["params"]}
        out[unit.study_name] = per
    return out


def _tuned_specs(units: list[SearchUnit], selection: dict[str, Any], ctx: SearchContext) -> list[RunSpec]:
    """The chosen configurations on the suite's seeds (one run per distinct configuration and
    seed; a group-unaware run is scored under the groupings whose choice it is)."""
    specs: dict[str, RunSpec] = {}
    scored: dict[str, list[str]] = {}
    for unit in units:
        for g, choices in selection[unit.study_name].items():
            for choice in choices.values():
                for seed in ctx.seeds:
                    spec = unit.trial_spec(choice["params"], seed)
                    specs.setdefault(spec.run_id, spec)
                    if g not in scored.setdefault(spec.run_id, []):
                        scored[spec.run_id].append(g)
                    choice.setdefault("run_ids", [])
                    if spec.run_id not in choice["run_ids"]:
                        choice["run_ids"].append(spec.run_id)
    return [dataclasses.replace(s, groupings=tuple(g for g in s.groupings if g in scored[rid]))
            for rid, s in specs.items()]


def _write_selection(root: Path, units: list[SearchUnit], selection: dict[str, Any], ctx: SearchContext) -> None:
    cfg = ctx.config
    atomic_write_json(root / SELECTION_FILE, {
        "search": cfg.model_dump() if hasattr(cfg, "model_dump") else dict(cfg),
        "seeds": list(ctx.seeds),
        "strategies": list(ctx.strategies),
        "units": [{
            "study": u.study_name, "method": u.template.method, "dataset": u.template.dataset,
            "train_grouping": u.template.train_grouping, "groupings": list(u.template.groupings), "task": u.task,
            "space": {k: d.to_dict() for k, d in u.space.items()}, "trials": u.trials,
            "choices": selection[u.study_name],
        } for u in units],
    })


def read_selection(store_root: Path) -> dict[str, Any] | None:
    """``runs/<suite>/search/selection.json``, or ``None`` when the suite was never searched."""
    path = search_root(store_root) / SELECTION_FILE
    if not path.is_file():
        return None
    result: dict[str, Any] | None = json.loads(path.read_text(encoding="utf-8"))
    return result


# --- the hook ``medfairx bench`` calls ----------------------------------------------------


def search_config(suite: Any, trials: int | None, sampler: str | None) -> Any:
    """The suite's ``search:`` with ``--trials`` / ``--sampler`` applied (``None``: no search)."""
    from medfairx.config import SearchConfig

    cfg = suite.search
    if cfg is None and trials is None and sampler is None:
        return None
    cfg = cfg or SearchConfig(seed=max([*suite.seeds, 999]) + 1)
    changes = {k: v for k, v in (("trials", trials), ("sampler", sampler)) if v is not None}
    return cfg.model_copy(update=changes) if changes else cfg


def prepare_search(suite_name: str, cfg: Any, runs: list[RunSpec], datasets: dict[str, Any], host: Any) -> list[SearchUnit]:
    """Check the search settings and every planned method's space; the units to search.

    Raises:
        ConfigError: the strategy is not registered, or the search seed is a suite seed.
        SearchSpaceError: a bad declared space.
    """
    names = host.registry("selection_strategies").names()
    if cfg.strategy not in names:
        raise ConfigError(UNKNOWN_STRATEGY.format(suite=suite_name, name=cfg.strategy, names=", ".join(names)))
    clash = sorted({r.seed for r in runs} & {cfg.seed})
    if clash:
        raise ConfigError(f"Suite {suite_name!r}: the search seed {cfg.seed} is also a training seed of the "
                          "suite; set `search: {seed: ...}` to another value.")
    return search_units(runs, host, {name: ds.card.task for name, ds in datasets.items()}, cfg.space_overrides())


def search_context(cfg: Any, runs: list[RunSpec], host: Any, run: Callable[[Path, list[RunSpec]], SweepResult],
                   echo: Echo, workers: int, add_groupings: Callable[[RunStore, RunSpec], bool] | None) -> SearchContext:
    """The loop's settings: the registered strategies in their usual order, the suite's seeds."""
    from medfairx.metrics.evaluate import registered_strategies

    strategies = {n: host.registry("selection_strategies").get(n).load() for n in registered_strategies()}
    seeds = sorted({r.seed for r in runs})
    return SearchContext(run=run, echo=echo, config=cfg, seeds=seeds, workers=max(1, workers),
                         strategies=strategies, add_groupings=add_groupings)
