"""The Orders Feed v3 consumer: the safety net under the Orders Hook.

The hook is the fast path, but a failed hook delivery is gone and VTEX removes a hook after days
without traffic, while the incremental orders sync windows on creation date and never sees a
later status change of an older order. The feed is VTEX's durable queue of the same changes:
events stay until committed. Beat runs `consume_orders_feed` every ``ORDERS_FEED_INTERVAL``.

Each event goes through the hook's own path (`etl.sync.realtime.sync_order`), so it has the
hook's effect exactly once: the "once" claim is keyed by (orderId, state, lastChange), which a
hook notification of the same change shares, and the ledger hash skips a payload Synerise
already has. An event is committed only after its outcome (sent, skipped, rejected, or a
``DELIVERY_FAILED`` reject after ``FEED_MAX_ATTEMPTS`` deliveries) is recorded in PostgreSQL;
an event whose processing failed is left in the feed and comes back after the visibility timeout.
One consumer runs at a time (a Redis lease), so two beats or a slow run never read in parallel.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from etl.connections import DEFAULT
from etl.lease import SlotLease
from etl.redaction import redact_text
from etl.sync.changes import OrderNotice
from etl.sync.realtime import Realtime, sync_order

__all__ = [
    "FEED_MAX_ATTEMPTS",
    "FeedReport",
    "consume_orders_feed",
    "notice_from_feed",
]

log = logging.getLogger(__name__)

FEED_MAX_ATTEMPTS = 8
"""Deliveries of one event before its failure is recorded as a ``DELIVERY_FAILED`` reject."""
FEED_LOT = 10
_ATTEMPTS_KEY = "etl:feed:attempts:"
_ATTEMPTS_TTL = 14 * 86_400  # VTEX's longest retention: a count never outlives its event
_LEASE_KEY = "etl:lease:orders-feed"


@dataclass
class FeedReport:
    """What one consumer run did."""

    configured: bool = True
    busy: bool = False
    """Another consumer held the lease: this run read nothing."""
    read: int = 0
    committed: int = 0
    left: int = 0
    """Events whose processing failed: not committed, they come back after the visibility
    timeout."""
    outcomes: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (task result, ``vtex feed drain --json``)."""
        return {
            "configured": self.configured,
            "busy": self.busy,
            "read": self.read,
            "committed": self.committed,
            "left": self.left,
            "outcomes": dict(self.outcomes),
        }


def notice_from_feed(event: dict[str, Any]) -> OrderNotice:
    """A feed event as the hook notification of the same change.

    Raises:
        KeyError, TypeError: the event lacks ``orderId``, ``state`` or ``lastChange``.
    """
    return OrderNotice(
        order_id=str(event["orderId"]),
        state=str(event["state"]),
        last_change=str(event["lastChange"]),
        last_state=event.get("lastState"),
        current_change=event.get("currentChange"),
        domain=event.get("domain"),
    )


def consume_orders_feed(
    rt: Realtime, *, max_events: int = 1000, seconds: float = 50.0, concurrency: int = 8
) -> FeedReport:
    """Read, process and commit feed events until the feed is empty, ``max_events`` were read
    or ``seconds`` passed; at most one consumer at a time.

    Raises:
        RetriableError: VTEX or Redis could not be reached for the feed itself (the next run
            reads the same events again: nothing is lost).
    """
    report = FeedReport()
    name = rt.engine.connection.name  # one consumer per connection (its app key's feed)
    key = _LEASE_KEY if name == DEFAULT else f"{_LEASE_KEY}:{name}"
    lease = SlotLease(rt.engine.redis, limit=1, ttl=seconds + 60, key=key)
    token = f"consumer:{time.time_ns()}"
    if not lease.try_acquire(token):
        report.busy = True
        return report
    try:
        _drain(rt, report, max_events, time.monotonic() + seconds, concurrency)
    finally:
        lease.release(token)
    if report.read:
        log.info("orders feed: %s", report.as_dict())
    return report


def _drain(
    rt: Realtime, report: FeedReport, max_events: int, deadline: float, concurrency: int
) -> None:
    vtex = rt.engine.vtex
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        while report.read < max_events and time.monotonic() < deadline:
            events = vtex.read_feed(min(FEED_LOT, max_events - report.read))
            if events is None:
                report.configured = False
                log.warning(
                    "orders feed: the app key has no feed (VTEX deletes an idle one); run "
                    "`vtex-synerise vtex feed register`"
                )
                return
            if not events:
                return
            report.read += len(events)
            done = [handle for handle in pool.map(lambda e: _process(rt, e, report), events)
                    if handle is not None]  # fmt: skip
            vtex.commit_feed(done)
            report.committed += len(done)


def _process(rt: Realtime, event: dict[str, Any], report: FeedReport) -> str | None:
    """Process one event; its handle when the outcome is recorded (commit it), else ``None``."""
    handle, event_id = event.get("handle"), str(event.get("eventId"))
    try:
        notice = notice_from_feed(event)
    except (KeyError, TypeError):
        log.error("orders feed: event %s has no orderId/state/lastChange; committed", event_id)
        report.outcomes["malformed"] += 1
        return str(handle) if handle else None
    final = _attempt(rt, event_id) >= FEED_MAX_ATTEMPTS
    try:
        outcome = sync_order(rt, notice, f"feed:{event_id}", final_attempt=final)
    except Exception as error:  # retriable or an outage: the event comes back later
        log.warning(
            "orders feed: order %s %s not processed yet: %s",
            notice.order_id, notice.state, redact_text(str(error)),
        )  # fmt: skip
        report.left += 1
        return None
    report.outcomes[outcome] += 1
    return str(handle) if handle else None


def _attempt(rt: Realtime, event_id: str) -> int:
    """Count a delivery of ``event_id`` (shared by every consumer); the count so far."""
    key = _ATTEMPTS_KEY + event_id
    pipe = rt.engine.redis.pipeline()
    pipe.incr(key)
    pipe.expire(key, _ATTEMPTS_TTL)
    count, _ = pipe.execute()
    return int(count)
