"""kNN probe: a k-nearest-neighbour classifier on frozen-encoder feature vectors.

Search space (``medfairx bench --trials``): ``k`` in 5, 10, ..., 50 around 20; ``metric``
cosine or euclidean (no recipe: nothing is trained).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medfairx.errors import ConfigError
from medfairx.methods import Method, RunContext, TaskData
from medfairx_baselines import KNN_SPEC


class KNNProbe(Method, spec=KNN_SPEC):
    """Scores ``P(class k) = share of class k among the k nearest training samples``.

    Runs only on feature vectors (a frozen protocol's ``(N, D)`` inputs); there is no
    training loop, so no per-epoch checkpoints.

    Args:
        k: neighbours.
        metric: a scikit-learn distance (``cosine`` by default).
    """

    epochs_are_checkpoints = False

    def __init__(self, k: int = 20, metric: str = "cosine") -> None:
        self.k = k
        self.metric = metric

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        """Five neighbours."""
        return {"k": 5}

    @staticmethod
    def _features(data: TaskData, ctx: RunContext) -> np.ndarray:
        """The feature vectors, standardised with the training split's statistics under a
        suite's ``standardize_features`` (as the heads of the other methods see them)."""
        from medfairx.methods import standardized

        x = np.asarray(data.images)
        if x.ndim != 2:
            raise ConfigError(f"knn runs on feature vectors (N, D), got inputs of shape {x.shape}; use it under "
                              "`protocol: knn` or `linear_probe`.")
        return standardized(x, ctx.backbone_kwargs)

    def fit(self, train: TaskData, val: TaskData, ctx: RunContext) -> KNNProbe:
        """Remember the training features and labels."""
        from sklearn.neighbors import KNeighborsClassifier

        if train.labels is None:
            raise ConfigError("knn needs training labels.")
        self.num_classes_ = int(ctx.num_classes)
        self.model_ = KNeighborsClassifier(n_neighbors=min(int(self.k), len(train)), metric=self.metric)
        self.model_.fit(self._features(train, ctx), np.asarray(train.labels))
        self.fitted_ = True
        ctx.log(f"knn: k={self.model_.n_neighbors}, {len(train)} training vectors of dimension {train.images.shape[1]}")
        return self

    def predict_scores(self, data: TaskData, ctx: RunContext) -> np.ndarray:
        """``(N, C)`` neighbour class shares."""
        self.check_fitted()
        probs = self.model_.predict_proba(self._features(data, ctx))
        out = np.zeros((len(data), self.num_classes_), np.float32)
        out[:, self.model_.classes_.astype(int)] = probs
        return out

    def state_dict(self) -> dict[str, Any]:
        """Training vectors and labels."""
        self.check_fitted()
        return {"x": self.model_._fit_X, "y": self.model_.classes_[self.model_._y], "num_classes": self.num_classes_}

    def load_state_dict(self, state: dict[str, Any], ctx: RunContext) -> KNNProbe:
        """Refit on the saved vectors."""
        from sklearn.neighbors import KNeighborsClassifier

        self.num_classes_ = int(state["num_classes"])
        self.model_ = KNeighborsClassifier(n_neighbors=min(int(self.k), len(state["y"])), metric=self.metric)
        self.model_.fit(np.asarray(state["x"]), np.asarray(state["y"]))
        self.fitted_ = True
        return self
