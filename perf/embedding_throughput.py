"""Frozen-encoder embedding throughput, and a head-training run against a 32-px ``tiny_cnn`` run.

Usage (from the repository root)::

    PYTHONPATH=. python perf/embedding_throughput.py [--images 512] [--naive 128] [--batch-size 64]

Data: the first ``--images`` real HAM10000 photos (``$MEDFAIRX_DATA/ham10000`` or
``../shared/data/ham10000``), preprocessed once the encoder's way (224 x 224, bicubic). In one
process, on the same encoder (EfficientNet-Lite0, ImageNet weights) and the same images:

1. batched embedding (``torch.inference_mode``, ``channels_last``, ``--batch-size``) in images/s;
2. a naive loop (one image per forward, ``torch.no_grad``, default memory format) on the first
   ``--naive`` images, and the ratio batched / naive;
3. one ERM run with a ``linear`` head on the 1280-d features against one ERM run of
   ``tiny_cnn`` on the same images at 32 px (same split, recipe: 5 epochs, batch 64).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from medfairx.contracts import TaskData
from medfairx.methods.backbones import build_backbone
from medfairx.methods.device import images_to_float
from medfairx.methods.embedding import encode_images
from medfairx.methods.encoders import LITE0_PREPROCESSING, preprocess_image
from medfairx.testing.toy import make_cpu_run_context


def ham_dir() -> Path:
    """``$MEDFAIRX_DATA/ham10000`` or ``../shared/data/ham10000``."""
    base = os.environ.get("MEDFAIRX_DATA") or str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
    return Path(base) / "ham10000"


def load_images(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(images 224, images 32, labels)`` of the first ``n`` HAM10000 photos (malignant = mel, bcc, akiec)."""
    root = ham_dir()
    meta = pd.read_csv(root / "HAM10000_metadata.csv").set_index("image_id")
    files = sorted((root / "images").glob("*.jpg"))[:n]
    big, small = [], []
    for f in files:
        photo = np.asarray(Image.open(f).convert("RGB"))
        big.append(preprocess_image(photo, LITE0_PREPROCESSING))
        small.append(np.asarray(Image.fromarray(photo).resize((32, 32), Image.Resampling.BILINEAR)).transpose(2, 0, 1))
    labels = meta.loc[[f.stem for f in files], "dx"].isin(["mel", "bcc", "akiec"]).to_numpy(np.int64)
    return np.stack(big), np.stack(small), labels


def naive_embed(encoder: torch.nn.Module, images: np.ndarray) -> tuple[np.ndarray, float]:
    """One image per forward pass, ``no_grad``, NCHW: what a first attempt looks like."""
    encoder = encoder.eval().to(memory_format=torch.contiguous_format)
    t0 = time.perf_counter()
    out = []
    with torch.no_grad():
        for img in images:
            out.append(encoder(images_to_float(torch.from_numpy(img[None]))).numpy())
    return np.concatenate(out), time.perf_counter() - t0


def one_run(x: np.ndarray, y: np.ndarray, backbone: str, epochs: int) -> float:
    """Seconds of one ERM fit + test prediction (60/20/20 split by position)."""
    from medfairx_baselines.erm import ERM

    n = len(y)
    cut = [int(0.6 * n), int(0.8 * n)]
    parts = np.split(np.arange(n), cut)
    data = [TaskData(images=x[p], labels=y[p], groups=None, sample_ids=np.array([str(i) for i in p])) for p in parts]
    ctx = make_cpu_run_context(backbone=backbone, in_channels=int(x.shape[1]), size=None, epochs=epochs,
                               batch_size=64, image_size=tuple(x.shape[2:]))
    t0 = time.perf_counter()
    method = ERM().fit(data[0], data[1], ctx)
    method.predict_scores(data[2].without_labels(), ctx)
    return time.perf_counter() - t0


def main() -> None:
    """Print images/s (batched, naive, ratio) and the two run times (and their ratio)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--naive", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    big, small, labels = load_images(args.images)
    net = build_backbone("efficientnet_lite0", in_channels=3, num_classes=2, spatial_dims=2)
    encode_images(net.encoder, lambda r: big[r], min(8, len(big)), input_size=(224, 224), interpolation="bicubic",
                  batch_size=8)  # warm-up
    t0 = time.perf_counter()
    feats = encode_images(net.encoder, lambda r: big[r], len(big), input_size=(224, 224), interpolation="bicubic",
                          batch_size=args.batch_size)
    batched = len(big) / (time.perf_counter() - t0)
    ref, naive_s = naive_embed(net.encoder, big[: args.naive])
    naive = len(ref) / naive_s
    diff = float(np.abs(ref - feats[: len(ref)]).max())
    print(f"embedding, {len(big)} HAM10000 images at 224 px: batched {batched:.1f} images/s, naive per-image "
          f"{naive:.1f} images/s ({len(ref)} images), ratio {batched / naive:.2f}x (max |diff| {diff:.1e})")
    head = one_run(feats, labels, "linear", args.epochs)
    tiny = one_run(small, labels, "tiny_cnn", args.epochs)
    print(f"one ERM run on {len(labels)} images, {args.epochs} epochs: linear head on 1280-d features {head:.2f} s, "
          f"tiny_cnn at 32 px {tiny:.2f} s, ratio tiny_cnn / head {tiny / head:.2f}x")
    print(f"extrapolated embedding time for 10,015 HAM10000 images (batched): {10015 / batched / 60:.1f} min")


if __name__ == "__main__":
    main()
