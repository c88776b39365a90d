"""Time formats of VTEX's APIs and epoch milliseconds, the sandbox's internal clock."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

DAY_MS = 86_400_000

_TIME_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?",
    re.IGNORECASE,
)


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware (or UTC-naive) datetime."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def from_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def format_md_time(ms: int) -> str:
    """Master Data's form: ``2025-03-01T12:34:56.7890000Z`` (seven fraction digits)."""
    return from_ms(ms).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}0000Z"


def format_oms_time(ms: int) -> str:
    """OMS's form: ``2025-03-01T12:34:56.7890000+00:00``."""
    return from_ms(ms).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}0000+00:00"


def parse_time(text: str) -> int:
    """Epoch ms of ``2025-01-01``, ``2025-01-01T10:00``, ``...:00.123Z``, ``...+03:00`` and such.

    A value without an offset is UTC; fractions beyond milliseconds are truncated.

    Raises:
        ValueError: not such a date or date-time.
    """
    match = _TIME_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not an ISO 8601 date or date-time: {text!r}")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    moment = datetime(
        int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
        tzinfo=UTC,
    )  # fmt: skip
    ms = to_ms(moment) + int((fraction or "0")[:3].ljust(3, "0"))
    if offset and offset.upper() != "Z":
        digits = offset[1:].replace(":", "")
        shift = (int(digits[:2]) * 60 + int(digits[2:])) * 60_000
        ms -= shift if offset[0] == "+" else -shift
    return ms
