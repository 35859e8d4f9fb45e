"""Speed of SPARE's stage-1 weights: active-sample Adam search against the full-batch loop.

SPARE's fixed sample weights ``w = exp(−(α·δ^u + (1−α)·δ^s))`` need one minimal-perturbation
search per training sample and target group (:func:`medfairx_spare.weights.spare_weights`).
The Adam solver runs the model, at every step, on the samples whose decision has not changed
yet only (``active_only=True``; never on fewer than 16 rows, below which PyTorch's CPU
convolutions round differently); the reference is the earlier loop, kept callable with
``active_only=False``: every search batch is optimised as a whole until its last sample has
changed or the step budget is spent.

The models are the ones SPARE builds on the embedded ``synthetic_cls`` data (``tiny_cnn`` at
32 px): one reference model per age group (trained on that group) and a group predictor,
each trained for a few epochs. Both paths compute the weights of every group from the same
models in the same process (alternating, ``--repeats`` times; medians are printed) and the
largest absolute difference of the weights and distances is printed (expected 0). Wall and
process CPU seconds are both printed (CPU time is the steadier one on a shared machine).
Nothing is asserted.

Usage::

    python perf/spare_weights.py                          # 600 samples, 20 Adam steps
    python perf/spare_weights.py --steps 100 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from medfairx.contracts import TaskData
from medfairx.data.synthetic import SyntheticOptions, generate
from medfairx.methods import predict_proba, seed_everything
from medfairx.methods.backbones import build_backbone
from medfairx.methods.trainable import train_model
from medfairx.testing import make_cpu_run_context
from medfairx_spare.weights import SpareWeights, spare_weights


def make_data(n: int, seed: int) -> TaskData:
    """The embedded ``synthetic_cls`` images with age groups (0: age <= 60, 1: > 60)."""
    meta, images, _ = generate(SyntheticOptions(seed=seed, n_samples=n), "classification", (32, 32))
    return TaskData(
        images=images,
        labels=meta["label"].to_numpy().astype(np.int64),
        groups=(meta["age"].to_numpy() > 60).astype(np.int64),
        sample_ids=np.arange(n).astype(str),
    )


def trained(data: TaskData, val: TaskData, epochs: int, num_classes: int = 2) -> nn.Module:
    """A ``tiny_cnn`` trained with the framework loop."""
    ctx = make_cpu_run_context(epochs=epochs, batch_size=32, num_classes=num_classes)
    model = build_backbone("tiny_cnn", in_channels=1, num_classes=num_classes, spatial_dims=2, task="classification")
    train_model(model, data, val, ctx, deployed=False)
    return model


def all_weights(refs: dict[int, nn.Module], gpred: nn.Module, data: TaskData, *, active_only: bool,
                batch_size: int, solver: dict[str, float | int | str]
                ) -> tuple[dict[int, SpareWeights], tuple[float, float]]:
    """Every group's :class:`SpareWeights` (as SPARE's stage 1 computes them), wall and CPU seconds."""
    start, cpu = time.perf_counter(), time.process_time()
    pred_g = predict_proba(gpred, data.without_labels(), batch_size=batch_size, amp=False).argmax(1)
    out = {
        t: spare_weights(ref, gpred, data.images, t, predicted_groups=pred_g, batch_size=batch_size,
                         active_only=active_only, **solver)
        for t, ref in refs.items()
    }
    return out, (time.perf_counter() - start, time.process_time() - cpu)


def max_diff(a: dict[int, SpareWeights], b: dict[int, SpareWeights]) -> float:
    """Largest absolute difference of weights and distances."""
    return max(
        float(np.max(np.abs(getattr(a[t], f) - getattr(b[t], f))))
        for t in a for f in ("weights", "delta_u", "delta_s")
    )


def main() -> None:
    """Parse arguments, train the models, time both paths, print the ratio."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-train", type=int, default=600)
    ap.add_argument("--steps", type=int, default=20, help="Adam steps (the default suite uses 20)")
    ap.add_argument("--batch-size", type=int, default=128, help="perturb_batch_size")
    ap.add_argument("--epochs", type=int, default=3, help="epochs of every model")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    seed_everything(0)
    train, val = make_data(args.n_train, 0), make_data(max(args.n_train // 3, 20), 1)
    refs = {}
    for t in (0, 1):
        tr, va = train.subset(train.groups == t), val.subset(val.groups == t)
        refs[t] = trained(tr, va, args.epochs)
    gpred = trained(replace(train, labels=train.groups, groups=None), replace(val, labels=val.groups, groups=None),
                    args.epochs)
    solver = {"method": "adam", "beta": 100.0, "lr": 0.01, "steps": args.steps}
    times: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    results: dict[bool, dict[int, SpareWeights]] = {}
    for _ in range(args.repeats):
        for active_only in (False, True):
            results[active_only], sec = all_weights(refs, gpred, train, active_only=active_only,
                                                    batch_size=args.batch_size, solver=solver)
            times[active_only].append(sec)
    (old, old_cpu), (new, new_cpu) = ([statistics.median(t[i] for t in times[k]) for i in (0, 1)] for k in (False, True))
    print(f"SPARE stage-1 weights: {args.n_train} samples, 2 groups, {args.steps} Adam steps, "
          f"batch {args.batch_size}, {args.threads} thread(s)")
    print(f"  full-batch loop (reference): {old:8.2f} s wall {old_cpu:8.2f} s CPU")
    print(f"  active samples only:         {new:8.2f} s wall {new_cpu:8.2f} s CPU")
    print(f"  ratio: {old / new:.2f}x wall, {old_cpu / new_cpu:.2f}x CPU; "
          f"max |diff| of weights and distances: {max_diff(results[False], results[True]):.3g}")


if __name__ == "__main__":
    main()
