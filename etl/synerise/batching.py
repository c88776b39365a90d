"""Batches for Synerise's ``/batch`` endpoints, and finding the bad items in a refused one.

Synerise takes at most 1,000 items and 1 MB per batch call (``/v4/clients/batch``,
``/v4/events/batch``; assumed for transactions and catalog items). ``split_batches`` encodes
each item once, measures the bytes as it goes, and closes a batch before either limit; an item
too big to travel alone is rejected there, with its size in the message.

When Synerise refuses a whole batch with a 4xx that blames the content (400, 413, 422),
``bisect`` halves it until each refused part is a single item: the good items go through and
each bad one is rejected with Synerise's message, at a cost of about ``2·k·log2(n)`` calls for
``k`` bad items in ``n``.

A 207 (partially accepted) names the failed items in its errors; ``parse_partial_errors``
reads the index from an ``index`` key or from the ``field`` (``[3].email``, ``items[3].email``,
``3.email``). The real 207 body is UNCONFIRMED (docs/architecture.md), so the parser is
pluggable, and whatever it cannot attribute is rejected rather than assumed accepted: a
rejected record is kept and replayed, an accepted one never would be. An item whose every error
carries a transient ``code`` (429, 408 or 5xx: "try again later", not "this item is wrong") is
marked for a retry instead (``Attribution.transient``, ``BatchResult.retry``); the client
resends those items alone, with backoff, and rejects them only if they keep failing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from etl.errors import Body
from etl.redaction import redact_text
from schemas.canonical import Canonical

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_ITEMS",
    "TRANSIENT_ITEM_CODES",
    "Attribution",
    "Batch",
    "BatchRefused",
    "BatchResult",
    "bisect",
    "encode_item",
    "parse_partial_errors",
    "split_batches",
]

MAX_BATCH_BYTES = 1_000_000
"""The 1 MB body limit, counted in decimal bytes to stay under either reading of "MB"."""
MAX_BATCH_ITEMS = 1_000
"""Most items Synerise accepts in one batch call."""

TRANSIENT_ITEM_CODES = frozenset({408, 429})
"""Per-item error codes (besides 5xx) that say "resend later", not "this item is wrong"."""

_INDEX_IN_FIELD = re.compile(r"^\s*(?:[A-Za-z_$][\w$]*)?\[(\d+)\]\.?|^\s*(\d+)(?:\.|$)")
_MESSAGE_LIMIT = 300


@dataclass
class BatchResult:
    """What became of a logical call's items, by their index in the caller's sequence.

    Attributes:
        accepted: indexes Synerise accepted (202, or not named by a 207).
        rejected: index → why (Synerise's message, or ours for an item that could not be sent).
        retry: index → why, for items a 207 refused only for now (a transient per-item code);
            the client resends them and leaves this empty in what it returns.
    """

    accepted: list[int] = field(default_factory=list)
    rejected: dict[int, str] = field(default_factory=dict)
    retry: dict[int, str] = field(default_factory=dict)

    def merge(self, other: BatchResult) -> BatchResult:
        """Add another part's outcome to this one (in place) and return self."""
        self.accepted.extend(other.accepted)
        self.rejected.update(other.rejected)
        self.retry.update(other.retry)
        return self

    def sort(self) -> BatchResult:
        """Order by index (in place) and return self."""
        self.accepted.sort()
        self.rejected = dict(sorted(self.rejected.items()))
        self.retry = dict(sorted(self.retry.items()))
        return self


@dataclass(frozen=True, slots=True)
class Batch:
    """The items of one request: indexes in the caller's sequence and their encoded JSON."""

    indexes: tuple[int, ...]
    parts: tuple[bytes, ...]

    @property
    def body(self) -> bytes:
        """The request body: a JSON array of the encoded items."""
        return b"[" + b",".join(self.parts) + b"]"

    def halves(self) -> tuple[Batch, Batch]:
        """Split in two (the first half is the shorter one for odd sizes)."""
        middle = len(self.indexes) // 2
        return (
            Batch(self.indexes[:middle], self.parts[:middle]),
            Batch(self.indexes[middle:], self.parts[middle:]),
        )

    def only(self, indexes: Collection[int]) -> Batch:
        """The items of this batch whose caller index is in ``indexes``, in order."""
        kept = [(i, part) for i, part in zip(self.indexes, self.parts, strict=True) if i in indexes]
        return Batch(tuple(i for i, _ in kept), tuple(part for _, part in kept))


class BatchRefused(Exception):
    """Synerise refused a whole batch for its content; ``bisect`` splits it."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


class Attribution(NamedTuple):
    """A 207's errors: by position in the batch, and those naming no position.

    ``transient`` holds the positions whose every error has a transient code (429, 408, 5xx):
    Synerise could not take the item now, but nothing is wrong with it.
    """

    by_position: dict[int, str]
    unattributed: list[str]
    transient: frozenset[int] = frozenset()


def encode_item(item: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON (a ``Canonical`` payload's own, encoded once when it was mapped).

    Raises:
        ValueError: ``NaN`` or ``Infinity`` (not JSON), or a circular reference.
        TypeError: a value JSON cannot hold (``datetime``, ``Decimal``, ...).
    """
    if isinstance(item, Canonical):
        return item.json
    return json.dumps(item, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def split_batches(
    items: Sequence[Mapping[str, Any]],
    batch_size: int,
    max_bytes: int = MAX_BATCH_BYTES,
) -> tuple[list[Batch], dict[int, str]]:
    """Group items, in order, into batches of at most ``batch_size`` items and ``max_bytes``.

    Returns:
        The batches, and the items that cannot be sent at all (index → why): not JSON, or
        larger than ``max_bytes`` on their own.
    """
    if not 1 <= batch_size <= MAX_BATCH_ITEMS:
        raise ValueError(f"batch_size must be 1..{MAX_BATCH_ITEMS}, got {batch_size!r}")
    batches: list[Batch] = []
    rejected: dict[int, str] = {}
    indexes: list[int] = []
    parts: list[bytes] = []
    size = 2  # the brackets
    for index, item in enumerate(items):
        try:
            part = encode_item(item)
        except (TypeError, ValueError) as error:
            rejected[index] = f"the payload is not valid JSON ({type(error).__name__})"
            continue
        if len(part) + 2 > max_bytes:
            rejected[index] = (
                f"the payload is {len(part)} bytes as JSON; Synerise takes at most "
                f"{max_bytes} bytes per request"
            )
            continue
        if parts and (len(parts) >= batch_size or size + 1 + len(part) > max_bytes):
            batches.append(Batch(tuple(indexes), tuple(parts)))
            indexes, parts, size = [], [], 2
        size += len(part) + (1 if parts else 0)  # the comma
        indexes.append(index)
        parts.append(part)
    if parts:
        batches.append(Batch(tuple(indexes), tuple(parts)))
    return batches, rejected


def bisect(batch: Batch, post: Callable[[Batch], BatchResult]) -> BatchResult:
    """Post ``batch``; while a part is refused (``BatchRefused``), post its halves instead.

    Args:
        batch: the items to send.
        post: sends one batch and returns its result, or raises ``BatchRefused``. Other errors
            (retriable after their retries, fatal) propagate.

    Returns:
        The merged result; a single refused item is rejected with the refusal's message.
    """
    try:
        return post(batch)
    except BatchRefused as refusal:
        if len(batch.indexes) == 1:
            return BatchResult(rejected={batch.indexes[0]: refusal.message})
        first, second = batch.halves()
        return bisect(first, post).merge(bisect(second, post))


def parse_partial_errors(body: Body, size: int) -> Attribution:
    """Attribute the errors of a 207 to positions ``0..size-1`` of the batch that was sent.

    Reads a JSON array of Synerise ``Error`` objects or an object with ``errors``; an error's
    position comes from an integer ``index`` key or from its ``field``. Messages are
    ``field: message`` with the position removed, redacted, and never quote ``rejectedValue``.
    """
    if isinstance(body, Mapping):
        errors = body.get("errors")
        if not isinstance(errors, list):
            text = body.get("message") or body.get("error")
            return Attribution({}, [str(text)] if text else [])
    elif isinstance(body, list):
        errors = body
    else:
        return Attribution({}, [str(body)] if body else [])
    by_position: dict[int, list[str]] = {}
    lasting: set[int] = set()  # positions with at least one error that is not transient
    unattributed: list[str] = []
    for error in errors:
        position, message = _attribute(error)
        if position is not None and 0 <= position < size:
            by_position.setdefault(position, []).append(message)
            if not _is_transient(error):
                lasting.add(position)
        else:
            unattributed.append(message)
    return Attribution(
        {position: _clip("; ".join(texts)) for position, texts in by_position.items()},
        [_clip(text) for text in unattributed],
        frozenset(by_position) - lasting,
    )


def _is_transient(error: object) -> bool:
    """True for an item error whose ``code`` says "try again" (429, 408, 5xx)."""
    code = error.get("code") if isinstance(error, Mapping) else None
    if isinstance(code, str) and code.strip().isdigit():
        code = int(code)
    if isinstance(code, bool) or not isinstance(code, int):
        return False
    return code in TRANSIENT_ITEM_CODES or 500 <= code <= 599


def _attribute(error: object) -> tuple[int | None, str]:
    """The position an error names (if any) and its message."""
    if not isinstance(error, Mapping):
        return None, str(error)
    raw_field = error.get("field")
    field_name = raw_field if isinstance(raw_field, str) else ""
    message = str(error.get("message") or error.get("error") or "rejected")
    position: int | None = None
    if match := _INDEX_IN_FIELD.match(field_name):
        position = int(match.group(1) or match.group(2))
        field_name = field_name[match.end() :]
    index = error.get("index")
    if isinstance(index, int) and not isinstance(index, bool):
        position = index  # an explicit index wins over one read from the field
    return position, f"{field_name}: {message}" if field_name else message


def _clip(text: str) -> str:
    text = redact_text(" ".join(text.split()))
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 3] + "..."
