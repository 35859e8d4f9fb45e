"""GPU utilisation and throughput of ERM training on real HAM10000 images.

Loads HAM10000 through the platform (``ham10000`` adapter, HDF5 cache) at ``--size`` px,
trains ERM (:func:`medfairx.methods.trainable.train_model`, what ``medfairx bench`` runs)
with ``--backbone`` for ``--epochs`` epochs, with mixed precision (bf16 where the GPU
supports it, else fp16) and in fp32, for each ``--batch-size`` (and with ``torch.compile``
when ``--compile`` is given), each after a 2-epoch warm-up of the same configuration (cuDNN
autotuning, compilation), and prints for each: training images per second
over the whole ``train_model`` call (validation passes and checkpointing included, as
``TrainResult.images_per_second`` counts them), its wall seconds, and the share of that
wall time the GPU was busy (NVML's utilisation, sampled every 50 ms in a background thread). The
target of the issue is >= 90% busy (data loading never the bottleneck) and the bf16 speed-up
is printed as the ratio of the two throughputs measured in the same run.

Needs CUDA and NVML (``nvidia-ml-py``); prints what is missing otherwise. Nothing is asserted.

Usage::

    python perf/gpu_utilisation.py --data ../shared/data/ham10000 --size 224 --backbone resnet18
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

CATALOGUE = """
version: 1
datasets:
  ham10000:
    adapter: ham10000
    root: {root}
    task: classification
    label: {{column: dx, positive: [mel, bcc, akiec]}}
    image_size: {size}
    split: {{train: 0.6, val: 0.2, test: 0.2, seed: 0}}
    options: {{metadata: HAM10000_metadata.csv, missing_images: skip}}
    groupings:
      sex: {{column: sex, map: {{male: male, female: female}}}}
"""


class UtilisationSampler:
    """Samples NVML GPU utilisation (percent busy over the last sample period) in a thread."""

    def __init__(self, index: int = 0, period_s: float = 0.05) -> None:
        import pynvml

        pynvml.nvmlInit()
        self._nvml = pynvml
        self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        self.period_s = period_s
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append(int(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu))
            time.sleep(self.period_s)

    def __enter__(self) -> UtilisationSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    """Load the data, train with and without mixed precision, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="HAM10000 folder (HAM10000_metadata.csv, images/)")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, nargs="+", default=[128])
    ap.add_argument("--compile", action="store_true", help="also measure with torch.compile")
    ap.add_argument("--cache", default=None, help="HDF5 cache folder (default: a temporary one)")
    args = ap.parse_args()

    import torch

    if not torch.cuda.is_available():
        raise SystemExit("CUDA is not available: this script measures a GPU.")
    from medfairx.contracts import TrainRecipe
    from medfairx.data import load_dataset
    from medfairx.methods.backbones import build_backbone
    from medfairx.methods.base import RunContext
    from medfairx.methods.trainable import train_model

    with tempfile.TemporaryDirectory() as tmp:
        cat = Path(tmp) / "datasets.yaml"
        cat.write_text(CATALOGUE.format(root=Path(args.data).resolve(), size=args.size))
        t0 = time.perf_counter()
        ds = load_dataset(cat, "ham10000", cache_dir=args.cache or Path(tmp) / "cache")
        load_s = time.perf_counter() - t0
        train, val = ds.task_data("train"), ds.task_data("val")
    print(f"HAM10000: {len(ds)} images at {args.size} px ({len(train)} train, {len(val)} val), "
          f"loaded in {load_s:.1f}s; {torch.cuda.get_device_name()} torch {torch.__version__}")

    configs = [(amp, bs, comp) for comp in ([False, True] if args.compile else [False])
               for bs in args.batch_size for amp in (True, False)]
    rows = []
    for amp, bs, comp in configs:
        label = f"{'mixed' if amp else 'fp32'} batch {bs}{' compiled' if comp else ''}"
        for epochs in (2, args.epochs):  # the first call warms cuDNN's autotuner (and compiles)
            recipe = TrainRecipe(epochs=epochs, batch_size=bs, lr=1e-3, scheduler="none", patience=0)
            torch.manual_seed(0)
            model = build_backbone(args.backbone, in_channels=3, num_classes=2, spatial_dims=2, task="classification")
            ctx = RunContext(task="classification", num_classes=2, in_channels=3, image_size=(args.size, args.size),
                             device="cuda", backbone=args.backbone, recipe=recipe, amp=amp, compile=comp,
                             log=lambda _l: None)
            torch.cuda.synchronize()
            with UtilisationSampler() as util:
                t0 = time.perf_counter()
                res = train_model(model, train, val, ctx, recipe=recipe, name="erm")
                torch.cuda.synchronize()
                wall = time.perf_counter() - t0
            del model
            torch.cuda.empty_cache()
        busy = statistics.mean(util.samples[2:]) if len(util.samples) > 4 else float("nan")
        rows.append((label, amp, bs, comp, res.images_per_second, busy))
        print(f"{label:28s} {res.images_per_second:7.0f} train img/s  {wall:6.1f}s wall  GPU busy {busy:5.1f}% "
              f"({len(util.samples)} samples)", flush=True)

    print("\nmixed-precision speed-up (same batch size, same run):")
    for bs in args.batch_size:
        for comp in sorted({r[3] for r in rows}):
            mixed = [r[4] for r in rows if r[1] and r[2] == bs and r[3] == comp]
            fp32 = [r[4] for r in rows if not r[1] and r[2] == bs and r[3] == comp]
            if mixed and fp32:
                print(f"  batch {bs}{' compiled' if comp else ''}: {mixed[0] / fp32[0]:.2f}x")


if __name__ == "__main__":
    main()
