"""The jinja2 environment of the leaderboards and page rendering.

Autoescaping is on for every template and undefined variables raise
(``StrictUndefined``), so a template typo fails loudly instead of printing nothing, and a
method named ``<script>`` comes out as text. CSS and JS are inlined from
``medfairx/report/static`` so pages work offline from ``file://``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
import re
from collections.abc import Mapping
from functools import cache
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


@cache
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


LEFT_OUT = "some groups left out (hover for which)"
UNDEFINED = "undefined"


STRATEGY_ORDER = ("final", "overall", "worst_group", "pareto", "dto")


def ordered_strategies(values: Any) -> list[str]:
    """Distinct strategy names: the trainer's own checkpoint first, then MEDFAIR's."""
    names = set(map(str, values))
    return [s for s in STRATEGY_ORDER if s in names] + sorted(names - set(STRATEGY_ORDER))


def slug(text: str) -> str:
    """A file-name-safe form of ``text``; a short hash is added when characters were replaced."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("._") or "x"
    if safe != str(text):
        safe = f"{safe[:60]}-{hashlib.sha1(str(text).encode()).hexdigest()[:8]}"
    return safe


def _finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def stat_cell(row: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Pre-formatted table cell of one seed-aggregated value (None when missing).

    An undefined (NaN) value reads ``undefined``, with its reason (the results table's
    ``note``) as a tooltip and small text; never as a number.
    """
    if row is None:
        return None
    note = str(row.get("note") or "")
    if not _finite(row["mean"]):
        return {"sort": "", "text": UNDEFINED, "ci": "", "seeds": 0, "note": note or UNDEFINED, "short": note,
                "undefined": True}
    text = fmt_num(row["mean"])
    if _finite(row.get("std")) and int(row.get("n_seeds", 0)) > 1:
        text += f" ± {fmt_num(row['std'])}"
    ci = f"[{fmt_num(row['ci_low'])}, {fmt_num(row['ci_high'])}]" if _finite(row.get("ci_low")) else ""
    return {"sort": sort_key(row["mean"]), "text": text, "ci": ci, "seeds": int(row.get("n_seeds", 0)), "note": note,
            "short": LEFT_OUT if note else "", "undefined": False}


def generated_now() -> str:
    """The "generated" stamp of a page: the current UTC time to the minute."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def medfairx_version() -> str:
    """The installed medfairx version shown on every page (``dev`` when not installed)."""
    from importlib import metadata

    try:
        return metadata.version("medfairx")
    except metadata.PackageNotFoundError:
        return "dev"
