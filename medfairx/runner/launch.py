"""The factories the built-in executor specs name: ``local`` and ``slurm``.

``medfairx bench --executor NAME --jobs N --devices ... --executor-option KEY=VALUE`` calls
``factory(jobs=N, devices=[...], **options)``; each checks its options and names the valid ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from medfairx.errors import ConfigError
from medfairx.runner.executors import LocalExecutor

__all__ = ["LOCAL_OPTIONS", "local_executor", "slurm_executor"]


LOCAL_OPTIONS = ("threads_per_worker", "max_runs_per_worker")


def _check_options(executor: str, options: dict[str, Any], valid: Sequence[str], prefix: str = "") -> None:
    bad = sorted(k for k in options if k not in valid and not (prefix and k.startswith(prefix)))
    if bad:
        extra = f" and any {prefix}* option" if prefix else ""
        raise ConfigError(
            f"Unknown --executor-option {', '.join(bad)} for executor {executor!r}; valid: "
            f"{', '.join(valid) or '(none)'}{extra}."
        )


def local_executor(jobs: int = 1, devices: Sequence[str] = (), **options: Any) -> Any:
    """The ``local`` executor: sequential in this process, or one worker process per slot.

    ``jobs <= 1`` without ``devices`` gives the sequential
    :class:`~medfairx.runner.executors.LocalExecutor`; otherwise a
    :class:`~medfairx.runner.parallel.ParallelExecutor` with ``max(jobs, len(devices))``
    workers (``--devices 0,1`` alone means two workers, one per GPU).

    Options: ``threads_per_worker`` (CPU threads per worker), ``max_runs_per_worker``
    (restart workers after that many runs).

    Raises:
        ConfigError: an unknown option.
    """
    _check_options("local", options, LOCAL_OPTIONS)
    devices = list(devices or ())
    if int(jobs) <= 1 and not devices:
        return LocalExecutor()
    from medfairx.runner.parallel import ParallelExecutor

    n = int(jobs) if int(jobs) > 1 else len(devices)
    return ParallelExecutor(n, devices, **options)


def slurm_executor(jobs: int = 1, devices: Sequence[str] = (), **options: Any) -> Any:
    """The ``slurm`` executor: one submitit array job per sweep (see :mod:`medfairx.runner.slurm`).

    Raises:
        ConfigError: an unknown option, ``--devices`` given, or submitit missing.
    """
    from medfairx.runner.slurm import SLURM_OPTIONS, SlurmExecutor

    _check_options("slurm", options, SLURM_OPTIONS, prefix="slurm_")
    if devices:
        raise ConfigError(
            "--devices does not apply to --executor slurm (Slurm assigns the GPUs); use "
            "--executor-option gpus_per_job=N instead."
        )
    return SlurmExecutor(jobs=jobs, **options)
