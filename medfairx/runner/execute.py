"""Execute planned runs: train, predict val and test, score per sample, store.

A failing run is recorded (status, error, traceback) and the sweep goes on.
"""

from __future__ import annotations

import gc
import platform
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medfairx.contracts import RunSpec, TaskData, TrainRecipe
from medfairx.data.prompts import attach_prompts, needs_prompts
from medfairx.fileio import open_new_text
from medfairx.methods.base import RunContext, check_finite_scores
from medfairx.metrics.basic import dice_iou_per_sample
from medfairx.metrics.surface import surface_metrics_per_sample
from medfairx.runner.epochs import epoch_recorder, epochs_frame
from medfairx.store import LOG, RunStore

Echo = Callable[[str], None]


@dataclass
class SweepResult:
    """What a sweep did."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    seconds: float = 0.0


class RunLog:
    """Writes a run's log lines to ``log.txt`` (a fresh file; a link there is replaced) and echoes them."""

    def __init__(self, path: Path, echo: Echo | None) -> None:
        self._fh = open_new_text(path)
        self._echo = echo

    def __call__(self, line: str) -> None:
        if self._fh.closed:  # e.g. warnings summarised after an interrupted run closed the log
            return
        self._fh.write(line + "\n")
        self._fh.flush()
        if self._echo:
            self._echo("    " + line)

    def close(self) -> None:
        """Close the log file."""
        self._fh.close()


@contextmanager
def capture_warnings(log: Callable[[str], None], *, keep: int = 20) -> Iterator[list[dict[str, Any]]]:
    """Send the warnings raised inside the block to the run's log instead of the terminal.

    Each distinct (category, message) is logged once with its count, and the first ``keep``
    are also yielded as ``{"category", "message", "count"}`` records (stored in ``run.json``):
    a sweep of many workers prints one line per kind of warning, not one per batch.
    """
    summary: list[dict[str, Any]] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield summary
        finally:
            counts = Counter((w.category.__name__, str(w.message)) for w in caught)
            for (category, message), n in counts.items():
                log(f"warning{f' (x{n})' if n > 1 else ''}: {category}: {message}")
            summary.extend({"category": c, "message": m, "count": n} for (c, m), n in list(counts.items())[:keep])


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def predictions_frame(
    dataset: Any, split: str, spec: RunSpec, scores: np.ndarray, truth: TaskData, num_classes: int, task: str,
    *, prompts: Any = None,
) -> pd.DataFrame:
    """Per-sample rows for one split: ids, attributes, group labels, and scores (classification)
    or Dice, IoU, loss, HD95, NSD and boundary-error share (segmentation; in pixels, see
    :mod:`medfairx.metrics.surface`). For volumes segmented from slice-wise ``prompts``
    (:class:`medfairx.data.prompts.PromptSet`) also ``slice_dice``: the Dice of the prompted slices
    alone, stacked (unprompted slices are predicted empty, which the volume Dice rewards)."""
    meta = dataset.split_metadata(split)
    ids = truth.sample_ids
    frame: pd.DataFrame = pd.DataFrame({"run_id": spec.run_id, "split": split, "sample_id": ids})
    for col in meta.columns:
        if col != "label":
            frame[col] = meta.loc[ids, col].to_numpy()
    labels = dataset.group_labels(split)
    for g in spec.groupings:
        frame[f"group:{g}"] = labels.loc[ids, g].to_numpy()
    if task == "classification":
        frame["y_true"] = np.asarray(truth.labels, dtype=np.int64)
        if num_classes == 2:
            frame["score"] = scores[:, 1].astype(np.float64)
        for k in range(num_classes):
            frame[f"score_{k}"] = scores[:, k].astype(np.float64)
    else:
        assert truth.labels is not None, "evaluated splits carry their masks"
        pred = scores.argmax(axis=1)
        dice, iou = dice_iou_per_sample(pred, truth.labels, num_classes)
        frame["dice"], frame["iou"] = dice, iou
        p_true = np.take_along_axis(scores, truth.labels[:, None].astype(np.int64), axis=1)
        frame["loss"] = -np.log(np.clip(p_true, 1e-7, 1.0)).reshape(len(ids), -1).mean(axis=1)
        for col, values in surface_metrics_per_sample(pred, truth.labels, num_classes).items():
            frame[col] = values
        if prompts is not None and pred.ndim == 4:
            frame["slice_dice"] = _prompted_slice_dice(pred, truth.labels, prompts, num_classes)
    return frame


def _prompted_slice_dice(pred: np.ndarray, true: np.ndarray, prompts: Any, num_classes: int) -> np.ndarray:
    """Per volume, the Dice of its prompted slices stacked (NaN for a volume without prompts)."""
    out = np.full(len(pred), np.nan)
    for i in range(len(pred)):
        slices = list(prompts.prompted_slices(i))
        if slices:
            out[i] = dice_iou_per_sample(pred[i][None, slices], true[i][None, slices], num_classes)[0][0]
    return out


