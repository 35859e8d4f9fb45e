"""Experiment tracking for medfairx: MLflow and TensorBoard loggers on the observer hooks.

Installed, the plugin logs every run of ``medfairx bench`` (and anything else that calls
:func:`medfairx.runner.execute.execute_run`): the run's parameters, the validation metrics of
every epoch, the final per-group test metrics and the run's files (``run.json``,
``predictions.parquet``). ``MEDFAIRX_TRACKING`` chooses the loggers (default
``mlflow,tensorboard``; ``none`` turns tracking off). A logger that fails is reported once
as a warning and switched off for the rest of the process; it never fails a run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from medfairx import hookimpl
from medfairx_tracking.base import Logger, TrackingWarning

__all__ = ["TrackingWarning", "active_loggers"]

#: Loggers by name; each module is imported only when its logger is first used.
LOGGERS = {
    "mlflow": "medfairx_tracking.mlflow_logger:MlflowLogger",
    "tensorboard": "medfairx_tracking.tensorboard_logger:TensorBoardLogger",
}
DEFAULT = "mlflow,tensorboard"
_instances: dict[str, Logger] = {}


def active_loggers() -> list[Logger]:
    """The loggers ``MEDFAIRX_TRACKING`` selects (one instance per process and name)."""
    import importlib

    chosen = [n.strip() for n in os.environ.get("MEDFAIRX_TRACKING", DEFAULT).split(",") if n.strip()]
    out = []
    for name in chosen:
        if name in ("none", "off", "0"):
            return []
        if name not in LOGGERS:
            continue
        if name not in _instances:
            module, _, attr = LOGGERS[name].partition(":")
            _instances[name] = getattr(importlib.import_module(module), attr)()
        out.append(_instances[name])
    return out


@hookimpl
def run_started(run: Any, run_dir: Any) -> None:
    """Open a tracked run per logger."""
    if run_dir is None:
        return
    for logger in active_loggers():
        logger.guarded("start", run, Path(run_dir))


@hookimpl
def epoch_finished(run: Any, epoch: int, metrics: dict[str, Any]) -> None:
    """Log one epoch's validation metrics."""
    for logger in active_loggers():
        logger.guarded("epoch", run, epoch, metrics)


@hookimpl
def run_finished(run: Any, record: dict[str, Any], run_dir: Any) -> None:
    """Log the final per-group test metrics and the run's files, then close the tracked run."""
    if run_dir is None:
        return
    for logger in active_loggers():
        logger.guarded("finish", run, record, Path(run_dir))
