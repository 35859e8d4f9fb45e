"""The plugin contract: every extension point of medfairx.

Plugins implement these hooks with ``@medfairx.hookimpl`` and are discovered through the
``medfairx`` entry-point group. Registration hooks receive a ``register`` callback; call it
once per item. The host validates each item, rejects duplicate names (naming both plugins)
and records which plugin registered what.

Evolution rules: hooks only ever gain arguments (pluggy lets an implementation accept
fewer arguments than the spec), deprecated arguments go through ``warn_on_impl_args``,
an argument's type never changes, and new hooks may be added freely.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from medfairx.specs import Register

hookspec = pluggy.HookspecMarker("medfairx")
hookimpl = pluggy.HookimplMarker("medfairx")


# --- registration hooks ---------------------------------------------------------------


@hookspec
def register_datasets(register: Register) -> None:
    """Register dataset adapters.

    Args:
        register: call ``register(DatasetSpec(...))`` once per adapter.
    """


@hookspec
def register_groupings(register: Register) -> None:
    """Register generic sensitive-attribute groupings.

    Args:
        register: call ``register(GroupingSpec(...))``; a grouping applies to every
            dataset whose metadata has its ``columns``.
    """


@hookspec
def register_methods(register: Register) -> None:
    """Register methods.

    Args:
        register: call ``register(MyMethod)`` with a :class:`~medfairx.methods.Method`
            subclass, or ``register(MethodSpec(name, "pkg.mod:Cls", ...))`` to keep the
            import of torch lazy.
    """


@hookspec
def register_metrics(register: Register) -> None:
    """Register metrics.

    Args:
        register: call ``register(MetricSpec(...))``.
    """


@hookspec
def register_backbones(register: Register) -> None:
    """Register network backbones (factories returning ``torch.nn.Module``).

    Args:
        register: call ``register(BackboneSpec(...))``.
    """


@hookspec
def register_selection_strategies(register: Register) -> None:
    """Register model-selection strategies (applied to validation data only).

    Args:
        register: call ``register(SelectionStrategySpec(...))``.
    """


@hookspec
def register_reporters(register: Register) -> None:
    """Register leaderboard reporters (HTML, CSV, ...).

    Args:
        register: call ``register(ReporterSpec(...))``.
    """


@hookspec
def register_executors(register: Register) -> None:
    """Register sweep executors (local processes, Slurm, ...), chosen with ``--executor``.

    Args:
        register: call ``register(ExecutorSpec(...))``.
    """


@hookspec
def register_claims(register: Register) -> None:
    """Register published claims about methods, checked on every leaderboard index.

    Args:
        register: call ``register(ClaimSpec(name, method, text, comparisons))``; each
            :class:`~medfairx.specs.ClaimComparison` names a metric, a baseline method and
            the claimed direction.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add sub-commands to the ``medfairx`` CLI.

    Args:
        cli: the top-level click group; use ``@cli.command()``.
    """


# --- observers ------------------------------------------------------------------------


@hookspec
def run_started(run: Any, run_dir: Any) -> None:
    """Called before a run trains (a place for MLflow / W&B loggers; see ``medfairx-tracking``).

    Args:
        run: the :class:`~medfairx.runner.plan.RunSpec` about to run.
        run_dir: the run's folder in the run store (a :class:`~pathlib.Path`; its parent is the store).
    """


@hookspec
def epoch_finished(run: Any, epoch: int, metrics: dict[str, Any]) -> None:
    """Called after each training epoch's validation, in the process that trains the run.

    Args:
        run: the :class:`~medfairx.runner.plan.RunSpec` being trained.
        epoch: the epoch number within its stage (from 1).
        metrics: the epoch's history record without predictions: ``stage``, ``epoch``,
            ``train_loss``, ``val_loss``, ``val_<metric>``, ``val_group_<metric>`` (a dict
            group code → value), ``lr``, ``seconds``, ``is_best``, ...
    """


@hookspec
def run_finished(run: Any, record: dict[str, Any], run_dir: Any) -> None:
    """Called after a run ended, successfully or not, once its files are written.

    Args:
        run: the :class:`~medfairx.runner.plan.RunSpec` that ran.
        record: the content of its ``run.json`` (status, timings, error, ...).
        run_dir: the run's folder (``run.json``, ``predictions.parquet``, the log).
    """


REGISTRATION_HOOKS: dict[str, str] = {
    "register_datasets": "datasets",
    "register_groupings": "groupings",
    "register_methods": "methods",
    "register_metrics": "metrics",
    "register_backbones": "backbones",
    "register_selection_strategies": "selection_strategies",
    "register_reporters": "reporters",
    "register_executors": "executors",
    "register_claims": "claims",
}
