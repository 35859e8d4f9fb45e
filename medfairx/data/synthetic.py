"""Deterministic synthetic datasets with a known bias structure (numpy only, in memory).

Every sample belongs to a patient with attributes ``group`` (``majority`` / ``minority``,
imbalanced), ``site`` (3 levels, small intensity offsets) and numeric ``age`` (older
patients are positive more often). Known biases:

* **imbalance**: ``minority_fraction`` of patients are in the minority group;
* **appearance shift**: minority images have lower contrast (``minority_contrast``) and an
  intensity offset (``minority_shift``) under the same noise, so their signal is weaker;
* **hidden hard subset**: ``hard_fraction`` of minority patients (metadata ``hard=True``)
  have a much fainter signal (``hard_signal``) — for segmentation also extra noise.

Classification: positives carry a bright Gaussian blob; every image has dark distractor
blobs and a smooth background texture. Segmentation: one or two bright ellipses
(ellipsoids in 3D) whose union is the {0, 1} mask.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from medfairx.data.cache import cache_key
from medfairx.data.cards import CARDS
from medfairx.data.dataset import ArraySource, FairDataset, assemble
from medfairx.errors import ConfigError

if TYPE_CHECKING:
    from medfairx.config import DatasetConfig

GENERATOR_VERSION = 1
SITES = ("site_a", "site_b", "site_c")
SITE_OFFSET = (0.0, 0.05, -0.05)
BASE = 0.4


@dataclass(frozen=True)
class SyntheticOptions:
    """Generator knobs (``options:`` of a synthetic catalogue dataset)."""

    seed: int = 0
    n_samples: int = 1000
    spatial_dims: int = 2
    channels: int = 1
    minority_fraction: float = 0.25
    site_probs: tuple[float, float, float] = (0.5, 0.3, 0.2)
    positive_rate: float = 0.4
    signal: float = 1.0
    noise: float = 0.08
    minority_contrast: float = 0.6
    minority_shift: float = 0.12
    hard_fraction: float = 0.3
    hard_signal: float = 0.3
    repeat_fraction: float = 0.2

    @classmethod
    def from_config(cls, options: dict[str, Any], where: str) -> SyntheticOptions:
        """Validate an ``options`` mapping (unknown keys and bad values are ConfigErrors)."""
        allowed = [f.name for f in fields(cls)]
        unknown = [k for k in options if k not in allowed]
        if unknown:
            raise ConfigError(f"{where}: unknown option(s) {unknown}; allowed options: {', '.join(allowed)}.")
        kw = dict(options)
        if "site_probs" in kw:
            kw["site_probs"] = tuple(float(p) for p in kw["site_probs"])
        opts = cls(**kw)
        checks = {
            "n_samples >= 10": opts.n_samples >= 10,
            "spatial_dims in (2, 3)": opts.spatial_dims in (2, 3),
            "channels >= 1": opts.channels >= 1,
            "0 < minority_fraction < 1": 0 < opts.minority_fraction < 1,
            "site_probs: 3 values summing to 1": len(opts.site_probs) == 3 and abs(sum(opts.site_probs) - 1) < 1e-6,
            "0 < positive_rate < 1": 0 < opts.positive_rate < 1,
            "0 <= hard_fraction <= 1": 0 <= opts.hard_fraction <= 1,
            "0 <= repeat_fraction <= 1": 0 <= opts.repeat_fraction <= 1,
            "noise >= 0": opts.noise >= 0,
        }
        bad = [rule for rule, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"{where}: invalid option value(s); required: {', '.join(bad)}.")
        return opts


def _patients(opts: SyntheticOptions, rng: np.random.Generator) -> pd.DataFrame:
    """One row per sample: patient id and the patient's attributes."""
    n = opts.n_samples
    n_patients = int(np.ceil(n / (1 + opts.repeat_fraction)))
    counts = np.ones(n_patients, dtype=int)
    counts[rng.permutation(n_patients)[: n - n_patients]] += 1
    minority = rng.random(n_patients) < opts.minority_fraction
    hard = minority & (rng.random(n_patients) < opts.hard_fraction)
    site = rng.choice(len(SITES), size=n_patients, p=list(opts.site_probs))
    age = np.clip(np.round(rng.normal(55, 15, n_patients)), 18, 90).astype(int)
    per = pd.DataFrame(
        {
            "patient_id": [f"p{k:05d}" for k in range(n_patients)],
            "group": np.where(minority, "minority", "majority"),
            "site": np.asarray(SITES)[site],
            "age": age,
            "hard": hard,
        }
    )
    rows: pd.DataFrame = per.loc[np.repeat(np.arange(n_patients), counts)].reset_index(drop=True)
    rows.index = pd.Index([f"syn{i:05d}" for i in range(n)], name="sample_id")
    return rows


