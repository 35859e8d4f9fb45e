"""Overhead of the medfairx training loop against a plain PyTorch loop.

Trains the same backbone (same initial weights, data, device, batch size, optimiser and
epochs) with :func:`medfairx.methods.trainable.train_model` (what ERM's ``fit`` runs) and
with a hand-written loop, and prints training images per second of both and their ratio.

Both loops do the same work per epoch: a seeded shuffle, uint8 → float normalisation on the
device, forward, cross-entropy, backward, Adam step, then one no-grad pass over the
validation images (the framework also scores it, checks losses for NaN and keeps the best
checkpoint: that is the overhead measured). Augmentation is off in both, so the ratio
measures the loop, not the flips. On CUDA both use the same autocast dtype and
``channels_last``.

Each configuration is warmed up once, then measured ``--repeats`` times alternating the two
loops; medians are printed. Nothing is asserted: the target is ratio >= 0.95.

Usage::

    python perf/train_overhead.py                    # tiny_cnn at 32 px and resnet18 at 64 px
    python perf/train_overhead.py --device cuda --n-train 8192 --repeats 5
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medfairx.contracts import TaskData, TrainRecipe
from medfairx.methods.backbones import build_backbone
from medfairx.methods.base import RunContext
from medfairx.methods.trainable import train_model


@dataclass(frozen=True)
class Config:
    """One benchmark configuration."""

    backbone: str
    size: int
    n_train: int
    n_val: int
    batch_size: int
    epochs: int


def make_data(n: int, size: int, seed: int) -> TaskData:
    """Random uint8 RGB images with a learnable label (bright centre = class 1)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n).astype(np.int64)
    images = rng.integers(0, 200, (n, 3, size, size), dtype=np.uint8)
    c = slice(size // 4, 3 * size // 4)
    images[labels == 1, :, c, c] = np.minimum(images[labels == 1, :, c, c].astype(np.int32) + 55, 255).astype(np.uint8)
    return TaskData(images=images, labels=labels, groups=None, sample_ids=np.arange(n).astype(str))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device) -> tuple[bool, torch.dtype]:
    if device.type != "cuda":
        return False, torch.float32
    return True, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@dataclass(frozen=True)
class Timing:
    """Training images processed, wall seconds and CPU seconds of this process."""

    images: int
    wall_s: float
    cpu_s: float


class _Clock:
    """Wall and process CPU time (CPU time is robust to other processes on a busy machine)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        _sync(device)
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def stop(self, images: int) -> Timing:
        _sync(self.device)
        return Timing(images, time.perf_counter() - self.wall, time.process_time() - self.cpu)


def plain_loop(model: nn.Module, train: TaskData, val: TaskData, cfg: Config, device: torch.device, seed: int) -> Timing:
    """A hand-written training loop."""
    use_amp, dtype = _autocast(device)
    channels_last = device.type == "cuda"
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    scaler = torch.amp.GradScaler("cuda") if use_amp and dtype == torch.float16 else None
    if device.type == "cuda":  # the whole split lives on the GPU, as the framework does when it fits
        x_all, y_all = torch.from_numpy(train.images).to(device), torch.from_numpy(train.labels).to(device)
        xv_all = torch.from_numpy(val.images).to(device)
    else:
        x_all, y_all, xv_all = torch.from_numpy(train.images), torch.from_numpy(train.labels), torch.from_numpy(val.images)

    def prep(x: torch.Tensor) -> torch.Tensor:
        x = (x.to(device, non_blocking=True).float() / 255.0 - 0.5) / 0.25
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x

    clock = _Clock(device)
    seen = 0
    for epoch in range(cfg.epochs):
        model.train()
        order = np.random.default_rng([seed, epoch]).permutation(len(train))
        for start in range(0, len(order), cfg.batch_size):
            idx = torch.from_numpy(order[start:start + cfg.batch_size])
            if device.type == "cuda":
                idx = idx.to(device, non_blocking=True)
            x, y = prep(x_all[idx]), y_all[idx].to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=dtype, enabled=use_amp):
                loss = F.cross_entropy(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            seen += len(idx)
        model.eval()
        with torch.inference_mode():
            for start in range(0, len(val), 2 * cfg.batch_size):
                with torch.autocast(device.type, dtype=dtype, enabled=use_amp):
                    model(prep(xv_all[start:start + 2 * cfg.batch_size]))
    return clock.stop(seen)


def framework_loop(model: nn.Module, train: TaskData, val: TaskData, cfg: Config, device: torch.device, seed: int) -> Timing:
    """medfairx's :func:`train_model` with the same settings."""
    recipe = TrainRecipe(
        epochs=cfg.epochs, batch_size=cfg.batch_size, optimizer="adam", lr=1e-3, weight_decay=1e-4,
        scheduler="none", patience=0, augment=False,
    )
    ctx = RunContext(
        task="classification", num_classes=2, in_channels=3, image_size=(cfg.size, cfg.size), seed=seed,
        device=str(device), backbone=cfg.backbone, recipe=recipe, log=lambda _line: None,
    )
    clock = _Clock(device)
    res = train_model(model, train, val, ctx, recipe=recipe, name="erm")
    return clock.stop(res.train_images)


