"""The jinja2 environment of the leaderboards and page rendering.

Autoescaping is on for every template and undefined variables raise
(``StrictUndefined``), so a template typo fails loudly instead of printing nothing, and a
method named ``<script>`` comes out as text. CSS and JS are inlined from
``medfairx/report/static`` so pages work offline from ``file://``.
"""

from __future__ import annotations

import math
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from medfairx.fileio import atomic_write_text

TEMPLATE_PACKAGE = "medfairx.report"
MISSING = "—"


def fmt_num(value: Any, digits: int = 3) -> str:
    """Format a number with ``digits`` decimals; NaN, None and infinities give an em dash."""
    if value is None or isinstance(value, str):
        return MISSING if value in (None, "") else str(value)
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(x):
        return MISSING
    if x != 0 and abs(x) < 10 ** (-digits):
        return f"{x:.{max(1, digits - 1)}e}"
    return f"{x:.{digits}f}"


def fmt_p(value: Any) -> str:
    """Format a p-value (3 significant digits, ``< 1e-4`` below that)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return MISSING
    if not math.isfinite(x):
        return MISSING
    return "< 1e-4" if x < 1e-4 else f"{x:.3g}"


def sort_key(value: Any) -> str:
    """A ``data-sort`` attribute value: the number as text, or ``""`` when missing."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return "" if value is None else str(value)
    return repr(x) if math.isfinite(x) else ""


@lru_cache(maxsize=None)
def static_text(name: str) -> str:
    """The text of ``medfairx/report/static/<name>``."""
    return resources.files(TEMPLATE_PACKAGE).joinpath("static").joinpath(name).read_text(encoding="utf-8")


def make_environment(extra_loaders: list[jinja2.BaseLoader] | None = None) -> jinja2.Environment:
    """Build the leaderboard jinja2 environment.

    Args:
        extra_loaders: loaders searched before the packaged templates (a plugin may
            override or add templates this way).

    Returns:
        An environment with ``autoescape=True``, ``undefined=StrictUndefined`` and the
        filters ``num``, ``pval`` and ``sortkey``, plus the globals ``css`` and ``js``.
    """
    loaders: list[jinja2.BaseLoader] = [*(extra_loaders or []), jinja2.PackageLoader(TEMPLATE_PACKAGE, "templates")]
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = fmt_num
    env.filters["pval"] = fmt_p
    env.filters["sortkey"] = sort_key
    env.globals["css"] = Markup(static_text("style.css"))
    # "</" cannot occur inside an inline <script> without ending it; the file has none.
    env.globals["js"] = Markup(static_text("sortable.js").replace("</", "<\\/"))
    return env


def render_page(env: jinja2.Environment, template: str, out_path: Path, **context: Any) -> Path:
    """Render ``template`` with ``context`` to ``out_path`` (UTF-8) and return the path."""
    html = env.get_template(template).render(**context)
    atomic_write_text(out_path, html)  # replaces a link at out_path, never writes through it
    return out_path


def inline_svg(svg: str) -> Markup:
    """Mark an SVG produced by :mod:`medfairx.report.plots` as safe to inline.

    Matplotlib escapes every text it writes, so the SVG carries no markup from user data.
    """
    return Markup(svg)
