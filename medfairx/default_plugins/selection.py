"""Built-in model-selection strategies (lazy targets in :mod:`medfairx.selection`)."""

from __future__ import annotations

from medfairx.hookspecs import hookimpl
from medfairx.specs import Register, SelectionStrategySpec

BUILTIN_STRATEGIES: tuple[tuple[str, str], ...] = (
    ("overall", "max overall validation AUC / Dice"),
    ("worst_group", "max worst-group validation AUC / Dice"),
    ("pareto", "Pareto front of per-group validation metrics, then the best worst group"),
    ("dto", "closest to the utopia point of normalised per-group validation metrics (MEDFAIR)"),
    ("final", "the checkpoint the trainer kept"),
)


@hookimpl
def register_selection_strategies(register: Register) -> None:
    """Register the built-in strategies."""
    for name, summary in BUILTIN_STRATEGIES:
        register(SelectionStrategySpec(name=name, target=f"medfairx.selection:select_{name}", summary=summary))
