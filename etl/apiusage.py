"""API traffic counters shared in Redis: requests by status, 429s, waits on the rate budget.

Every process that talks to VTEX or Synerise counts here, so ``/metrics`` (``etl.console``) can
show the whole deployment's traffic, each request counted once, however many workers there are.
The counts live in one Redis hash per API family and account (the VTEX account, the Synerise
workspace: what a rate budget is shared by), ``etl:usage:{family}:{account}``
(``etl:usage:{family}`` for a budget without one):

    requests:2xx  requests:3xx  requests:4xx  requests:429  requests:5xx  requests:network
    budget_wait_seconds   (time spent sleeping for a turn of the shared rate budget)
    budget_exhausted      (turns refused because they were beyond the budget's max_wait)

Counting must cost the request path next to nothing, so nothing here talks to Redis on it: a
count adds to the process's tally (a lock and a dict update, about a microsecond), and a daemon
thread adds the tally to Redis every ``FLUSH_EVERY`` seconds in one pipelined round trip, and
once more when the process exits. A process killed with SIGKILL loses at most its last
interval's counts; a count is never sent twice (a forked child starts with an empty tally, and
a failed flush keeps its counts for the next one).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import defaultdict
from typing import Any

import redis

__all__ = [
    "FIELDS",
    "FLUSH_EVERY",
    "ApiUsage",
    "FamilyUsage",
    "flush_all",
    "read_usage",
    "status_field",
]

log = logging.getLogger(__name__)

KEY = "etl:usage:{family}"
FLUSH_EVERY = 5.0
"""Seconds between two flushes of a process's tally to Redis."""
STATUS_FIELDS = (
    "requests:2xx", "requests:3xx", "requests:4xx", "requests:429", "requests:5xx",
    "requests:network",
)  # fmt: skip
FIELDS = (*STATUS_FIELDS, "budget_wait_seconds", "budget_exhausted")
"""Every field of an ``etl:usage:{family}`` hash."""

_FLUSH_TIMEOUT = 2.0
"""Seconds a flush may wait for Redis (at exit too): an unreachable Redis must not hang a
process that is shutting down."""


def status_field(status: int | None) -> str:
    """The hash field a response status counts under; ``None`` is a request that got no answer."""
    if status is None:
        return "requests:network"
    if status == 429:
        return "requests:429"
    return f"requests:{min(max(status // 100, 2), 5)}xx"


