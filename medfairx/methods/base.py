"""The method contract, and the data and context a method receives.

A method never sees more than the framework hands it:

* ``fit(train, val, ctx)`` gets labels of train and val; groups only if its tags say
  ``uses_groups_in_fit``.
* ``predict_scores(data, ctx)`` gets images (and groups only if ``uses_groups_in_predict``);
  labels of the data it predicts are masked (``labels is None``), so test labels cannot leak.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from medfairx.errors import NOT_FITTED, NotFittedError, TrainingError
from medfairx.specs import MethodTags, Task

NON_FINITE_SCORES = (
    "Method {method!r} returned {count} non-finite scores (NaN or inf) of {total} on split {split!r}; "
    "the run is recorded as failed and not scored. Check its training log (a diverged loss?) and its predict_scores."
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
        prompts: ``None``, or a :class:`medfairx.prompts.PromptSet` (one tuple of prompts
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


@dataclass
class RunContext:
    """Everything about a run that is not data: task, device, seed, backbone, recipe.

    ``history`` receives one dict per epoch from the trainer (validation metrics, and the
    per-epoch predictions the runner needs for after-the-fact model selection);
    ``on_epoch``, when set, receives the same record without predictions (the runner
    forwards it to the ``epoch_finished`` observer hook).
    """

    task: Task
    num_classes: int
    in_channels: int
    spatial_dims: int = 2
    image_size: tuple[int, ...] = (32, 32)
    seed: int = 0
    device: str = "cpu"
    backbone: str = "tiny_cnn"
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    recipe: TrainRecipe = field(default_factory=TrainRecipe)
    amp: bool = True
    compile: bool = False
    workdir: Path | None = None
    log: Callable[[str], None] = print
    history: list[dict[str, Any]] = field(default_factory=list)
    eval_sets: dict[str, TaskData] = field(default_factory=dict)
    progress: Callable[[str, int, int], None] | None = None
    on_epoch: Callable[[dict[str, Any]], None] | None = None

    def child(self, **changes: Any) -> RunContext:
        """A copy for a sub-stage of a multi-stage method (own history list)."""
        new = copy.copy(self)
        new.history = []
        for k, v in changes.items():
            setattr(new, k, v)
        return new


class Method:
    """Base class of every method.

    Subclasses set the class attributes, take hyper-parameters as keyword ``__init__``
    arguments that are stored unchanged (sklearn convention), and implement ``fit`` and
    ``predict_scores``.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    tags: ClassVar[MethodTags] = MethodTags()
    #: hyper-parameter distributions ``medfairx bench --trials`` searches (see :class:`MethodSpec`)
    search_space: ClassVar[dict[str, Any]] = {}
    #: False when the per-epoch predictions a method records are not the weights it would
    #: deploy at that epoch (e.g. SWAD averages weights); after-the-fact model selection
    #: then uses only the method's own final checkpoint.
    epochs_are_checkpoints: ClassVar[bool] = True

    fitted_: bool = False

    def __init_subclass__(cls, spec: Any = None, **kwargs: Any) -> None:
        """``class M(Method, spec=M_SPEC)`` takes name, summary, reference and tags from the
        registered :class:`~medfairx.specs.MethodSpec`, so they are written once."""
        super().__init_subclass__(**kwargs)
        if spec is not None:
            cls.name, cls.summary, cls.reference, cls.tags = spec.name, spec.summary, spec.reference, spec.tags
            cls.search_space = dict(spec.search_space)

    @classmethod
    def _param_names(cls) -> list[str]:
        params = inspect.signature(cls.__init__).parameters.values()
        return [p.name for p in params if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]

    def get_params(self) -> dict[str, Any]:
        """Hyper-parameters, as passed to ``__init__``."""
        return {k: getattr(self, k) for k in self._param_names()}

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        """Tiny settings for CPU smoke runs and the conformance kit."""
        return {}

    def fit(self, train: TaskData, val: TaskData, ctx: RunContext) -> Method:
        """Train on ``train`` (model selection on ``val`` only); return ``self``."""
        raise NotImplementedError

    def predict_scores(self, data: TaskData, ctx: RunContext) -> np.ndarray:
        """Class probabilities: ``(N, C)`` (classification) or ``(N, C, *spatial)``."""
        raise NotImplementedError

    def check_fitted(self, method: str = "predict_scores") -> None:
        """Raise :class:`NotFittedError` unless ``fit`` has completed."""
        if not getattr(self, "fitted_", False):
            raise NotFittedError(NOT_FITTED.format(name=type(self).__name__, method=method))

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to predict again after ``load_state_dict``."""
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any], ctx: RunContext) -> Method:
        """Restore a fitted method from :meth:`state_dict`; return ``self``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


def count_non_finite(scores: Any) -> int:
    """Number of NaN or infinite entries of a score array (0 when every score is finite)."""
    arr = np.asarray(scores, dtype=np.float64)
    return int(arr.size - np.count_nonzero(np.isfinite(arr)))


def check_finite_scores(scores: Any, *, method: str, split: str) -> None:
    """Raise :class:`TrainingError` if ``scores`` (probabilities or mask logits) has a NaN or inf.

    Args:
        scores: what ``predict_scores`` returned.
        method: the method's name, for the message.
        split: the split predicted, for the message.
    """
    bad = count_non_finite(scores)
    if bad:
        raise TrainingError(NON_FINITE_SCORES.format(method=method, count=bad, total=np.size(scores), split=split))
