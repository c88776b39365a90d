"""The realtime inbox: customer and order notifications wait in Redis for drains to take them in
batches.

One Redis stream per connection and scope (``etl:inbox:customers_created``,
``etl:inbox:customers_updated``, ``etl:inbox:orders`` for the ``default`` connection, the keys it
had before connections; ``etl:inbox:{connection}:{scope}`` for the others), read through one
consumer group (``drain``) by drain tasks (``etl.realtime.drain(scope, connection)``,
``etl.sync.drain``). The webhook service's ``enqueue`` puts a notification in the inbox of the
connection its record names (``Inbox.of``). Not one Celery task per notification: a Celery
task costs the worker 1.4-1.7 ms of CPU of its own (a no-op task, docs/benchmarks.md), more than
a whole notification costs in a batch; a drain takes up to ``REALTIME_BATCH_SIZE`` entries in
one call. Deletions and consent stay one Celery task each.

Guarantees:

* Accepted means in Redis: ``add`` returns once ``XADD`` has the entry, as durable as a Celery
  message in the same Redis.
* Nothing is acknowledged before its outcome is recorded: a drain's entries stay in the group's
  pending list until ``ack`` (``XACK`` and ``XDEL``), which follows the PostgreSQL transaction
  that records them together with their entry ids (``realtime_delivery``).
* A drain that dies, SIGKILL included, leaves its entries pending. While it lives it keeps them
  fresh (``Holding``: ``XCLAIM ... JUSTID`` every quarter of ``redeliver_after``); an entry idle
  for ``redeliver_after`` after its first delivery (twice that after the second, and so on up to
  ``RETRY_DELAY_CAP``: a failing entry is tried again within a minute, like a task's retry) is
  taken over by the next drain (``XPENDING`` then ``XCLAIM`` with that minimum idle time, so one
  drain wins it). Its delivery count makes the last attempt known (``MAX_DELIVERIES``).
* Redone once: an entry delivered again whose id PostgreSQL holds is acknowledged with no work.
* Somebody drains: ``add`` sets ``{stream}:drain`` (``SET NX``, ``SCHEDULE_TTL``) and,
  when it was not set, sends a drain task; a drain deletes it before it reads, so an entry added
  after a drain's last read always schedules another. ``sweep`` (every worker's upkeep) schedules
  a drain for every stream holding entries, whatever became of a task.
* A backlog is drained by several at once: a drain that takes a full batch asks for a helper
  (``help``) while fewer than ``REALTIME_DRAINS`` drains of the stream are alive (each keeps its
  name in ``{stream}:drains``, scored by when it counts as gone unless renewed), so
  drains ramp up one per batch and end by themselves when the inbox is empty.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis

from etl.connections import DEFAULT
from etl.redaction import redact_text
from etl.sync.changes import CustomerChange, OrderNotice
from etl.sync.queues import REALTIME, TASK_CUSTOMER, TASK_DRAIN, TASK_ORDER

__all__ = [
    "INBOX_SCOPES",
    "MAX_DELIVERIES",
    "Entry",
    "Holding",
    "Inbox",
    "consumer_name",
    "inbox_scope",
]

log = logging.getLogger(__name__)

INBOX_SCOPES = ("customers_created", "customers_updated", "orders")
GROUP = "drain"
MAX_DELIVERIES = 9
"""Deliveries of an entry before its failure is recorded (``DELIVERY_FAILED``): the first and
eight more, as a realtime task's eight retries."""
SCHEDULE_TTL = 60
"""Seconds a "drain scheduled" mark lives: a drain task lost before it started is replaced."""
RETRY_DELAY_CAP = 60.0
"""Seconds: the longest an entry waits to be delivered again (its drain died or it failed), unless
``redeliver_after`` is longer. A busy rate budget fails reads for a while; a longer wait kept
notifications out of Synerise for minutes after it freed (bench/chaos.py)."""
IDLE_CONSUMER_MS = 600_000
"""A consumer with nothing pending and idle this long is removed by ``sweep``."""

Send = Callable[[str, list[Any], str], object]