class ApiUsage:
    """One process's tally for one Redis, flushed in the background.

    Use ``ApiUsage.for_redis(client)``: one instance per Redis server and database per process,
    shared by every client and budget on it.

    Args:
        client: the shared Redis (its connection settings are reused with short timeouts).
        flush_every: seconds between flushes.
    """

    _instances: dict[tuple[Any, ...], ApiUsage] = {}
    _instances_lock = threading.Lock()

    def __init__(self, client: redis.Redis, flush_every: float = FLUSH_EVERY) -> None:
        pool = client.connection_pool
        kwargs = {
            **pool.connection_kwargs,
            "socket_timeout": _FLUSH_TIMEOUT,
            "socket_connect_timeout": _FLUSH_TIMEOUT,
            "retry": None,  # not the client's own retries: a flush tries once, keeps the tally
        }
        self.redis = redis.Redis(
            connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs)
        )
        self.flush_every = flush_every
        self._lock = threading.Lock()
        self._pending: defaultdict[tuple[str, str], float] = defaultdict(float)
        self._flushing = False
        _LIVE.add(self)

    @classmethod
    def for_redis(cls, client: redis.Redis) -> ApiUsage:
        """The process's tally for the Redis server and database ``client`` talks to."""
        kwargs = client.connection_pool.connection_kwargs
        key = tuple(kwargs.get(name) for name in ("host", "port", "path", "db", "username"))
        with cls._instances_lock:
            found = cls._instances.get(key)
            if found is None:
                found = cls._instances[key] = cls(client)
            return found

    def family(self, name: str, account: str | None = None) -> FamilyUsage:
        """The counters of one API family (``vtex``, ``synerise``) for one account."""
        return FamilyUsage(self, f"{name}:{account}" if account else name)

    def add(self, family: str, field: str, amount: float = 1) -> None:
        """Add to a field of a family's hash (at the next flush)."""
        with self._lock:
            self._pending[(family, field)] += amount
        if not self._flushing:
            self._start_flusher()

    def flush(self) -> None:
        """Add the tally to Redis now, in one round trip; on failure keep it for the next time.

        Raises:
            redis.RedisError: Redis could not be reached (the counts are kept).
        """
        with self._lock:
            pending, self._pending = self._pending, defaultdict(float)
        if not pending:
            return
        try:
            pipe = self.redis.pipeline(transaction=False)
            for (family, field), amount in pending.items():
                key = KEY.format(family=family)
                if float(amount).is_integer():
                    pipe.hincrby(key, field, int(amount))
                else:
                    pipe.hincrbyfloat(key, field, float(amount))
            pipe.execute()
        except redis.RedisError:
            with self._lock:
                for counted, amount in pending.items():
                    self._pending[counted] += amount
            raise

    def _start_flusher(self) -> None:
        with self._lock:
            if self._flushing:
                return
            self._flushing = True
        threading.Thread(target=self._flush_forever, name="etl-api-usage", daemon=True).start()

    def _flush_forever(self) -> None:
        failing = False
        while True:
            time.sleep(self.flush_every)
            try:
                self.flush()
            except redis.RedisError as error:
                if not failing:  # once per outage, not every few seconds
                    log.warning("API usage counters not sent to Redis yet: %s", error)
                failing = True
            else:
                failing = False

    def _forget_after_fork(self) -> None:
        """In a forked child: the parent's tally is the parent's to send, and its thread is gone."""
        self._lock = threading.Lock()
        self._pending = defaultdict(float)
        self._flushing = False


class FamilyUsage:
    """The counters of one API family and account, as the HTTP client and the rate budget record
    them."""

    __slots__ = ("family", "usage")

    def __init__(self, usage: ApiUsage, family: str) -> None:
        self.usage = usage
        self.family = family
        """``{family}`` or ``{family}:{account}``: the hash it counts in."""

    def __repr__(self) -> str:
        return f"FamilyUsage({self.family!r})"

    def response(self, status: int | None) -> None:
        """A request was answered with ``status`` (``None``: no answer, a network error)."""
        self.usage.add(self.family, status_field(status))

    def waited(self, seconds: float) -> None:
        """A caller slept ``seconds`` for its turn of the rate budget."""
        if seconds > 0:
            self.usage.add(self.family, "budget_wait_seconds", seconds)

    def exhausted(self) -> None:
        """The rate budget refused a turn beyond its ``max_wait``."""
        self.usage.add(self.family, "budget_exhausted")


def read_usage(client: redis.Redis) -> dict[str, dict[str, float]]:
    """Every family's counters as Redis holds them: ``{family[:account]: {field: value}}``."""
    found: dict[str, dict[str, float]] = {}
    prefix = KEY.format(family="")
    for key in sorted(client.scan_iter(match=prefix + "*", count=100)):
        name = key.decode() if isinstance(key, bytes) else str(key)
        values = client.hgetall(key)
        found[name[len(prefix) :]] = {
            (field.decode() if isinstance(field, bytes) else str(field)): float(value)
            for field, value in values.items()
        }
    return found


_LIVE: weakref.WeakSet[ApiUsage] = weakref.WeakSet()


def flush_all() -> None:
    """Send every tally of this process now (at exit; pool children that end with ``_exit``
    call it themselves); an unreachable Redis loses them, with a warning."""
    for usage in list(_LIVE):
        try:
            usage.flush()
        except redis.RedisError as error:
            log.warning("API usage counters lost at exit: %s", error)


def _forget_all_after_fork() -> None:
    ApiUsage._instances_lock = threading.Lock()
    for usage in list(_LIVE):
        usage._forget_after_fork()


atexit.register(flush_all)
os.register_at_fork(after_in_child=_forget_all_after_fork)
