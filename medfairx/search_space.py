"""What ``medfairx bench --trials`` searches for a method: its declared space plus the recipe's.

A method declares ``search_space={name: distribution}`` on its
:class:`~medfairx.specs.MethodSpec` (distributions: :class:`~medfairx.specs.Uniform`,
:class:`~medfairx.specs.LogUniform`, :class:`~medfairx.specs.IntRange`,
:class:`~medfairx.specs.Choice`). Every method whose ``__init__`` takes ``recipe`` is also
searched over :data:`~medfairx.specs.RECIPE_SEARCH_SPACE` (learning rate and weight decay);
a declared entry of the same name replaces the default. Recipe keys reach the method
through its ``recipe`` argument, which has the last word over the suite's recipe.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import random
from typing import Any

from medfairx.contracts import TrainRecipe
from medfairx.errors import SearchSpaceError
from medfairx.specs import (
    RECIPE_SEARCH_SPACE,
    MethodSpec,
    search_space_problems,
    split_sample,
)

RECIPE_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainRecipe))
BAD_SPACE = ("Method {method!r} ({target}) declares a bad search_space: {problems}. Fix `search_space` on its "
             "MethodSpec: names must be __init__ arguments or recipe keys ({recipe}), ranges need low < high and "
             "choices at least two values.")

__all__ = ["BAD_SPACE", "RECIPE_KEYS", "apply_sample", "sample_space", "space_of", "space_problems", "validate_space"]


def _params(cls: type[object]) -> tuple[list[str], bool]:
    names = cls.param_names() if hasattr(cls, "param_names") else []
    takes_any = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(cls.__init__).parameters.values())
    return names, takes_any


def space_problems(spec: MethodSpec, cls: type) -> list[str]:
    """Every problem of ``spec.search_space`` and of its per-task entries against
    ``cls.__init__`` (empty list: fine)."""
    params, takes_any = _params(cls)

    def check(space: dict[str, Any]) -> list[str]:
        return search_space_problems(space, params=params, recipe_keys=list(RECIPE_KEYS), takes_any=takes_any)

    problems = check(spec.search_space)
    for field_name, by_key in (("task_search_space", spec.task_search_space),
                               ("backbone_search_space", spec.backbone_search_space)):
        for key, entries in by_key.items():
            where = f"{field_name}[{key!r}]"
            if field_name == "task_search_space" and key not in spec.tags.tasks:
                problems.append(f"{field_name}: {key!r} is not one of the method's tasks {list(spec.tags.tasks)}")
                continue
            if not isinstance(entries, dict):
                problems.append(f"{where} must be a dict {{name: distribution | None}}")
                continue
            dropped = [n for n, d in entries.items() if d is None and n not in spec.search_space]
            problems += [f"{where}: {n!r} drops nothing (it is not in search_space)" for n in dropped]
            problems += [f"{where}: {p}" for p in check({n: d for n, d in entries.items() if d is not None})]
    return problems


def validate_space(spec: MethodSpec, cls: type) -> None:
    """Raise :class:`~medfairx.errors.SearchSpaceError` (one line) if the declared space is bad."""
    problems = space_problems(spec, cls)
    if problems:
        raise SearchSpaceError(BAD_SPACE.format(method=spec.name, target=getattr(spec, "target", cls),
                                                problems="; ".join(problems), recipe=", ".join(RECIPE_KEYS)))


def space_of(spec: MethodSpec, cls: type, task: str | None = None, backbone: str | None = None) -> dict[str, Any]:
    """The searched space on ``task`` with ``backbone``: the recipe defaults (for a method that
    takes ``recipe`` and trains), then the method's declared entries with the task's and the
    backbone's replacements, in that order."""
    params, _ = _params(cls)
    base = dict(RECIPE_SEARCH_SPACE) if "recipe" in params and not spec.tags.evaluation_only else {}
    return {**base, **spec.search_space_for(task, backbone)}


def apply_sample(params: dict[str, Any], sample: dict[str, Any], cls: type) -> dict[str, Any]:
    """``params`` (the planned ``__init__`` arguments) with one sampled configuration applied;
    recipe keys are merged into ``params["recipe"]``."""
    names, _ = _params(cls)
    init, recipe = split_sample(sample, params=names, recipe_keys=list(RECIPE_KEYS))
    out = copy.deepcopy(params)
    out.update(init)
    if recipe:
        out["recipe"] = {**(out.get("recipe") or {}), **recipe}
    return out


def sample_space(space: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """One configuration drawn from ``space`` with ``rng`` (the conformance kit's draws)."""
    return {name: dist.sample(rng) for name, dist in space.items()}
