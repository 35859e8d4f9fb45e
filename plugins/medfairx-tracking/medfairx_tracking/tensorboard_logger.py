"""TensorBoard logger: event files per run under ``<run store>/tensorboard/<run id>/``.

``$MEDFAIRX_TENSORBOARD_DIR`` puts them elsewhere (one sub-folder per run id). View them
with ``tensorboard --logdir runs/<suite>/tensorboard``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from medfairx_tracking.base import (
    Logger,
    epoch_scalars,
    final_test_scalars,
    flat_params,
)


def log_dir(run: Any, run_dir: Path) -> Path:
    """Where the event files of ``run`` go."""
    base = os.environ.get("MEDFAIRX_TENSORBOARD_DIR")
    return (Path(base) if base else run_dir.parent / "tensorboard") / run.run_id


class TensorBoardLogger(Logger):
    """Params as text, validation scalars per epoch, test scalars and ``run.json`` at the end."""

    name = "tensorboard"
    hint = "Check that the TensorBoard folder (MEDFAIRX_TENSORBOARD_DIR, or <run store>/tensorboard) is writable."

    def __init__(self) -> None:
        super().__init__()
        self._open: dict[str, tuple[Any, list[int]]] = {}

    def start(self, run: Any, run_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(log_dir(run, run_dir)))
        table = "\n".join(f"| {k} | {v} |" for k, v in sorted(flat_params(run).items()))
        writer.add_text("params", "| param | value |\n|---|---|\n" + table, 0)
        self._open[run.run_id] = (writer, [0])

    def epoch(self, run: Any, epoch: int, metrics: dict[str, Any]) -> None:
        if run.run_id not in self._open:
            return
        writer, step = self._open[run.run_id]
        step[0] += 1
        for key, value in epoch_scalars(metrics).items():
            writer.add_scalar(key.replace(".", "/"), value, step[0])

    def finish(self, run: Any, record: dict[str, Any], run_dir: Path) -> None:
        if run.run_id not in self._open:
            return
        writer, step = self._open.pop(run.run_id)
        try:
            for key, value in final_test_scalars(run, record, run_dir).items():
                writer.add_scalar(key.replace(".", "/"), value, step[0])
            summary = {k: record.get(k) for k in ("status", "duration_s", "selected_epoch", "epochs_trained", "error")}
            writer.add_text("run.json", "```\n" + json.dumps(summary, indent=2, default=str) + "\n```", step[0])
        finally:
            writer.close()

    def abort(self) -> None:
        for writer, _ in self._open.values():
            writer.close()
        self._open.clear()
