"""What every logger shares: failure isolation and the numbers it logs."""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path
from typing import Any


class TrackingWarning(UserWarning):
    """A tracking logger failed and was switched off; the runs go on untracked by it."""


def flat_params(run: Any) -> dict[str, str]:
    """A run's parameters as flat ``name → text``: the spec's fields, ``params.*`` and ``recipe.*``."""
    d = run.to_dict()
    out: dict[str, str] = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": _text(v) for k, v in value.items()})
        else:
            out[key] = _text(value)
    return out


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


_SYMBOLS = (("<=", "le"), (">=", "ge"), ("<", "lt"), (">", "gt"), ("=", "eq"))


def metric_key(*parts: Any) -> str:
    """A metric name every tracker accepts: parts joined by ``.``, symbols spelled out
    (``<=60`` → ``le60``), other characters outside ``[A-Za-z0-9_.-/ ]`` replaced by ``_``."""
    text = ".".join(str(p) for p in parts if p not in (None, ""))
    for symbol, word in _SYMBOLS:
        text = text.replace(symbol, word)
    return re.sub(r"[^A-Za-z0-9_.\-/ ]", "_", text)


def epoch_scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of an epoch record; per-group dicts become ``<name>.<group>``."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if key in ("epoch", "is_best", "stage", "criterion"):
            continue
        if isinstance(value, dict):
            out.update({metric_key(key, g): float(v) for g, v in value.items() if _finite(v)})
        elif _finite(value):
            out[metric_key(key)] = float(value)
    return out


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def final_test_scalars(run: Any, record: dict[str, Any], run_dir: Path) -> dict[str, float]:
    """Final test metrics per grouping, overall and per group, as ``test.<grouping>.<metric>[.<group>]``.

    Scored with :func:`medfairx.metrics.evaluate.score_predictions` on the run's own
    ``predictions.parquet`` (no bootstrap: point values only); empty for a failed run.
    """
    from medfairx import score_predictions
    from medfairx.store import GROUP_PREFIX, PREDICTIONS

    path = run_dir / PREDICTIONS
    if record.get("status") != "ok" or not path.is_file():
        return {}
    import pandas as pd

    frame = pd.read_parquet(path)
    out: dict[str, float] = {}
    for grouping in run.groupings:
        if GROUP_PREFIX + grouping not in frame.columns:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rows = score_predictions(frame, task=record.get("task", "classification"), grouping=grouping,
                                     n_boot=0, run_name=str(run_dir))
        for r in rows.itertuples():
            if _finite(r.value):
                group = r.group if r.scope == "group" else ""
                out[metric_key("test", grouping, r.metric, group)] = float(r.value)
    return out


def _first_line(exc: BaseException, limit: int = 300) -> str:
    """The first non-empty line of an error message, shortened (database errors quote whole SQL)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[0] if lines else ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Logger:
    """Base class: ``start`` / ``epoch`` / ``finish`` are called through :meth:`guarded`."""

    name = "logger"

    def __init__(self) -> None:
        self.failed = False

    def guarded(self, what: str, *args: Any) -> None:
        """Call ``self.<what>(*args)``; the first failure warns once and switches the logger off."""
        if self.failed:
            return
        try:
            getattr(self, what)(*args)
        except Exception as exc:  # noqa: BLE001 - tracking must never fail a run
            self.failed = True
            warnings.warn(
                f"medfairx-tracking: the {self.name} logger failed ({type(exc).__name__}: {_first_line(exc)}) and is "
                f"off for the rest of this process; the runs go on untracked by it. {self.hint}",
                TrackingWarning, stacklevel=2,
            )
            try:
                self.abort()
            except Exception:  # noqa: BLE001 - best effort cleanup
                pass

    hint = ""

    def start(self, run: Any, run_dir: Path) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def epoch(self, run: Any, epoch: int, metrics: dict[str, Any]) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def finish(self, run: Any, record: dict[str, Any], run_dir: Path) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def abort(self) -> None:
        """Drop open handles after a failure."""
