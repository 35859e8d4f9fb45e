"""Divide-and-conquer / stratified ERM (docs/methods.md §1.7): one model per group.

``M_g`` is trained with the task recipe on group ``g``'s training data and selected on
group ``g``'s validation data; prediction routes every sample by its **true** group,
``ŷ(x) = M_{a(x)}(x)`` (attribute-aware inference). The overall AUC of this method pools
scores of differently calibrated models: report it, but flag it.

Search space (``medfairx bench --trials``): the recipe's ``lr`` and ``weight_decay`` only,
shared by the per-group models.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from medfairx.errors import ConfigError
from medfairx.methods import Method, RunContext, TaskData, group_count
from medfairx_baselines import STRATIFIED_SPEC
from medfairx_baselines.erm import ERM


class Stratified(Method, spec=STRATIFIED_SPEC):
    """One ERM model per group, routed by the sample's true group at prediction time.

    Args:
        recipe: optional :class:`~medfairx.methods.TrainRecipe` overrides (every
            group model uses the same recipe).
        fallback: what samples outside every group (code -1) get at prediction time:
            ``"mean"`` (average of the group models' probabilities, [INFERRED]) or
            ``"error"`` (raise).

    Attributes:
        models_: ``{group code: fitted ERM}``.
        n_groups_: number of groups of the training grouping.
    """

    epochs_are_checkpoints = False  # the routed ensemble of group models has no single epoch


    def __init__(self, recipe: dict[str, Any] | None = None, fallback: str = "mean") -> None:
        self.recipe = recipe
        self.fallback = fallback

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        """Two short epochs per group."""
        return {"recipe": {"epochs": 2, "max_steps_per_epoch": 2, "batch_size": 8}}

    def _group_names(self, data: TaskData) -> list[str]:
        return [data.group_names[g] if g < len(data.group_names) else str(g) for g in range(self.n_groups_)]

    def fit(self, train: TaskData, val: TaskData, ctx: RunContext) -> Stratified:
        """Train one model per group on that group's train split, selected on its val split.

        Raises:
            ConfigError: no group codes, or a group without training samples.
        """
        if self.fallback not in ("mean", "error"):
            raise ConfigError(f"Stratified: unknown fallback {self.fallback!r}; use 'mean' or 'error'.")
        if train.groups is None or val.groups is None:
            raise ConfigError(
                "Stratified needs group codes in train and val but they are missing; run it with a "
                "training grouping (it is tagged uses_groups_in_fit)."
            )
        tg, vg = np.asarray(train.groups), np.asarray(val.groups)
        self.n_groups_ = group_count(train)
        names = self._group_names(train)
        empty = [names[g] for g in range(self.n_groups_) if not np.any(tg == g)]
        if empty:
            raise ConfigError(
                f"Stratified trains one model per group, but group(s) {empty} have no training samples; "
                "use a grouping whose groups all occur in the training split (or merge small groups)."
            )
        self.models_: dict[int, ERM] = {}
        self.selected_epochs_: dict[int, int | None] = {}
        for g in range(self.n_groups_):
            sub_train = train.subset(tg == g)
            if np.any(vg == g):
                sub_val = val.subset(vg == g)
            else:
                ctx.log(
                    f"[stratified] group {names[g]!r} has no validation samples; selecting on the pooled val split."
                )
                sub_val = val
            child = ctx.child()
            model = ERM(recipe=copy.deepcopy(self.recipe))
            model.name = f"{self.name}[{names[g]}]"
            model.fit(sub_train, sub_val, child)
            for rec in child.history:
                rec["stage"] = f"group:{names[g]}"
            ctx.history.extend(child.history)
            self.models_[g] = model
            self.selected_epochs_[g] = model.selected_epoch_
        self.fitted_ = True
        return self

    def predict_scores(self, data: TaskData, ctx: RunContext) -> np.ndarray:
        """Probabilities of every sample from its own group's model (never reads labels).

        Raises:
            ConfigError: no group codes, or (``fallback="error"``) a sample outside every group.
        """
        self.check_fitted("predict_scores")
        if data.groups is None:
            raise ConfigError(
                "Stratified routes every sample by its true group, but data.groups is None; it is "
                "tagged uses_groups_in_predict and needs the group codes at prediction time."
            )
        groups = np.asarray(data.groups)
        unknown = sorted(set(np.unique(groups).tolist()) - set(self.models_) - {-1})
        if unknown:
            raise ConfigError(f"Stratified: no model for group code(s) {unknown} (trained on {sorted(self.models_)}).")
        if self.fallback == "error" and np.any(groups < 0):
            raise ConfigError("Stratified: some samples belong to no group (code -1) and fallback='error'.")
        blind = data.without_labels()
        out: np.ndarray | None = None
        outside = groups < 0
        for g, model in self.models_.items():
            rows = groups == g
            if not rows.any() and not outside.any():
                continue
            take = rows | outside
            probs = model.predict_scores(blind.subset(np.flatnonzero(take)), ctx)
            if out is None:
                out = np.zeros((len(data), *probs.shape[1:]), dtype=np.float32)
            local_rows = rows[take]
            out[np.flatnonzero(rows)] = probs[local_rows]
            if outside.any():
                out[np.flatnonzero(outside)] += probs[~local_rows] / len(self.models_)
        assert out is not None
        return out

    def state_dict(self) -> dict[str, Any]:
        """Every group model's state, plus hyper-parameters."""
        self.check_fitted("state_dict")
        return {
            "format": 1,
            "method": self.name,
            "params": copy.deepcopy(self.get_params()),
            "n_groups": self.n_groups_,
            "models": {g: m.state_dict() for g, m in self.models_.items()},
            "selected_epoch": dict(self.selected_epochs_),
        }

    def load_state_dict(self, state: dict[str, Any], ctx: RunContext) -> Stratified:
        """Restore every group model."""
        self.restore_params(state)
        self.n_groups_ = int(state["n_groups"])
        self.models_ = {}
        for g, sub in state["models"].items():
            model = ERM(recipe=copy.deepcopy(self.recipe))
            self.models_[int(g)] = model.load_state_dict(sub, ctx)
        self.selected_epochs_ = dict(state.get("selected_epoch", {}))
        self.fitted_ = True
        return self
