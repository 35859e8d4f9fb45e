"""The types every layer shares: one split as a method sees it, the training recipe, one run.

They sit below the data, methods and runner layers so that each of those can name them
without importing the others.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

__all__ = ["RESULT_COLUMNS", "RunSpec", "TaskData", "TrainRecipe"]

#: The columns of the long results table (``results.csv``), one row per value: the keys of the
#: value, the value and its bootstrap interval, the rows and prevalence it rests on, how to read
#: it, the threshold it used, why it is undefined (``note``) and the DeLong interval (AUC).
RESULT_COLUMNS: tuple[str, ...] = (
    "suite", "dataset", "grouping", "method", "seed", "strategy", "metric", "scope", "group", "value",
    "ci_low", "ci_high", "n", "prevalence", "higher_is_better", "kind", "task", "threshold", "note",
    "delong_low", "delong_high",
)


@dataclass(frozen=True)
class TaskData:
    """One split as a method sees it.

    Attributes:
        images: ``(N, C, *spatial)`` array, ``uint8`` (scaled to [0, 1] then normalised
            by the trainer) or ``float32`` (used as is).
        labels: classification: ``(N,)`` int class indices; segmentation: ``(N, *spatial)``
            int label maps (0 = background). ``None`` when masked.
        groups: ``(N,)`` int group codes in ``[0, n_groups)``, or ``None`` when the method
            may not see them.
        sample_ids: ``(N,)`` sample identifiers (strings).
        n_groups: number of groups of the run's grouping.
        group_names: name of each group code.
        prompts: ``None``, or a :class:`medfairx.data.prompts.PromptSet` (one tuple of prompts
            per sample) derived from the ground truth by the framework for methods with
            ``needs_prompts`` (promptable segmenters); it carries boxes and points only.
    """

    images: np.ndarray
    labels: np.ndarray | None
    groups: np.ndarray | None
    sample_ids: np.ndarray
    n_groups: int = 1
    group_names: tuple[str, ...] = ()
    prompts: Any = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def without_labels(self) -> TaskData:
        """A copy with labels masked (what ``predict_scores`` receives)."""
        return replace(self, labels=None)

    def without_groups(self) -> TaskData:
        """A copy with group codes hidden."""
        return replace(self, groups=None)

    def subset(self, index: np.ndarray) -> TaskData:
        """Rows ``index`` (integer positions or boolean mask)."""
        return replace(
            self,
            images=self.images[index],
            labels=None if self.labels is None else self.labels[index],
            groups=None if self.groups is None else self.groups[index],
            sample_ids=self.sample_ids[index],
            prompts=None if self.prompts is None else self.prompts.subset(index),
        )


@dataclass(frozen=True)
class TrainRecipe:
    """Training hyper-parameters owned by the framework (a method may override them).

    ``criterion`` is what early stopping and checkpoint choice maximise on validation:
    ``"auc"`` / ``"dice"`` (overall), ``"worst_group_auc"`` / ``"worst_group_dice"``, or
    ``"neg_loss"``.
    """

    epochs: int = 15
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 1e-4
    weight_decay: float = 1e-4
    momentum: float = 0.9
    scheduler: str = "step"  # "step" (×gamma every step_size epochs), "poly", "none"
    step_size: int = 10
    gamma: float = 0.1
    patience: int = 5
    criterion: str = "auc"
    max_steps_per_epoch: int | None = None
    augment: bool = True
    num_workers: int = 0

    def updated(self, **changes: Any) -> TrainRecipe:
        """A copy with ``changes`` applied (unknown keys raise TypeError)."""
        return replace(self, **changes)



@dataclass(frozen=True)
class RunSpec:
    """One training run and where its results go."""

    suite: str
    method: str
    dataset: str
    seed: int
    train_grouping: str | None
    groupings: tuple[str, ...]
    params: dict[str, Any] = field(default_factory=dict, hash=False)
    params_mode: str = "default"
    backbone: str = "tiny_cnn"
    recipe: dict[str, Any] = field(default_factory=dict, hash=False)
    device: str = "auto"
    dataset_revision: str = ""
    split_hash: str = ""
    versions: dict[str, str | None] = field(default_factory=dict, hash=False)
    save_state: bool = False
    amp: bool = True
    compile: bool = False
    #: ``{}`` for end-to-end training on a plain backbone; else the protocol record: name,
    #: encoder, weights sha256, preprocessing, embedding-cache key (frozen protocols)
    protocol: dict[str, Any] = field(default_factory=dict, hash=False)
    #: external test sets: split name (``external:<dataset>``) → {"dataset", "split", "groupings"};
    #: scored after training, so not part of the run id
    external: dict[str, Any] = field(default_factory=dict, hash=False)

    def identity(self) -> dict[str, Any]:
        """What the run id hashes: everything that changes the trained model."""
        d = asdict(self)
        for k in ("suite", "groupings", "device", "save_state", "amp", "compile", "external"):
            d.pop(k)
        if not d["protocol"]:
            d.pop("protocol")  # runs without one keep the ids they had before protocols existed
        return d

    @property
    def run_id(self) -> str:
        """Readable, stable id: ``<method>-<dataset>-<grouping|all>-s<seed>-<hash>``."""
        blob = json.dumps(self.identity(), sort_keys=True, default=str).encode()
        digest = hashlib.sha256(blob).hexdigest()[:10]
        return f"{self.method}-{self.dataset}-{self.train_grouping or 'all'}-s{self.seed}-{digest}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored in run.json)."""
        d = asdict(self)
        d["groupings"] = list(self.groupings)
        d["run_id"] = self.run_id
        return d
