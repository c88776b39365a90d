"""Half-open time windows and the formats VTEX filters need.

VTEX ranges are inclusive at both ends (``[A TO B]``, ``between A AND B``), so a window
``[start, end)`` is sent with ``end - 1 ms`` as its upper bound: adjacent windows never share a
record and never miss one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = ["Window", "format_vtex_time", "parse_time"]

_ONE_MS = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class Window:
    """The half-open interval ``[start, end)`` in UTC."""

    start: datetime
    end: datetime

    @property
    def last_instant(self) -> datetime:
        """The inclusive upper bound VTEX filters take."""
        return self.end - _ONE_MS

    @property
    def splittable(self) -> bool:
        """A window of a second or less is not split further: VTEX filters stop at milliseconds."""
        return self.end - self.start > timedelta(seconds=1)

    def halves(self) -> tuple[Window, Window]:
        """Split in two at the midpoint, rounded to the millisecond."""
        middle = self.start + (self.end - self.start) / 2
        middle = middle.replace(microsecond=middle.microsecond // 1000 * 1000)
        return Window(self.start, middle), Window(middle, self.end)

    def __str__(self) -> str:
        return f"[{format_vtex_time(self.start)}, {format_vtex_time(self.end)})"


def format_vtex_time(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds and ``Z``, the form VTEX filters document."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    """Parse a CLI or API date/time; a bare date is midnight UTC."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