def execute_run(
    spec: RunSpec,
    dataset: Any,
    method_spec: Any,
    store: RunStore,
    *,
    echo: Echo | None = None,
    hook: Any = None,
    progress: Any = None,
    external: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train and evaluate one run; always writes ``run.json`` (ok or failed).

    ``progress(stage, epoch, total)``, when given, is called after every epoch (live displays).
    ``external`` maps the dataset names of ``spec.external`` to loaded datasets
    (:mod:`medfairx.runner.external`); the trained model predicts their splits too.
    """
    from medfairx.version import __version__

    run_dir = store.run_dir(spec.run_id)
    log = RunLog(run_dir / LOG, echo)
    card = dataset.card
    record: dict[str, Any] = {
        **spec.to_dict(),
        "status": "running",
        "task": card.task,
        "num_classes": card.num_classes,
        "method_tags": method_spec.tags.__dict__,
        "method_summary": method_spec.summary,
        "method_reference": method_spec.reference,
        "method_origin": spec.versions,
        "medfairx_version": __version__,
        "python": platform.python_version(),
        "started": _now(),
        "error": None,
    }
    t0 = time.perf_counter()
    if hook is not None:
        hook.run_started(run=spec, run_dir=run_dir)
    with capture_warnings(log) as run_warnings:
        try:
            from medfairx.methods.device import resolve_device
            from medfairx.methods.encoders import feature_statistics

            device = resolve_device(spec.device)
            record["device"] = device
            tags = method_spec.tags
            g_fit = spec.train_grouping if tags.uses_groups_in_fit else None
            g_pred = spec.train_grouping if tags.uses_groups_in_predict else None
            train = dataset.task_data("train", g_fit)
            val = dataset.task_data("val", g_fit)
            truth = {s: dataset.task_data(s, g_pred) for s in ("val", "test")}
            masked = {s: d.without_labels() for s, d in truth.items()}
            recipe = TrainRecipe().updated(**spec.recipe)
            ctx = RunContext(
                task=card.task,
                num_classes=card.num_classes,
                in_channels=int(train.images.shape[1]),
                spatial_dims=card.spatial_dims,
                image_size=tuple(train.images.shape[2:]),
                seed=spec.seed,
                device=device,  # type: ignore[arg-type]  # RunContext.device is annotated str; methods receive the torch.device
                backbone=spec.backbone,
                backbone_kwargs=feature_statistics(dict(spec.protocol.get("backbone_kwargs") or {}), train.images),
                recipe=recipe,
                workdir=run_dir,
                amp=spec.amp,
                compile=spec.compile,
                log=log,
                progress=progress,
                on_epoch=None if hook is None else (
                    lambda rec: hook.epoch_finished(run=spec, epoch=rec["epoch"], metrics=rec)),
            )
            method = method_spec.load()(**spec.params)
            if needs_prompts(method_spec.tags):
                # Promptable segmenters: prompts (boxes / points only) derived from the ground
                # truth in one audited step; labels stay masked. Results are an upper bound.
                config = method.prompt_config()
                masked = {s: attach_prompts(d, truth[s], config, seed=spec.seed) for s, d in masked.items()}
                record["prompts"] = masked["test"].prompts.describe()
            selectable = card.task == "classification" and method.epochs_are_checkpoints
            # Per-epoch val/test scores for after-the-fact selection: the observer keeps the
            # masked splits to itself, so fit never receives test data.
            ctx.observe_epoch, epoch_records = (
                epoch_recorder(masked, method=spec.method) if selectable else (None, []))
            log(f"{spec.method} on {spec.dataset} (grouping={spec.train_grouping or 'none'}) seed={spec.seed} device={device}")
            method.fit(train, val, ctx)
            if spec.save_state:  # for `medfairx cka` and later re-use of the trained model
                from medfairx.runner.state import STATE_FILE, save_state

                save_state(method, ctx, run_dir / STATE_FILE)
                record["state_file"] = STATE_FILE
            scores = {s: method.predict_scores(masked[s], ctx) for s in ("val", "test")}
            for s, split_scores in scores.items():  # NaN scores would otherwise score as perfect fairness
                check_finite_scores(split_scores, method=spec.method, split=s)
            frames = {
                s: predictions_frame(dataset, s, spec, scores[s], truth[s], card.num_classes,
                                     card.task, prompts=getattr(masked[s], "prompts", None))
                for s in ("val", "test")
            }
            if spec.external:
                from medfairx.runner.external import predict_external, record_of

                sources = {**(external or {}), dataset.name: dataset}
                record["external"] = record_of(spec, sources)
                ext_frames, not_scored = predict_external(method, ctx, spec, sources, predict_grouping=g_pred,
                                                          frame_of=predictions_frame, check=check_finite_scores)
                frames.update((f"{i}", f) for i, f in enumerate(ext_frames))
                for name, reason in not_scored.items():
                    record["external"][name]["not_scored"] = reason
                    log(f"external set {name} not scored: {reason}")
            predictions = pd.concat(frames.values(), ignore_index=True)
            epochs = epochs_frame(epoch_records, frames) if selectable else None
            record.update(
                status="ok",
                selected_epoch=getattr(method, "selected_epoch_", None),
                epochs_trained=getattr(method, "epochs_trained_", None),
                history=list(ctx.history),
            )
        except BaseException as exc:  # a failing run is recorded, the sweep goes on
            if isinstance(exc, KeyboardInterrupt):
                log.close()
                raise
            predictions, epochs = None, None
            record.update(
                status="failed",
                error={
                    "type": type(exc).__name__,
                    "message": str(exc),
                    "traceback": traceback.format_exc(),
                },
            )
            log(f"FAILED: {type(exc).__name__}: {exc}")
        finally:
            record["finished"] = _now()
            record["duration_s"] = round(time.perf_counter() - t0, 3)
    record["warnings"] = run_warnings
    store.write_run(spec.run_id, _jsonable(record), predictions, epochs)
    log.close()
    if hook is not None:
        hook.run_finished(run=spec, record=record, run_dir=run_dir)
    _release_memory()
    return record


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def _release_memory() -> None:
    """Free what the finished run left in reference cycles, then freeze what survives.

    A full collection walks every tracked object, and after torch, pandas and the tracking
    client are imported that is about half a million of them (a quarter of a second per run
    on a CPU core). Everything alive after the collection (modules, a worker's loaded
    datasets) lives as long as the process, so it is moved out of the collector's sight
    (:func:`gc.freeze`) and the next run's collection only walks what that run allocated.
    """
    gc.collect()
    gc.freeze()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
