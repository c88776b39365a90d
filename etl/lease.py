"""A counting semaphore of leases in Redis: at most ``limit`` holders, each until its lease expires.

The key (``etl:lease:runs``) is a sorted set of holder tokens scored by lease expiry in ms of
the Redis server's ``TIME``, so client clocks never matter. Acquire and renew are Lua scripts:
acquire drops expired holders, then adds the token if fewer than ``limit`` remain; renew extends
a lease only while it is still live. A holder that dies simply stops renewing and its slot frees
itself after ``ttl``. Tokens name the work, not the process (``run:{id}``), so any process working
on a run may renew its lease.

``Heartbeat`` renews a lease from a background thread every ``ttl / 3``; once a renewal fails the
lease is lost for good and ``check()`` raises ``SlotLostError``, which the pipeline calls before
each write so a holder without a slot writes nothing more.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

import redis
from redis import Redis

from etl.errors import NetworkError, SlotLostError, unreachable

__all__ = ["Heartbeat", "SlotLease"]

log = logging.getLogger(__name__)

_REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)
"""A Redis restart or outage: ``NetworkError`` (retriable), not a lost lease."""

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# The key lives exactly as long as its longest lease (scores are epoch ms, as PEXPIREAT wants).
_EXPIRE_WITH_LAST_LEASE = """
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
"""

# KEYS[1] set; ARGV token, limit, ttl ms. A token that already holds a slot is renewed.
_ACQUIRE = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1])
   and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
"""
    + _EXPIRE_WITH_LAST_LEASE
    + "return 1"
)

# KEYS[1] set; ARGV token, ttl ms. An expired lease is gone even if nobody has swept it yet.
_RENEW = (
    _NOW
    + """
local expiry = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not expiry then
  return 0
end
if tonumber(expiry) <= now then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
"""
    + _EXPIRE_WITH_LAST_LEASE
    + "return 1"
)

# KEYS[1] set. Returns {now, token1, expiry1, ...} for live leases, soonest expiry first.
_HOLDERS = (
    _NOW
    + """
local live = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES')
table.insert(live, 1, now)
return live
"""
)


class SlotLease:
    """At most ``limit`` live leases under ``key``, each lasting ``ttl`` seconds unless renewed.

    Args:
        redis: client of the shared Redis.
        limit: number of slots (``SYNC_MAX_ACTIVE_RUNS``).
        ttl: lease duration in seconds; a holder must renew faster than this.
        key: the sorted set holding the leases.
    """

    def __init__(
        self, redis: Redis, limit: int = 2, ttl: float = 30.0, key: str = "etl:lease:runs"
    ) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit!r}")
        if not ttl >= 0.001:
            raise ValueError(f"ttl must be at least 0.001 seconds, got {ttl!r}")
        self.limit = limit
        self.ttl = float(ttl)
        self.key = key
        self._redis = redis
        self._ttl_ms = round(ttl * 1000)
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._holders = redis.register_script(_HOLDERS)

    def __repr__(self) -> str:
        return f"SlotLease(key={self.key!r}, limit={self.limit}, ttl={self.ttl:g})"

    def try_acquire(self, token: str) -> bool:
        """Take a slot for ``token``, or renew it if ``token`` already holds one.

        Returns:
            False when all slots are held by other live tokens; never waits.
        """
        _check_token(token)
        with unreachable("Redis (run lease)", *_REDIS_DOWN):
            return bool(self._acquire(keys=[self.key], args=[token, self.limit, self._ttl_ms]))

    def renew(self, token: str) -> bool:
        """Extend ``token``'s lease by ``ttl`` from now; False if it no longer holds a live one."""
        _check_token(token)
        with unreachable("Redis (run lease)", *_REDIS_DOWN):
            return bool(self._renew(keys=[self.key], args=[token, self._ttl_ms]))

    def renew_many(self, tokens: Iterable[str]) -> dict[str, bool]:
        """Renew several leases in one round trip (a worker's heartbeat renews every run it
        works on at once); token -> whether it still held a live lease."""
        wanted = list(dict.fromkeys(tokens))
        for token in wanted:
            _check_token(token)
        if not wanted:
            return {}
        with unreachable("Redis (run lease)", *_REDIS_DOWN):
            pipe = self._redis.pipeline(transaction=False)
            for token in wanted:
                self._renew(keys=[self.key], args=[token, self._ttl_ms], client=pipe)
            return {token: bool(ok) for token, ok in zip(wanted, pipe.execute(), strict=True)}

    def release(self, token: str) -> None:
        """Give the slot back (a token that holds none is ignored)."""
        _check_token(token)
        with unreachable("Redis (run lease)", *_REDIS_DOWN):
            self._redis.zrem(self.key, token)

    def holders(self) -> list[tuple[str, float]]:
        """Live holders as ``(token, seconds left on the lease)``, soonest expiry first."""
        with unreachable("Redis (run lease)", *_REDIS_DOWN):
            now, *flat = self._holders(keys=[self.key])
        pairs = zip(flat[::2], flat[1::2], strict=True)
        return [(_text(token), (float(expiry) - int(now)) / 1000) for token, expiry in pairs]

    def free_slots(self) -> int:
        """How many slots a new token could take right now."""
        return max(0, self.limit - len(self.holders()))


