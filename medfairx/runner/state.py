"""Saving and loading a fitted method with what is needed to rebuild its network (``state.pt``).

The run store does not keep weights yet. :func:`save_state` writes ``state.pt`` next to a
run's ``run.json`` (the runner can call it after ``fit``); :func:`load_state` rebuilds the
fitted method from it, looking the method class up in the registry::

    {"format": 1, "method": "qpnet", "params": {...},          # Method.get_params()
     "context": {"task", "num_classes", "in_channels", "spatial_dims", "image_size",
                 "backbone", "backbone_kwargs"},
     "method_state": method.state_dict()}

The payload is tensors and plain containers only, and every read uses
``torch.load(weights_only=True)`` (:func:`read_state_file`): a crafted file cannot run code,
it is refused with one line.
"""

from __future__ import annotations

import io
import pickle
import re
from pathlib import Path
from typing import Any

from medfairx.errors import ConfigError

STATE_FILE = "state.pt"
STATE_FORMAT = 1
UNSAFE_STATE = (
    "{path}: refused: the file holds objects other than tensors and plain containers, which could run code "
    "when loaded ({reason}). medfairx never writes such files; re-create it, and only use state files you trust."
)
CONTEXT_KEYS = ("task", "num_classes", "in_channels", "spatial_dims", "image_size", "backbone", "backbone_kwargs")


def save_state(method: Any, ctx: Any, path: Path) -> Path:
    """Atomically write a fitted ``method`` (and the context to rebuild it) to ``path``.

    Args:
        method: a fitted :class:`~medfairx.methods.base.Method` implementing ``state_dict``.
        ctx: the :class:`~medfairx.methods.base.RunContext` it was fitted with.
        path: the file (usually ``<run_dir>/state.pt``).
    """
    import torch

    from medfairx.store import atomic_write_bytes

    payload = {
        "format": STATE_FORMAT,
        "method": method.name or type(method).__name__,
        "params": method.get_params(),
        "context": {k: getattr(ctx, k) for k in CONTEXT_KEYS},
        "method_state": method.state_dict(),
    }
    payload["context"]["image_size"] = list(payload["context"]["image_size"])
    payload["context"]["backbone_kwargs"] = dict(payload["context"]["backbone_kwargs"])
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def state_path(source: Path) -> Path:
    """``source`` itself if it is a file, else ``source/state.pt`` (a run folder).

    Raises:
        ConfigError: no state file there.
    """
    source = Path(source)
    path = source if source.is_file() else source / STATE_FILE
    if not path.is_file():
        raise ConfigError(
            f"No {STATE_FILE} at {str(source)!r}: the run store does not save weights by default. Train the "
            "model inside the command (method:<name>) or re-run the bench with state saving enabled."
        )
    return path


def read_state_file(path: Path) -> Any:
    """The payload of a state file, unpickled with ``weights_only=True``: tensors, arrays, plain containers.

    Nothing in the file can run code while it is read; a file holding any other object is refused.

    Raises:
        ConfigError: the file is not a readable, weights-only state file.
    """
    from medfairx.fileio import load_weights_only

    try:
        return load_weights_only(path)
    except pickle.UnpicklingError as exc:
        found = re.search(r"WeightsUnpickler error: (.*?)(?: was not an allowed| Please|$)", str(exc), re.M)
        reason = found.group(1).strip().rstrip(".") if found else "not a weights-only file"
        raise ConfigError(UNSAFE_STATE.format(path=path, reason=reason[:200])) from None
    except (OSError, RuntimeError, ValueError, EOFError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{path}: cannot read this state file ({first[:200]}). Re-create it (re-run the "
                          "bench with state saving, or train the model inside the command).") from None


def load_state(source: Path, host: Any = None, *, device: str = "cpu") -> tuple[Any, Any]:
    """Rebuild a fitted method from ``state.pt`` (a file or a run folder).

    Args:
        source: the file or the run folder holding it.
        host: plugin host (default :func:`medfairx.plugins.get_host`).
        device: where to put the network.

    Returns:
        ``(method, ctx)``: the fitted method and a :class:`RunContext` matching its network.
    """
    from medfairx.methods.base import RunContext

    path = state_path(source)
    payload = read_state_file(path)
    if not isinstance(payload, dict) or payload.get("format") != STATE_FORMAT:
        raise ConfigError(f"{path}: not a medfairx state file (format {STATE_FORMAT}).")
    if host is None:
        from medfairx.plugins import get_host

        host = get_host()
    c = payload["context"]
    ctx = RunContext(
        task=c["task"], num_classes=int(c["num_classes"]), in_channels=int(c["in_channels"]),
        spatial_dims=int(c["spatial_dims"]), image_size=tuple(c["image_size"]), backbone=c["backbone"],
        backbone_kwargs=dict(c.get("backbone_kwargs") or {}), device=device, log=lambda s: None,
    )
    cls = host.registry("methods").get(payload["method"]).load()
    method = cls(**payload.get("params", {})).load_state_dict(payload["method_state"], ctx)
    return method, ctx


def fit_and_save(
    method_name: str,
    dataset: Any,
    grouping: str | None,
    path: Path,
    *,
    host: Any = None,
    params: dict[str, Any] | None = None,
    recipe: dict[str, Any] | None = None,
    backbone: str = "tiny_cnn",
    seed: int = 0,
    device: str = "auto",
    log: Any = None,
) -> tuple[Any, Any]:
    """Fit a registered method on a dataset's train split (selection on val) and save it.

    Groups are handed over only when the method's tags allow; no test data is read. A
    ``path`` that already holds a state file is loaded instead of retrained.

    Returns:
        ``(method, ctx)`` as :func:`load_state` returns them.
    """
    from medfairx.contracts import TrainRecipe
    from medfairx.methods.base import RunContext
    from medfairx.methods.device import resolve_device

    if host is None:
        from medfairx.plugins import get_host

        host = get_host()
    path = Path(path)
    if path.is_file():
        return load_state(path, host, device=str(resolve_device(device)))
    spec = host.registry("methods").get(method_name)
    g_fit = grouping if spec.tags.uses_groups_in_fit else None
    train, val = dataset.task_data("train", g_fit), dataset.task_data("val", g_fit)
    card = dataset.card
    ctx = RunContext(
        task=card.task, num_classes=card.num_classes, in_channels=int(train.images.shape[1]),
        spatial_dims=card.spatial_dims, image_size=tuple(train.images.shape[2:]), seed=int(seed),
        device=str(resolve_device(device)), backbone=backbone, recipe=TrainRecipe().updated(**(recipe or {})),
        log=log or (lambda s: None),
    )
    method = spec.load()(**(params or {}))
    method.fit(train, val, ctx)
    save_state(method, ctx, path)
    return method, ctx