def _grid(size: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    return np.meshgrid(*[np.arange(s, dtype=np.float32) for s in size], indexing="ij")


def _blob(grid: tuple[np.ndarray, ...], center: np.ndarray, sigma: float) -> np.ndarray:
    d2 = sum((g - c) ** 2 for g, c in zip(grid, center, strict=False))
    result: np.ndarray = np.exp(-d2 / (2 * sigma**2))
    return result


def _ellipse(grid: tuple[np.ndarray, ...], center: np.ndarray, radii: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Boolean ellipse (2D: rotated) or axis-aligned ellipsoid (3D)."""
    rel = [g - c for g, c in zip(grid, center, strict=False)]
    if len(grid) == 2:
        t = rng.uniform(0, np.pi)
        rel = [rel[0] * np.cos(t) + rel[1] * np.sin(t), -rel[0] * np.sin(t) + rel[1] * np.cos(t)]
    result: np.ndarray = sum((r / a) ** 2 for r, a in zip(rel, radii, strict=False)) <= 1.0
    return result


def _texture(grid: tuple[np.ndarray, ...], size: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Smooth background: a few random low-frequency cosines."""
    out = np.zeros(size, np.float32)
    for _ in range(3):
        freq = rng.uniform(0.5, 2.0, len(size)) * 2 * np.pi / np.asarray(size)
        out += 0.04 * np.cos(sum(f * g for f, g in zip(freq, grid, strict=False)) + rng.uniform(0, 2 * np.pi))
    return out


def generate(opts: SyntheticOptions, task: str, size: tuple[int, ...]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray | None]:
    """Metadata, images ``(N, C, *size)`` uint8 and masks ``(N, *size)`` (segmentation)."""
    rng = np.random.default_rng(opts.seed)
    meta = _patients(opts, rng)
    n, grid, scale = len(meta), _grid(size), float(min(size))
    minority = (meta["group"] == "minority").to_numpy()
    hard = meta["hard"].to_numpy()
    strength = opts.signal * np.where(hard, opts.hard_signal, 1.0)
    if task == "classification":
        rate = np.clip(opts.positive_rate * np.where(meta["age"].to_numpy() > 60, 1.3, 0.85), 0.02, 0.98)
        meta["label"] = (rng.random(n) < rate).astype(np.int64)
    images = np.empty((n, *size), np.float32)
    masks = np.zeros((n, *size), np.uint8) if task == "segmentation" else None
    site_idx = meta["site"].map({s: i for i, s in enumerate(SITES)}).to_numpy()
    margin = np.asarray(size) * 0.2
    for i in range(n):
        img = BASE + SITE_OFFSET[site_idx[i]] + _texture(grid, size, rng)
        for _ in range(2):  # dark distractors, present whatever the label
            img -= 0.2 * _blob(grid, rng.uniform(margin, np.asarray(size) - margin), scale * rng.uniform(0.06, 0.1))
        if task == "classification":
            if meta["label"].iat[i]:
                img += 0.3 * strength[i] * _blob(grid, rng.uniform(margin, np.asarray(size) - margin), scale * 0.09)
        else:
            fg = np.zeros(size, bool)
            for _ in range(rng.integers(1, 3)):
                radii = scale * rng.uniform(0.1, 0.25, len(size))
                fg |= _ellipse(grid, rng.uniform(margin, np.asarray(size) - margin), radii, rng)
            img += 0.3 * strength[i] * fg
            masks[i] = fg  # type: ignore[index]  # masks exist for segmentation, the only task drawing fg
        if minority[i]:
            img = BASE + opts.minority_contrast * (img - BASE) + opts.minority_shift
        sigma = opts.noise * (2.0 if hard[i] and task == "segmentation" else 1.0)
        images[i] = img + rng.normal(0, sigma, size)
    gains = 1.0 - 0.1 * np.arange(opts.channels, dtype=np.float32)
    stacked = images[:, None] * gains.reshape(1, -1, *([1] * len(size)))
    return meta, (np.clip(stacked, 0, 1) * 255).round().astype(np.uint8), masks


def load(cfg: DatasetConfig, *, cache_dir: Path | None = None) -> FairDataset:
    """Adapter entry point: generate the dataset described by a catalogue entry (no files)."""
    where = f"datasets.{cfg.name}.options"
    opts = SyntheticOptions.from_config(cfg.options, where)
    task = cfg.task or "classification"
    if cfg.label is not None:
        raise ConfigError(f"datasets.{cfg.name}.label: synthetic labels are generated; remove `label`.")
    size = cfg.spatial_size((32, 32) if opts.spatial_dims == 2 else (16, 16, 16))
    if len(size) != opts.spatial_dims:
        raise ConfigError(
            f"datasets.{cfg.name}.image_size: {list(size)} has {len(size)} dims but options.spatial_dims is "
            f"{opts.spatial_dims}. Give an int or {opts.spatial_dims} sizes."
        )
    meta, images, masks = generate(opts, task, size)
    revision = cache_key(adapter="synthetic", generator=GENERATOR_VERSION, task=task, size=size, options=dataclasses.asdict(opts))
    card = dataclasses.replace(
        CARDS["synthetic"],
        task=task,
        num_classes=2,
        spatial_dims=opts.spatial_dims,
        in_channels=opts.channels,
        class_names=("negative", "positive") if task == "classification" else ("background", "object"),
    )
    info = {"source_rows": len(meta), "skipped_missing_images": 0}
    return assemble(cfg, card, meta, ArraySource(images, masks), revision, info=info)
