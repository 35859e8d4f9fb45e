"""Built-in sweep executors: ``local`` (sequential or one process per device) and ``slurm``.

``medfairx bench --executor NAME --jobs N --devices ... --executor-option KEY=VALUE`` builds
``spec.load()(jobs=N, devices=[...], **options)`` (the factories in
:mod:`medfairx.runner.launch`); nothing heavy (torch, submitit) is imported to register them.
"""

from __future__ import annotations

from medfairx.hookspecs import hookimpl
from medfairx.specs import ExecutorSpec, Register

_TARGET = "medfairx.runner.launch"

BUILTIN_SPECS: tuple[ExecutorSpec, ...] = (
    ExecutorSpec(
        "local", f"{_TARGET}:local_executor",
        "This machine: sequential, or --jobs N worker processes over --devices (GPU ids or cpu).",
    ),
    ExecutorSpec(
        "slurm", f"{_TARGET}:slurm_executor",
        "Slurm array job through submitit (options: partition, gpus_per_job, time, wait, ...).",
    ),
)


@hookimpl
def register_executors(register: Register) -> None:
    """Register the built-in executors."""
    for spec in BUILTIN_SPECS:
        register(spec)