def measure(cfg: Config, device: torch.device, repeats: int) -> dict[str, dict[str, float]]:
    """Median images per wall second and per CPU second of both loops, after a warm-up."""
    train, val = make_data(cfg.n_train, cfg.size, 0), make_data(cfg.n_val, cfg.size, 1)
    torch.manual_seed(0)
    base = build_backbone(cfg.backbone, in_channels=3, num_classes=2, spatial_dims=2, task="classification")
    runs = {"framework": framework_loop, "plain": plain_loop}
    for fn in runs.values():  # warm-up (allocator, cuDNN autotune, first-call costs)
        fn(copy.deepcopy(base), train, val, cfg, device, 0)
    timings: dict[str, list[Timing]] = {k: [] for k in runs}
    for r in range(repeats):
        order = list(runs) if r % 2 == 0 else list(reversed(runs))
        for name in order:
            timings[name].append(runs[name](copy.deepcopy(base), train, val, cfg, device, 0))
    return {
        name: {
            "wall": statistics.median(t.images / t.wall_s for t in ts),
            "cpu": statistics.median(t.images / t.cpu_s for t in ts),
        }
        for name, ts in timings.items()
    }


def main() -> None:
    """Parse arguments, run every configuration, print a table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--n-train", type=int, default=None, help="training images (default per backbone)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--only", choices=["tiny_cnn", "resnet18"], default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cpu = device.type == "cpu"
    configs = [
        Config("tiny_cnn", 32, args.n_train or (1024 if cpu else 16384), 128, args.batch_size, args.epochs),
        Config("resnet18", 64, args.n_train or (256 if cpu else 8192), 64, args.batch_size, args.epochs),
    ]
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"repeats {args.repeats} (median), epochs {args.epochs}, batch {args.batch_size}")
    print(f"{'backbone':<10} {'px':>4} {'n_train':>8} {'clock':>5} {'framework img/s':>16} {'plain img/s':>12} {'ratio':>7}")
    for cfg in configs:
        if args.only and cfg.backbone != args.only:
            continue
        res = measure(cfg, device, args.repeats)
        for clock in ("wall", "cpu"):
            fw, plain = res["framework"][clock], res["plain"][clock]
            print(f"{cfg.backbone:<10} {cfg.size:>4} {cfg.n_train:>8} {clock:>5} {fw:>16.1f} {plain:>12.1f} {fw / plain:>7.3f}")
    print("ratio = framework / plain throughput (target >= 0.95); 'cpu' divides by this process's CPU "
          "time, which other processes on a busy machine do not inflate (on CUDA read 'wall')")


if __name__ == "__main__":
    main()
