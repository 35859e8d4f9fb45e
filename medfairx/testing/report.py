"""Check outcomes: :class:`CheckResult`, :class:`CheckReport` and the kit's exceptions.

A report is a compliance table (sklearn #30133): one row per (plugin, item, check) with a
status, a message and the time it took. Statuses:

* ``passed``: the check ran and held;
* ``failed``: the check ran and did not hold (the message names the object and the
  expectation);
* ``xfail``: it failed, and ``expected_failed_checks`` said it would (the message gives
  the reason);
* ``xpass``: it was expected to fail but passed (remove it from ``expected_failed_checks``);
* ``skipped``: it does not apply, because of a tag or missing input (the message says which).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from medfairx.errors import MedfairxError

if TYPE_CHECKING:
    import pandas as pd

Status = Literal["passed", "failed", "xfail", "xpass", "skipped"]
STATUSES: tuple[str, ...] = ("passed", "failed", "xfail", "xpass", "skipped")
COLUMNS: tuple[str, ...] = ("plugin", "kind", "item", "check", "status", "message", "seconds")


class CheckFailure(AssertionError):
    """A conformance check did not hold; the message names the object and the expectation."""


class SkipCheck(Exception):
    """A check does not apply to this object (a tag, or missing input); carries the reason."""


class ConformanceError(MedfairxError, AssertionError):
    """Raised by ``check_*(..., on_fail="raise")`` when at least one check failed."""

    def __init__(self, report: CheckReport) -> None:
        self.report = report
        failed = report.failures
        lines = [f"{len(failed)} conformance check(s) failed:"]
        lines += [f"  - {r.item} {r.check}: {r.message}" for r in failed]
        super().__init__("\n".join(lines))


@dataclass
class CheckResult:
    """The outcome of one check on one item."""

    item: str
    check: str
    status: Status
    message: str = ""
    seconds: float = 0.0
    kind: str = ""
    plugin: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready row."""
        return asdict(self)


@dataclass
class CheckReport:
    """A list of :class:`CheckResult`, with table exports.

    Attributes:
        results: one row per check run (or skipped).
        suite_version: the version of the check list that produced it.
    """

    results: list[CheckResult] = field(default_factory=list)
    suite_version: str = ""

    @property
    def passed(self) -> bool:
        """True when no check failed (xfail, xpass and skipped do not count as failures)."""
        return not self.failures

    @property
    def failures(self) -> list[CheckResult]:
        """The failed rows."""
        return [r for r in self.results if r.status == "failed"]

    def __iter__(self) -> Iterator[CheckResult]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def status_of(self, check: str, item: str | None = None) -> Status:
        """Status of ``check`` (on ``item`` if given); raises KeyError when it did not run."""
        for r in self.results:
            if r.check == check and (item is None or r.item == item):
                return r.status
        raise KeyError(f"no result for check {check!r}" + (f" on {item!r}" if item else ""))

    def result(self, check: str, item: str | None = None) -> CheckResult:
        """The first row for ``check`` (on ``item`` if given)."""
        for r in self.results:
            if r.check == check and (item is None or r.item == item):
                return r
        raise KeyError(f"no result for check {check!r}" + (f" on {item!r}" if item else ""))

    def extend(self, other: CheckReport | Iterable[CheckResult]) -> None:
        """Append the rows of ``other``."""
        self.results.extend(other.results if isinstance(other, CheckReport) else other)

    def counts(self) -> dict[str, int]:
        """Number of rows per status."""
        return {s: sum(r.status == s for r in self.results) for s in STATUSES}

    def to_frame(self) -> pd.DataFrame:
        """The compliance table as a DataFrame with columns :data:`COLUMNS`."""
        import pandas as pd

        result: pd.DataFrame = pd.DataFrame([r.to_dict() for r in self.results], columns=list(COLUMNS))
        return result

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: suite version, counts and rows."""
        return {
            "suite_version": self.suite_version,
            "passed": self.passed,
            "counts": self.counts(),
            "results": [r.to_dict() for r in self.results],
        }

    def to_json(self, **kw: Any) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), **kw)

    def to_markdown(self) -> str:
        """A GitHub-flavoured markdown table (no extra dependency)."""
        cols = ("plugin", "item", "check", "status", "message", "seconds")
        lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
        for r in self.results:
            cells = [r.plugin, r.item, r.check, r.status, _md_cell(r.message), f"{r.seconds:.2f}"]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def to_text(self, width: int | None = None) -> str:
        """A plain-text table for terminals: the first line of each message, cut to ``width``
        characters per row when given."""
        rows = [("plugin", "item", "check", "status", "message")]
        rows += [(r.plugin, r.item, r.check, r.status, r.message.splitlines()[0] if r.message else "") for r in self.results]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        out = []
        for row in rows:
            head = "  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=False))
            msg = row[4]
            if width is not None:
                room = max(20, width - len(head) - 2)
                msg = msg if len(msg) <= room else msg[: room - 3] + "..."
            out.append(f"{head}  {msg}".rstrip())
        c = self.counts()
        out.append(", ".join(f"{v} {k}" for k, v in c.items() if v) or "no checks")
        return "\n".join(out)

    def raise_if_failed(self) -> CheckReport:
        """Raise :class:`ConformanceError` if any check failed; else return ``self``."""
        if not self.passed:
            raise ConformanceError(self)
        return self


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")
