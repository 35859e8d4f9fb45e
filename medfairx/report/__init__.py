"""Leaderboards: HTML and CSV reports of a suite's results table.

Heavy imports (matplotlib, scipy, scikit-posthocs) happen inside the submodules, which are
reached through the reporters' lazy targets, so ``import medfairx.report`` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_leaderboard", "write_report", "write_root_index"]


def __getattr__(name: str) -> Any:  # PEP 562: lazy re-exports
    if name == "write_report":
        from medfairx.report import writer

        return writer.write_report
    if name in __all__:
        from medfairx.report import leaderboard

        return getattr(leaderboard, name)
    raise AttributeError(f"module 'medfairx.report' has no attribute {name!r}")
