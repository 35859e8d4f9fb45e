"""Device, precision and data-transfer helpers for the training loop.

Everything here is small and stateless except :class:`ArraySource`, which holds one split's
arrays as torch tensors where the loop can index them cheaply:

* on CPU (and other non-CUDA devices) the numpy arrays are indexed directly (fancy
  indexing copies one batch) and the batch is moved to the device;
* on CUDA the whole split is copied to GPU memory once when it fits in
  ``resident_fraction`` of the free memory, otherwise it is pinned on the host and every
  batch travels with ``non_blocking=True``.

``uint8`` images are converted on the device: ``x / 255`` then normalised per channel with
mean 0.5 and std 0.25 (``(x/255 - 0.5) / 0.25``); ``float`` images are used as they are.

Shared by core (training loop, runner, analysis) and the plugins medfairx-baselines,
medfairx-fairdi, medfairx-foundation, medfairx-qpnet and medfairx-spare.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from medfairx.errors import ConfigError

#: Normalisation applied to ``uint8`` images after scaling to [0, 1].
UINT8_MEAN = 0.5
UINT8_STD = 0.25


def resolve_device(device: str | torch.device) -> torch.device:
    """Turn a device string into a :class:`torch.device`.

    Args:
        device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``,
            ``"cuda:N"`` or ``"mps"``.

    Returns:
        The resolved device.

    Raises:
        ConfigError: the device is malformed or not available on this machine.
    """
    if isinstance(device, torch.device):
        return device
    name = (device or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(
            f"Invalid device {device!r} ({exc}). Use 'auto', 'cpu', 'cuda' or 'cuda:N'."
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"Device {device!r} was requested but torch {torch.__version__} sees no CUDA "
                "GPU. Use device 'auto' or 'cpu', or install a CUDA build of torch."
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(
                f"Device {device!r} does not exist: {torch.cuda.device_count()} CUDA device(s) "
                "are visible. Use 'cuda' or a smaller index."
            )
    elif dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"Device {device!r} was requested but MPS is not available. Use 'auto' or 'cpu'.")
    return dev


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices) from one integer."""
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


@dataclass(frozen=True)
class AmpConfig:
    """Mixed-precision settings for one device.

    Attributes:
        enabled: whether autocast is active.
        dtype: the autocast dtype (``bfloat16`` when the GPU supports it, else ``float16``).
        use_scaler: whether a :class:`torch.amp.GradScaler` is needed (``float16`` only).
        device_type: ``"cuda"`` or ``"cpu"``.
    """

    enabled: bool
    dtype: torch.dtype
    use_scaler: bool
    device_type: str

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        """The autocast context for a forward pass (a no-op when disabled)."""
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        """A fresh gradient scaler when ``float16`` autocast is used, else ``None``."""
        return torch.amp.GradScaler(self.device_type) if self.use_scaler else None


def amp_config(device: torch.device, enabled: bool = True) -> AmpConfig:
    """Choose mixed precision for ``device``: CUDA only, bf16 if supported else fp16.

    Args:
        device: the training device.
        enabled: the run's ``ctx.amp`` switch; CPU never uses AMP.
    """
    if device.type != "cuda" or not enabled:
        return AmpConfig(False, torch.float32, False, device.type)
    if torch.cuda.is_bf16_supported():
        return AmpConfig(True, torch.bfloat16, False, "cuda")
    return AmpConfig(True, torch.float16, True, "cuda")


def use_channels_last(device: torch.device, spatial_dims: int) -> bool:
    """``channels_last`` pays off for 2D convolutions on CUDA only."""
    return device.type == "cuda" and spatial_dims == 2


def images_to_float(x: torch.Tensor) -> torch.Tensor:
    """Convert a batch of images on its device: ``uint8`` → scaled and normalised float32.

    ``(x / 255 - 0.5) / 0.25`` for ``uint8``; other dtypes are cast to float32 unchanged.
    """
    if x.dtype == torch.uint8:
        scale = 1.0 / (255.0 * UINT8_STD)
        return x.to(torch.float32).mul_(scale).sub_(UINT8_MEAN / UINT8_STD)
    return x.to(torch.float32)


def _try_pin(t: torch.Tensor) -> torch.Tensor:
    """Page-lock ``t`` for asynchronous copies; fall back to pageable memory if that fails."""
    try:
        return t.pin_memory()
    except RuntimeError:
        return t


class ArraySource:
    """One split's arrays, ready to be gathered into device batches by index.

    Args:
        images: ``(N, C, *spatial)`` numpy array (``uint8`` or float).
        device: where batches must end up.
        labels: optional ``(N,)`` or ``(N, *spatial)`` integer array.
        groups: optional ``(N,)`` integer array.
        channels_last: return 4-D image batches in ``channels_last`` memory format.
        resident_fraction: on CUDA, copy the split to GPU memory once if its size is below
            this fraction of the free GPU memory.
    """

    def __init__(
        self,
        images: np.ndarray,
        device: torch.device,
        *,
        labels: np.ndarray | None = None,
        groups: np.ndarray | None = None,
        channels_last: bool = False,
        resident_fraction: float = 0.3,
    ) -> None:
        self.device = device
        self.channels_last = channels_last
        self.n = int(images.shape[0])
        self._cuda = device.type == "cuda"
        arrays = {"images": images, "labels": labels, "groups": groups}
        self._np: dict[str, np.ndarray | None] = {}
        self._t: dict[str, torch.Tensor | None] = {}
        self.resident = False
        self.has_labels = labels is not None
        self.has_groups = groups is not None
        if not self._cuda:
            for k, a in arrays.items():
                self._np[k] = None if a is None else np.asarray(a)
            return
        nbytes = sum(int(np.asarray(a).nbytes) for a in arrays.values() if a is not None)
        free, _ = torch.cuda.mem_get_info(device)
        self.resident = nbytes <= resident_fraction * free
        for k, a in arrays.items():
            if a is None:
                self._t[k] = None
                continue
            a = np.asarray(a)
            a = np.ascontiguousarray(a) if a.flags.writeable else np.array(a, copy=True)
            t = torch.from_numpy(a)
            self._t[k] = t.to(device) if self.resident else _try_pin(t)

    def __len__(self) -> int:
        return self.n

    def _take(self, key: str, index: np.ndarray) -> torch.Tensor | None:
        if not self._cuda:
            a = self._np[key]
            if a is None:
                return None
            host = torch.from_numpy(np.ascontiguousarray(a[index])).to(self.device)
            return host if key == "images" else host.long()
        t = self._t[key]
        if t is None:
            return None
        if self.resident:
            out = t.index_select(0, torch.from_numpy(index).to(self.device, non_blocking=True))
        else:
            out = _try_pin(t[torch.from_numpy(index)]).to(self.device, non_blocking=True)
        return out if key == "images" else out.long()

    def gather(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Images (float, normalised), labels and groups of rows ``index`` on the device."""
        index = np.asarray(index, dtype=np.int64)
        images = self._take("images", index)
        assert images is not None  # images are never None (only labels and groups may be)
        x = images_to_float(images.to(self.device, non_blocking=True))
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, self._take("labels", index), self._take("groups", index)

    def sequential_batches(self, batch_size: int) -> Iterator[np.ndarray]:
        """Index arrays covering ``0..N-1`` in order (for evaluation)."""
        for start in range(0, self.n, batch_size):
            yield np.arange(start, min(start + batch_size, self.n), dtype=np.int64)
