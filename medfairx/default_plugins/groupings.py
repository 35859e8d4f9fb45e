"""Built-in generic groupings: usable on any dataset whose metadata has their column."""

from __future__ import annotations

from medfairx.hookspecs import hookimpl
from medfairx.specs import GroupingSpec, Register


@hookimpl
def register_groupings(register: Register) -> None:
    """Register ``sex`` (male/female), ``age_60`` (<=60/>60) and ``age4`` (<=40/41-60/61-80/>80)."""
    register(GroupingSpec("sex", "medfairx.data.groupings:SEX", ("sex",), "male / female (other values excluded)"))
    register(GroupingSpec("age_60", "medfairx.data.groupings:AGE_60", ("age",), "age <= 60 / > 60 (MEDFAIR cut)"))
    register(GroupingSpec("age4", "medfairx.data.groupings:AGE4", ("age",), "age <=40 / 41-60 / 61-80 / >80"))
