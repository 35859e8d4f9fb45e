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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from medfairx.contracts import TaskData, TrainRecipe
from medfairx.errors import NOT_FITTED, ConfigError, NotFittedError, TrainingError
from medfairx.specs import MethodTags, Task

NON_FINITE_SCORES = (
    "Method {method!r} returned {count} non-finite scores (NaN or inf) of {total} on split {split!r}; "
    "the run is recorded as failed and not scored. Check its training log (a diverged loss?) and its predict_scores."
)

#: ``predict(data) -> scores``: the trainer's current model on a split (labels unused).
Predictor = Callable[[TaskData], np.ndarray]
#: ``observe_epoch(stage, epoch, predict)``: see :attr:`RunContext.observe_epoch`.
EpochObserver = Callable[[str, int, Predictor], None]


@dataclass
class RunContext:
    """Everything about a run that is not data: task, device, seed, backbone, recipe.

    ``history`` receives one dict of metrics per epoch from the trainer; ``on_epoch``, when
    set, receives the same record (the runner forwards it to the ``epoch_finished`` hook).

    ``observe_epoch``, when set, is called by the trainer at the end of every epoch of a
    deployed stage as ``observe_epoch(stage, epoch, predict)``, where ``predict(data)``
    returns the current model's scores for a :class:`TaskData`. The runner sets it to record
    per-epoch val and test scores for after-the-fact model selection; the test data stays
    inside the runner's observer, so ``fit`` never receives it.

    ``backbone_kwargs`` are the backbone factory's options: build every network with
    ``build_backbone(ctx.backbone, ..., **ctx.backbone_kwargs)``. Under a suite's
    ``standardize_features`` they carry ``standardize`` and the training split's
    ``feature_stats`` (the head's scaler); a method using the feature vectors without a
    network scales them with ``medfairx.methods.standardized``.
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
    observe_epoch: EpochObserver | None = None
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
    #: per-task replacements of ``search_space`` entries (see :class:`MethodSpec`)
    task_search_space: ClassVar[dict[str, dict[str, Any]]] = {}
    #: per-backbone replacements of ``search_space`` entries (see :class:`MethodSpec`)
    backbone_search_space: ClassVar[dict[str, dict[str, Any]]] = {}
    #: False when the epochs the trainer trains are not the weights the method would deploy
    #: at that epoch (e.g. SWAD averages weights, an ensemble of per-group models has no
    #: single epoch); the runner then observes no epochs and after-the-fact model selection
    #: uses only the method's own final checkpoint.
    epochs_are_checkpoints: ClassVar[bool] = True

    fitted_: bool = False

    def __init_subclass__(cls, spec: Any = None, **kwargs: Any) -> None:
        """``class M(Method, spec=M_SPEC)`` takes name, summary, reference and tags from the
        registered :class:`~medfairx.specs.MethodSpec`, so they are written once."""
        super().__init_subclass__(**kwargs)
        if spec is not None:
            cls.name, cls.summary, cls.reference, cls.tags = spec.name, spec.summary, spec.reference, spec.tags
            cls.search_space = dict(spec.search_space)
            cls.task_search_space = dict(spec.task_search_space)
            cls.backbone_search_space = dict(spec.backbone_search_space)

    @classmethod
    def param_names(cls) -> list[str]:
        """Names of the hyper-parameters: the keyword arguments of ``__init__``."""
        params = inspect.signature(cls.__init__).parameters.values()
        return [p.name for p in params if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]

    def get_params(self) -> dict[str, Any]:
        """Hyper-parameters, as passed to ``__init__``."""
        return {k: getattr(self, k) for k in self.param_names()}

    def restore_params(self, state: dict[str, Any]) -> dict[str, Any]:
        """Set the hyper-parameters saved in ``state["params"]`` (the first step of ``load_state_dict``).

        Saved names that ``__init__`` no longer takes are skipped; values are deep-copied.

        Returns:
            The hyper-parameters restored, by name.
        """
        names = set(self.param_names())
        restored = {k: copy.deepcopy(v) for k, v in state.get("params", {}).items() if k in names}
        for k, v in restored.items():
            setattr(self, k, v)
        return restored

    @contextmanager
    def loading_weights(self, ctx: RunContext) -> Iterator[None]:
        """Wrap the ``load_state_dict`` calls of saved networks built for ``ctx``.

        A missing entry or a tensor of the wrong shape (``KeyError`` / ``RuntimeError``)
        becomes one :class:`~medfairx.errors.ConfigError` line that names the backbone.
        """
        try:
            yield
        except (KeyError, RuntimeError) as exc:
            raise ConfigError(
                f"{type(self).__name__}.load_state_dict: the saved weights do not fit backbone {ctx.backbone!r} "
                f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); load with the run's backbone "
                "and backbone_kwargs."
            ) from None

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


def group_count(data: TaskData, minimum: int = 0) -> int:
    """Number of groups to allocate for ``data``: ``data.n_groups``, or more if a code exceeds it.

    Args:
        data: a split; ``data.groups`` may be ``None`` (then ``data.n_groups`` counts).
        minimum: the smallest count returned (e.g. 1 for a per-group table).
    """
    top = -1 if data.groups is None else int(np.asarray(data.groups).max(initial=-1))
    return max(int(data.n_groups), top + 1, minimum)


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