class Heartbeat:
    """Keeps a lease alive from a daemon thread and notices when it is lost.

    Use as a context manager (or ``start()`` / ``stop()``). Stopping does not release the lease.

    Args:
        lease: the semaphore.
        token: a token that holds a slot.
        interval: seconds between renewals; ``lease.ttl / 3`` by default, so two renewals in a
            row may fail transiently before the lease expires.
        on_lost: called once, from the heartbeat thread, when the lease is lost.
    """

    def __init__(
        self,
        lease: SlotLease,
        token: str,
        interval: float | None = None,
        on_lost: Callable[[], object] | None = None,
    ) -> None:
        interval = lease.ttl / 3 if interval is None else interval
        if not 0 < interval < lease.ttl:
            raise ValueError(
                f"interval must be between 0 and the lease ttl ({lease.ttl:g} s), got {interval!r}"
            )
        _check_token(token)
        self.lease = lease
        self.token = token
        self.interval = interval
        self.on_lost = on_lost
        self.lost = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._renewed_at = -float("inf")  # monotonic time a successful renewal was sent

    def start(self) -> Heartbeat:
        """Renew once now (so ``check()`` is meaningful at once), then keep renewing."""
        if self._thread is not None:
            raise RuntimeError("a Heartbeat can only be started once")
        self._thread = threading.Thread(
            target=self._run, name=f"lease-heartbeat:{self.token}", daemon=True
        )
        if self._beat():
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop renewing (the lease then expires after ``ttl`` unless released)."""
        self._stopping.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join()

    def check(self) -> None:
        """Raise ``SlotLostError`` unless the lease is still ours.

        Besides a failed renewal, a lease counts as lost once ``ttl`` has passed since the last
        successful one (a stalled or stopped heartbeat), because Redis may have expired it.
        """
        if self.lost.is_set() or time.monotonic() - self._renewed_at >= self.lease.ttl:
            raise SlotLostError(f"lease {self.token!r} on {self.lease.key!r} was lost")

    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            if not self._beat():
                return

    def _beat(self) -> bool:
        """Renew once; False (and the lease marked lost) when it is certainly gone."""
        sent = time.monotonic()
        try:
            renewed = self.lease.renew(self.token)
        except (redis.RedisError, NetworkError) as error:
            # Keep trying while the lease may still be live on the server.
            log.warning("renewing lease %r failed: %s", self.token, error)
            if time.monotonic() - self._renewed_at < self.lease.ttl:
                return True
            renewed = False
        if renewed:
            self._renewed_at = sent
            return True
        self._mark_lost()
        return False

    def _mark_lost(self) -> None:
        log.warning("lease %r on %r lost", self.token, self.lease.key)
        self.lost.set()
        if self.on_lost is not None:
            try:
                self.on_lost()
            except Exception:
                log.exception("on_lost callback of lease %r failed", self.token)


def _check_token(token: str) -> None:
    if not isinstance(token, str) or not token:
        raise ValueError(f"a lease token must be a non-empty string, got {token!r}")


def _text(value: bytes | str) -> str:
    """Members come back as bytes unless the client decodes responses."""
    return value.decode() if isinstance(value, bytes) else value
