"""Drains: take the notifications waiting in one realtime inbox and process them in batches.

A drain (the ``etl.realtime.drain`` task, for one connection's inbox of one scope) marks its
inbox opened (entries added from then on schedule the next drain), then takes up to
``REALTIME_BATCH_SIZE`` entries at a time (``etl.sync.inbox``), processes each batch with
``etl.sync.realtime.sync_customers`` or ``sync_orders`` and acknowledges what was recorded, until
the inbox has nothing for it or ``seconds`` have passed (then it schedules its successor).
Batches form by themselves: a quiet inbox gives a drain one notification at a time, a backlog
gives full batches, and each full batch asks for a helper drain, up to ``REALTIME_DRAINS`` of
the scope at once (``Inbox.help``). An order notice of another connection's account or of a
sub-account (``etl.sync.accounts``) is processed with that connection's services and reader
(``route``), in a batch of its own.

The order of things that makes a crash harmless: the batch's outcome and its entry ids are
committed in one PostgreSQL transaction, then the entries are acknowledged in Redis, then their
ids are forgotten. A drain killed before the commit leaves its entries pending; the next drain
takes them over after ``REALTIME_REDELIVER_AFTER`` and does the work again (Synerise writes are
upserts, transactions overwrite by ``eventSalt``, the ledger skips what Synerise has). Killed
between the commit and the acknowledgement, the entries come back and are found recorded:
acknowledged, nothing redone, nothing counted twice.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from etl.sync.changes import CustomerChange, OrderNotice
from etl.sync.inbox import Entry, consumer_name
from etl.sync.queues import TASK_CUSTOMER, TASK_ORDER
from etl.sync.realtime import Batch, Item, Realtime, sync_customers, sync_orders
from etl.vtex.client import VtexClient

__all__ = ["DrainReport", "Route", "drain"]

Route = Callable[[str | None], tuple[Realtime, VtexClient]]
"""``Origin.Account`` of an order notice -> the services to process it with and the client to
read it with (``etl.sync.accounts.route_order``)."""

log = logging.getLogger(__name__)


@dataclass
class DrainReport:
    """What one drain did."""

    scope: str
    batches: int = 0
    taken: int = 0
    """Entries taken (a redelivered one counts again)."""
    redone: int = 0
    """Entries delivered again whose outcome was recorded already: acknowledged, not redone."""
    retried: int = 0
    """Entries left for a later delivery (a retriable failure)."""
    more: bool = False
    """Time ran out with entries left: a successor was scheduled."""
    outcomes: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (the task's result)."""
        return {"scope": self.scope, "batches": self.batches, "taken": self.taken,
                "redone": self.redone, "retried": self.retried, "more": self.more,
                "outcomes": dict(self.outcomes)}  # fmt: skip


def drain(
    rt: Realtime,
    scope: str,
    *,
    batch_size: int | None = None,
    seconds: float = 30.0,
    consumer: str | None = None,
    route: Route | None = None,
) -> DrainReport:
    """Process ``scope``'s waiting notifications of ``rt``'s connection in batches for up to
    ``seconds``; order notices go where ``route`` says (by default, ``rt`` itself).

    Raises:
        NetworkError, redis.RedisError, psycopg2.Error: Redis or PostgreSQL failed under a
            batch; its entries stay pending and are taken over later (the task retries).
    """
    inbox, report = rt.inbox, DrainReport(scope)
    size = batch_size or rt.engine.settings.realtime_batch_size
    consumer = consumer or consumer_name()
    deadline = time.monotonic() + seconds
    inbox.opened(scope, consumer)
    try:
        _drain(rt, scope, consumer, size, deadline, report, route or _own(rt))
    finally:
        inbox.closed(scope, consumer)
    if report.taken:
        log.info("inbox %s drained: %s", scope, report.as_dict())
    return report


def _own(rt: Realtime) -> Route:
    return lambda _: (rt, rt.engine.vtex)


def _drain(
    rt: Realtime,
    scope: str,
    consumer: str,
    size: int,
    deadline: float,
    report: DrainReport,
    route: Route,
) -> None:
    inbox, reclaim_at = rt.inbox, 0.0
    with inbox.holding(scope, consumer) as holding:
        while True:
            if time.monotonic() >= deadline:
                inbox.schedule(scope)  # unless an arrival did already
                report.more = True
                break
            reclaim = time.monotonic() >= reclaim_at  # a look at stale entries now and then
            if reclaim:
                reclaim_at = time.monotonic() + inbox.redeliver_after / 2
            entries = inbox.take(scope, consumer, size, reclaim=reclaim)
            if not entries:
                break
            if len(entries) == size:  # a backlog: another drain may share it
                inbox.help(scope, rt.engine.settings.realtime_drains)
            holding.hold([entry.id for entry in entries])
            _process(rt, scope, entries, report, route)
            holding.hold([])


def _process(
    rt: Realtime, scope: str, entries: list[Entry], report: DrainReport, route: Route
) -> None:
    """One batch: skip what was recorded before, process the rest, acknowledge the recorded."""
    report.batches += 1
    report.taken += len(entries)
    inbox = rt.inbox.name(scope)
    again = [entry.id for entry in entries if entry.deliveries > 1]
    recorded = rt.runs.recorded(inbox, again) if again else set()
    report.redone += len(recorded)
    items: list[Item[Any]] = []
    malformed = []
    for entry in entries:
        if entry.id in recorded:
            continue
        item = _item(entry)
        if item is None or item.record.scope != scope:
            malformed.append(entry.id)
        else:
            items.append(item)
    if malformed:
        log.error("inbox %s: %d malformed entries dropped", scope, len(malformed))
        report.outcomes["malformed"] += len(malformed)
    batch = _run(rt, scope, items, route)
    report.outcomes.update(batch.words.values())
    report.retried += len(batch.retry)
    done = [*recorded, *malformed, *batch.words]
    rt.inbox.ack(scope, done)
    rt.runs.forget(inbox, [*recorded, *batch.words])


def _item(entry: Entry) -> Item[Any] | None:
    """The entry as a batch item, or None when it is not a notification an inbox holds."""
    try:
        if entry.task == TASK_CUSTOMER:
            return Item(entry.id, CustomerChange(**entry.args[0]), entry.final)
        if entry.task == TASK_ORDER:
            return Item(entry.id, OrderNotice(**entry.args[0]), entry.final)
    except (IndexError, TypeError):
        pass
    return None


def _run(rt: Realtime, scope: str, items: list[Item[Any]], route: Route) -> Batch:
    inbox = rt.inbox.name(scope)
    if not items:
        return Batch()
    if scope != "orders":
        # The inbox a customer change waits in is its scope, so a batch is one scope's changes.
        return sync_customers(rt, items, inbox=inbox)
    accounts: dict[str | None, list[Item[Any]]] = {}
    for item in items:
        accounts.setdefault(item.record.origin_account, []).append(item)
    batch = Batch()
    for account, group in accounts.items():
        services, vtex = route(account)
        # The entries are this inbox's, whichever connection's ledger and runs record them.
        part = sync_orders(services, group, inbox=inbox, vtex=vtex)
        batch.words.update(part.words)
        batch.retry.update(part.retry)
    return batch
