"""Whether the SAM / MedSAM adapters can run here, and why not (no torch import).

The adapters need the optional ``segment-anything`` package (``pip install
'medfairx-foundation[sam]'``) and a checkpoint file that the user supplies: the method
parameter ``checkpoint=PATH`` or, as a machine-wide default, the environment variable
named in :data:`CHECKPOINT_ENV`. Nothing is ever downloaded. A method that cannot run is
still registered with ``MethodSpec.unavailable`` set to the reason (the planner skips it and
``medfairx list methods`` shows it), and ``fit``
raises :class:`MethodUnavailableError` with the same reason.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from medfairx.errors import ConfigError

SAM_PACKAGE = "segment_anything"
INSTALL_HINT = "pip install 'medfairx-foundation[sam]' (or: pip install segment-anything)"
CHECKPOINT_ENV: dict[str, str] = {"sam": "MEDFAIRX_SAM_CHECKPOINT", "medsam": "MEDFAIRX_MEDSAM_CHECKPOINT"}
WEIGHTS_HINT: dict[str, str] = {
    "sam": "the official SAM checkpoints, e.g. sam_vit_b_01ec64.pth (facebookresearch/segment-anything)",
    "medsam": "the MedSAM checkpoint medsam_vit_b.pth (bowang-lab/MedSAM)",
}


class MethodUnavailableError(ConfigError):
    """A registered method cannot run on this machine (missing package or checkpoint)."""


def package_missing_reason() -> str | None:
    """Why ``segment_anything`` cannot be imported, or ``None`` if it is installed."""
    if importlib.util.find_spec(SAM_PACKAGE) is None:
        return f"the optional package segment-anything is not installed; {INSTALL_HINT}"
    return None


def resolve_checkpoint(variant: str, checkpoint: str | os.PathLike[str] | None) -> Path | None:
    """The checkpoint path: the parameter, else the environment variable, else ``None``."""
    value = checkpoint if checkpoint not in (None, "") else os.environ.get(CHECKPOINT_ENV[variant], "")
    return Path(value).expanduser() if value else None


def unavailable_reason(variant: str, checkpoint: str | os.PathLike[str] | None = None) -> str | None:
    """Why the ``variant`` adapter ("sam" or "medsam") cannot run, or ``None`` if it can."""
    missing = package_missing_reason()
    if missing:
        return missing
    path = resolve_checkpoint(variant, checkpoint)
    if path is None:
        return (
            f"no checkpoint configured; pass checkpoint=PATH (method params) or set {CHECKPOINT_ENV[variant]} "
            f"to a local copy of {WEIGHTS_HINT[variant]}; weights are never downloaded"
        )
    if not path.is_file():
        return f"checkpoint {str(path)!r} does not exist or is not a file"
    return None


def require_available(variant: str, checkpoint: str | os.PathLike[str] | None) -> Path:
    """The checkpoint path, or raise :class:`MethodUnavailableError` with the reason."""
    reason = unavailable_reason(variant, checkpoint)
    if reason:
        raise MethodUnavailableError(f"Method {variant!r} is unavailable: {reason}.")
    path = resolve_checkpoint(variant, checkpoint)
    assert path is not None
    return path