# KEYS[1] stream, KEYS[2] schedule mark; ARGV task, args (JSON), mark TTL. Returns the entry id
# and 1 when this call set the mark (the caller then sends a drain task).
_ADD = """
local id = redis.call('XADD', KEYS[1], '*', 'task', ARGV[1], 'args', ARGV[2])
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[3]) then return {id, 1} end
return {id, 0}
"""

# KEYS[1] live drains (sorted set), KEYS[2] schedule mark; ARGV cap, mark TTL. Returns 1 when
# fewer than ``cap`` drains are alive and no drain was scheduled (the caller sends one).
_HELP = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then return 1 end
return 0
"""

# KEYS[1] live drains; ARGV consumer, milliseconds it counts as alive from now.
_ALIVE = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return 1
"""


def inbox_scope(task: str, args: Sequence[Any]) -> str | None:
    """The inbox a task's notification waits in, or ``None`` for work that stays a Celery task
    (deletions, consent, anything else)."""
    try:
        if task == TASK_CUSTOMER:
            return CustomerChange(**args[0]).scope
        if task == TASK_ORDER:
            return OrderNotice(**args[0]).scope
    except (IndexError, TypeError):
        return None
    return None


def consumer_name() -> str:
    """This thread's consumer name in the group: stable for the thread's life."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


@dataclass(frozen=True)
class Entry:
    """One waiting notification: the task it stands for and its JSON arguments."""

    id: str
    task: str
    args: list[Any]
    deliveries: int

    @property
    def final(self) -> bool:
        """This delivery is the last: a failure now is recorded, not retried."""
        return self.deliveries >= MAX_DELIVERIES


class Inbox:
    """One connection's streams, their consumer group and their drain scheduling.

    Args:
        client: the Redis client (the broker's Redis: an entry is as durable as a task).
        send: ``(task, args, queue) -> id``, Celery's ``enqueue``: sends drain tasks, and the
            tasks that do not wait in the inbox.
        redeliver_after: seconds an entry stays unclaimed after its first delivery before
            another drain takes it over (``REALTIME_REDELIVER_AFTER``).
        connection: the connection whose notifications these streams hold.
    """

    prefix = "etl:inbox:"

    def __init__(
        self,
        client: redis.Redis,
        send: Send,
        redeliver_after: float = 20.0,
        connection: str = DEFAULT,
    ) -> None:
        self.client = client
        self.send = send
        self.redeliver_after = redeliver_after
        self.connection = connection
        self._add = client.register_script(_ADD)
        self._help = client.register_script(_HELP)
        self._alive = client.register_script(_ALIVE)
        self._others: dict[str, Inbox] = {}

    def of(self, connection: str) -> Inbox:
        """The inbox of another connection, on the same Redis (built once)."""
        if connection == self.connection:
            return self
        if connection not in self._others:
            self._others[connection] = Inbox(
                self.client, self.send, self.redeliver_after, connection
            )
        return self._others[connection]

    def name(self, scope: str) -> str:
        """The stream's name: ``scope`` for ``default``, ``{connection}:{scope}`` otherwise
        (also what ``realtime_delivery`` records its entries under)."""
        if scope not in INBOX_SCOPES:
            raise ValueError(f"inbox scope must be one of {', '.join(INBOX_SCOPES)}; got {scope!r}")
        return scope if self.connection == DEFAULT else f"{self.connection}:{scope}"

    def key(self, scope: str) -> str:
        return self.prefix + self.name(scope)

    # -- the webhook side ----------------------------------------------------------------------

    def enqueue(self, task: str, args: list[Any], queue: str) -> str:
        """The webhook service's ``enqueue``: a customer change or an order notification waits
        in the inbox of its connection, anything else is sent as its own task. Returns the
        entry or task id."""
        scope = inbox_scope(task, args)
        if scope is None:
            return str(self.send(task, args, queue))
        return self.of(args[0].get("connection") or DEFAULT).add(scope, task, args)

    def add(self, scope: str, task: str, args: list[Any]) -> str:
        """Put a notification in ``scope``'s inbox (then it is accepted); schedule a drain."""
        key = self.key(scope)
        entry_id, marked = self._add(keys=[key, key + ":drain"],
                                     args=[task, json.dumps(args), SCHEDULE_TTL])  # fmt: skip
        if marked:
            self._send_drain(scope)
        return _text(entry_id)

    def schedule(self, scope: str) -> bool:
        """Send a drain task for ``scope`` unless one is scheduled already; True if sent."""
        if not self.client.set(self.key(scope) + ":drain", "1", nx=True, ex=SCHEDULE_TTL):
            return False
        return self._send_drain(scope)

    def _send_drain(self, scope: str) -> bool:
        # ``default``'s drains keep the arguments they had before connections.
        args = [scope] if self.connection == DEFAULT else [scope, self.connection]
        try:
            self.send(TASK_DRAIN, args, REALTIME)
        except Exception as error:  # the entry is safe in Redis; upkeep schedules its drain
            log.warning("inbox %s: could not send a drain task (%s); upkeep will",
                        self.name(scope), redact_text(repr(error)))  # fmt: skip
            self.client.delete(self.key(scope) + ":drain")
            return False
        return True

    def help(self, scope: str, drains: int) -> bool:
        """Send another drain for ``scope`` if fewer than ``drains`` are alive and none is
        scheduled; True if sent."""
        key = self.key(scope)
        if not self._help(keys=[key + ":drains", key + ":drain"], args=[drains, SCHEDULE_TTL]):
            return False
        return self._send_drain(scope)

    # -- the drain side ------------------------------------------------------------------------

    def opened(self, scope: str, consumer: str) -> None:
        """A drain starts: entries added from now on schedule the next one; it counts as alive
        (``help``) while it renews that (``Holding``) and until it ``closed``."""
        self.client.delete(self.key(scope) + ":drain")
        self.alive(scope, consumer)

    def alive(self, scope: str, consumer: str) -> None:
        """``consumer`` drains ``scope`` for another ``redeliver_after`` at least."""
        self._alive(keys=[self.key(scope) + ":drains"],
                    args=[consumer, int(self.redeliver_after * 1000)])  # fmt: skip

    def closed(self, scope: str, consumer: str) -> None:
        """A drain ends: it no longer counts as alive."""
        self.client.zrem(self.key(scope) + ":drains", consumer)

    def take(self, scope: str, consumer: str, count: int, reclaim: bool = True) -> list[Entry]:
        """Up to ``count`` entries for ``consumer``: first those whose holder went quiet for
        their redelivery delay (with ``reclaim``), then new ones."""
        key = self.key(scope)
        taken = self._reclaim(key, consumer, count) if reclaim else []
        if len(taken) < count:
            answer = self._group_call(key, lambda: self.client.xreadgroup(
                GROUP, consumer, {key: ">"}, count=count - len(taken)))  # fmt: skip
            for _, messages in answer or []:
                taken += [_entry(raw_id, fields, 1) for raw_id, fields in messages if fields]
        return taken

    def _reclaim(self, key: str, consumer: str, count: int) -> list[Entry]:
        floor = int(self.redeliver_after * 1000)
        # Looks further than ``count``: an entry waiting out a longer delay must not hide others.
        pending = self._group_call(key, lambda: self.client.xpending_range(
            key, GROUP, min="-", max="+", count=min(1000, 10 * count), idle=floor))  # fmt: skip
        due = {
            _text(row["message_id"]): int(row["times_delivered"])
            for row in pending
            if int(row["time_since_delivered"]) >= self.delay_ms(int(row["times_delivered"]))
        }
        due = dict(list(due.items())[:count])
        if not due:
            return []
        claimed: list[tuple[Any, dict[Any, Any]]] = self.client.xclaim(  # type: ignore[assignment]
            key, GROUP, consumer, floor, list(due)
        )
        return [_entry(raw_id, fields, due[_text(raw_id)] + 1) for raw_id, fields in claimed
                if fields]  # fmt: skip

    def delay_ms(self, deliveries: int) -> int:
        """How long an entry delivered ``deliveries`` times sits idle before another delivery:
        ``redeliver_after``, doubling per delivery, at most ``RETRY_DELAY_CAP`` (or
        ``redeliver_after`` when that is longer)."""
        first = self.redeliver_after
        grown = first * 2 ** max(0, min(deliveries - 1, 16))
        return int(1000 * max(first, min(grown, RETRY_DELAY_CAP)))

    def keep(self, scope: str, consumer: str, ids: Sequence[str]) -> None:
        """Reset the idle time of entries ``consumer`` is working on (not a delivery)."""
        if ids:
            self.client.xclaim(self.key(scope), GROUP, consumer, 0, list(ids), justid=True)

    @contextmanager
    def holding(self, scope: str, consumer: str) -> Iterator[Holding]:
        """A background thread that ``keep``s the entries the drain holds while it works."""
        holding = Holding(self, scope, consumer)
        thread = threading.Thread(target=holding.run, name=f"inbox-{scope}", daemon=True)
        thread.start()
        try:
            yield holding
        finally:
            holding.stop.set()
            thread.join(5)

    def ack(self, scope: str, ids: Sequence[str]) -> None:
        """Acknowledge and delete entries whose outcome is recorded."""
        if not ids:
            return
        key = self.key(scope)
        pipe = self.client.pipeline(transaction=True)
        pipe.xack(key, GROUP, *ids)
        pipe.xdel(key, *ids)
        pipe.execute()

    def waiting(self, scope: str) -> int:
        """Entries in the inbox: new, being processed, or waiting to be tried again."""
        return int(self.client.xlen(self.key(scope)))

    def sweep(self) -> list[str]:
        """Upkeep: schedule a drain for each inbox holding entries; remove consumers long idle
        with nothing pending (this connection's streams). Returns the scopes a drain was sent
        for."""
        sent = []
        for scope in INBOX_SCOPES:
            if self.waiting(scope) and self.schedule(scope):
                sent.append(scope)
            self._forget_idle_consumers(self.key(scope))
        return sent

    def _forget_idle_consumers(self, key: str) -> None:
        try:
            consumers = self.client.xinfo_consumers(key, GROUP)
        except redis.ResponseError:  # no stream or no group yet
            return
        for consumer in consumers:
            if int(consumer["pending"]) == 0 and int(consumer["idle"]) > IDLE_CONSUMER_MS:
                self.client.xgroup_delconsumer(key, GROUP, consumer["name"])

    def _group_call(self, key: str, call: Callable[[], Any]) -> Any:
        """``call``, creating the consumer group first if Redis says it is missing (a fresh or
        flushed Redis). The group starts at the stream's beginning: no entry is skipped."""
        try:
            return call()
        except redis.ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
        try:
            self.client.xgroup_create(key, GROUP, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
        return call()


class Holding:
    """The entries a drain is working on, kept fresh every quarter of ``redeliver_after``."""

    def __init__(self, inbox: Inbox, scope: str, consumer: str) -> None:
        self.inbox, self.scope, self.consumer = inbox, scope, consumer
        self.ids: list[str] = []
        self.stop = threading.Event()

    def hold(self, ids: Sequence[str]) -> None:
        self.ids = list(ids)

    def run(self) -> None:
        while not self.stop.wait(self.inbox.redeliver_after / 4):
            try:
                self.inbox.keep(self.scope, self.consumer, self.ids)
                self.inbox.alive(self.scope, self.consumer)
            except redis.RedisError as error:  # the entries may be taken over: the gate holds
                log.warning("inbox %s: could not keep entries: %s", self.scope, error)


def _entry(raw_id: Any, fields: dict[Any, Any], deliveries: int) -> Entry:
    values = {_text(name): _text(value) for name, value in fields.items()}
    try:
        args = json.loads(values.get("args", "null"))
    except ValueError:
        args = None
    return Entry(_text(raw_id), values.get("task", ""), args if isinstance(args, list) else [],
                 deliveries)  # fmt: skip


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
