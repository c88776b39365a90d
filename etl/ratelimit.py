"""A request-rate budget shared by every process that talks to one API family.

Celery's ``rate_limit`` is per worker, so N workers would send N times the allowed rate. Instead
each API family (``vtex``, ``synerise``) has one token bucket in Redis per account it limits,
``etl:rate:{family}:{account}`` (a VTEX account, a Synerise workspace; ``etl:rate:{family}``
without one): a hash with ``tokens``, ``ts`` (µs) and, after a 429, ``blocked_until`` (µs). Lua
scripts refill and take tokens atomically using the Redis server's ``TIME``, so the clocks of
the processes never matter. The bucket holds at most ``burst`` tokens, so the service sees at most
``rate * T + burst`` requests in any window ``T``; with the default burst of 1, any one-second
window holds at most ``rate + 1``. ``burst_seconds`` (``VTEX_RATE_BURST``,
``SYNERISE_RATE_BURST``) sizes the bucket in seconds of the rate instead, while the rate is the
configured one: once 429s have cut it (the real limit is lower than configured, and near), the
bucket holds one request again until the rate has grown back.

When the bucket is short, the script *reserves* the caller's turn: tokens go negative (a queue of
debt) and the caller sleeps exactly until its turn, then sends without asking again. Waiters are
thus served in arrival order across all processes, spaced ``1 / rate`` apart, at the cost of one
reservation per request (and one look for a 429 block after a sleep) instead of a herd polling for
every token. A 429 (``penalize``) blocks the bucket and
voids the turns that fall inside the block: their holders notice when they wake and queue again.

VTEX publishes few of its limits, so the configured rate is an upper bound, not the truth. With
a ``RateAdaptation`` (the default: ``RATE_ADAPTIVE``) the bucket also keeps its current ``rate``
in the hash, between 1% of the configured rate and the configured rate, and adapts it the way
TCP adapts its window (AIMD): the first 429 of a block multiplies it by ``decrease``; each
further 429 inside that block (an answer to a request sent before the cut, a sign of a larger
overshoot) by ``(1 + decrease) / 2``, but one block never takes it under half what it began
with; each grant that had to wait for its token (demand at least the rate) adds ``increase``
requests/s, so a saturated budget grows by the share ``increase`` per second and an idle or
application-limited one does not creep up untested. Every process reads and writes the same
``rate``, so all workers share what one of them learnt; an adapted bucket's key is kept an hour
after its last use, so the next run starts from the learnt rate. Measured in
``bench/unknown_limit.py`` (docs/benchmarks.md, "Unknown limit").
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Protocol

import redis
from redis import Redis

from etl.apiusage import ApiUsage, FamilyUsage
from etl.config import Settings
from etl.errors import BudgetExhaustedError, unreachable

__all__ = ["RateAdaptation", "RateBudget", "RedisTokenBucket", "read_rates"]

log = logging.getLogger(__name__)

_REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)
"""A Redis restart or outage: ``NetworkError``, retried by the HTTP attempt loop."""

# Shared prologue. ARGV max_rate, min_rate, burst, burst_seconds (min_rate == max_rate: the rate
# is fixed). Times are µs since the epoch (< 2^53, exact in Lua's doubles). Brings the bucket to
# ``now`` (tokens valid at ``ts``; ``ts`` is in the future only during a 429 block) and reads the
# adapted ``rate``, kept within [min_rate, max_rate] (the configured rate may have changed). The
# capacity is ``burst`` requests, or ``burst_seconds`` of the rate when that is more, but only at
# the configured rate: a rate that 429s cut works at the edge of the real limit, so it spends no
# saved-up turns until it has grown back.
_LOAD = """
local max_rate, min_rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'rate')
local rate = max_rate
if min_rate < max_rate and state[3] then
  rate = math.max(min_rate, math.min(max_rate, tonumber(state[3])))
end
local burst = tonumber(ARGV[3])
if rate >= max_rate then burst = math.max(burst, math.floor(rate * tonumber(ARGV[4]))) end
local tokens, ts = burst, now
if state[2] then
  tokens, ts = tonumber(state[1]), tonumber(state[2])
  if now > ts then
    tokens, ts = math.min(burst, tokens + (now - ts) * rate / 1000000), now
  end
end
"""

# '%.0f' / '%.17g' keep every digit (tostring would round to 14 significant digits). A fixed
# bucket's key lives until the bucket would be full again, when forgetting it changes nothing;
# an adapted one's at least an hour more, for the learnt rate.
_STORE = """
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),
           'ts', string.format('%.0f', ts), 'rate', string.format('%.17g', rate))
local keep = math.ceil((ts - now) / 1000 + (burst - tokens) * 1000 / rate) + 1000
if min_rate < max_rate then keep = math.max(keep, 3600000) end
redis.call('PEXPIRE', KEYS[1], keep)
"""

# ARGV (_LOAD's), cost, max_wait (s), increase. Returns {reserved, ms to wait}: {1, 0} is
# granted now; {1, ms} is a turn reserved ms ahead; {0, ms} is refused (beyond max_wait). A grant
# that found too few tokens (demand at least the rate) raises the rate by ``increase`` per token.
_ACQUIRE = (
    _LOAD
    + """
local cost, max_wait = tonumber(ARGV[5]), tonumber(ARGV[6]) * 1000000
local wait = (ts - now) + math.max(0, cost - tokens) * 1000000 / rate
if wait > max_wait then
  return {0, math.ceil(wait / 1000)}
end
if tokens < cost then
  rate = math.min(max_rate, rate + tonumber(ARGV[7]) * cost)
end
tokens = tokens - cost
"""
    + _STORE
    + "return {1, math.ceil(wait / 1000)}"
)

# ARGV (_LOAD's), seconds, decrease. Cuts the rate (by ``decrease`` for the first 429 of a block,
# by half as much for each further one, down to half the rate the block began with), blocks the
# bucket until now + seconds (a shorter penalty never cuts a longer one) and keeps no saved-up
# tokens, so traffic restarts at ``rate``, not in a burst.
_PENALIZE = (
    _LOAD
    + """
local decrease, old_rate = tonumber(ARGV[6]), rate
local previous = tonumber(redis.call('HGET', KEYS[1], 'blocked_until')) or 0
if previous > now then
  local began = tonumber(redis.call('HGET', KEYS[1], 'block_rate')) or rate
  rate = math.max(rate * (1 + decrease) / 2, began / 2)
else
  redis.call('HSET', KEYS[1], 'block_rate', string.format('%.17g', rate))
  rate = rate * decrease
end
rate = math.max(min_rate, rate)
local blocked_until = now + tonumber(ARGV[5]) * 1000000
if blocked_until > previous then
  -- The turns inside the block are void (their holders queue again when they wake): only the
  -- debt of turns after it remains, and nothing saved up.
  tokens = math.min(0, tokens + math.max(0, blocked_until - ts) * old_rate / 1000000)
  ts = blocked_until
  redis.call('HSET', KEYS[1], 'blocked_until', string.format('%.0f', blocked_until))
end
"""
    + _STORE
    + """
return 0
"""
)

# Returns the ms left in the current 429 block (0 when none).
_BLOCKED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local blocked_until = tonumber(redis.call('HGET', KEYS[1], 'blocked_until')) or 0
return math.max(0, math.ceil((blocked_until - now) / 1000))
"""


KEY_PREFIX = "etl:rate:"


def read_rates(client: Redis) -> dict[tuple[str, str], float]:
    """The rate every budget in use grants now, ``{(family, account): requests/s}`` (account
    ``""`` for a budget without one): the configured rate, or the adapted one. A fixed budget's
    key is gone once it has been idle long enough to be full again; an adapted one is kept an
    hour."""
    found: dict[tuple[str, str], float] = {}
    for key in client.scan_iter(match=KEY_PREFIX + "*", count=100):
        name = key.decode() if isinstance(key, bytes) else str(key)
        rate = client.hget(key, "rate")
        if rate is not None:
            family, _, account = name[len(KEY_PREFIX) :].partition(":")
            found[family, account] = float(rate)
    return found


MIN_RATE_SHARE = 0.01
"""An adapted rate never falls under this share of the configured rate: a storm of 429s caused
by someone else sharing the account cannot stall a sync for good."""


@dataclass(frozen=True)
class RateAdaptation:
    """How a bucket's rate follows the service's 429s (AIMD; see the module docstring).

    Args:
        decrease: the rate is multiplied by this at the first 429 of a block, in (0, 1).
        increase: requests/s added per grant that waited for its token, so a saturated
            budget grows by this share of its rate per second; > 0.
    """

    decrease: float = 0.9
    increase: float = 0.01

    def __post_init__(self) -> None:
        if not 0 < self.decrease < 1:
            raise ValueError(f"decrease must be between 0 and 1, got {self.decrease!r}")
        if not (math.isfinite(self.increase) and self.increase > 0):
            raise ValueError(f"increase must be a positive number, got {self.increase!r}")

    @classmethod
    def from_settings(cls, settings: Settings) -> RateAdaptation | None:
        """``RATE_ADAPT_DECREASE`` and ``RATE_ADAPT_INCREASE``; ``None`` when ``RATE_ADAPTIVE``
        is off (the configured rates are then used as they are)."""
        if not settings.rate_adaptive:
            return None
        return cls(settings.rate_adapt_decrease, settings.rate_adapt_increase)


class RateBudget(Protocol):
    """What an API client needs from a rate limiter."""

    def acquire(self, cost: int = 1) -> None:
        """Block until ``cost`` requests may be sent; raise ``BudgetExhaustedError`` if the wait
        would exceed the limiter's ``max_wait``."""

    def penalize(self, seconds: float) -> None:
        """The service answered 429: nobody sends anything for ``seconds``."""


class RedisTokenBucket:
    """A token bucket in Redis shared by all processes using the same ``family``.

    Args:
        redis: client of the shared Redis.
        family: API family; the key is ``etl:rate:{family}`` (``...:{account}`` with one).
        rate: tokens (requests) per second, > 0.
        burst: bucket capacity (and the largest ``cost``). Reserved turns lose no throughput
            while demand lasts; a bigger burst lets a bucket spend, right after a moment of
            less demand (a run's start, the gaps between a chunk's phases), the turns it left
            unused, at the cost of exceeding ``rate`` for that moment.
        burst_seconds: the capacity in seconds of the rate, when that is more than ``burst``
            and the rate is the configured one (429s have not cut it):
            ``VTEX_RATE_BURST`` / ``SYNERISE_RATE_BURST``.
        adapt: how the rate follows 429s; ``None`` keeps it fixed at ``rate``. With it,
            ``rate`` is the configured (highest) rate and the bucket starts there.
        max_wait: ``acquire`` raises ``BudgetExhaustedError`` instead of waiting longer than this.
        usage: where waits (and the HTTP client's answers) are counted, per family and
            account; by default the process's ``etl.apiusage`` tally for this Redis.
        account: what the API limits the rate of (a VTEX account, a Synerise workspace):
            processes and connections naming the same one share its budget.
    """

    def __init__(
        self,
        redis: Redis,
        family: str,
        rate: float,
        burst: int = 1,
        max_wait: float = 300,
        burst_seconds: float = 0.0,
        usage: ApiUsage | None = None,
        adapt: RateAdaptation | None = None,
        account: str | None = None,
    ) -> None:
        if not family:
            raise ValueError("family must be a non-empty string")
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"rate must be a positive number of requests per second, got {rate!r}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst!r}")
        if not (math.isfinite(burst_seconds) and burst_seconds >= 0):
            raise ValueError(f"burst_seconds must be >= 0, got {burst_seconds!r}")
        if not max_wait >= 0:
            raise ValueError(f"max_wait must be >= 0 seconds, got {max_wait!r}")
        self.family = family
        self.key = f"{KEY_PREFIX}{family}:{account}" if account else f"{KEY_PREFIX}{family}"
        self.rate = float(rate)
        self.burst = burst
        self.burst_seconds = float(burst_seconds)
        self.max_wait = float(max_wait)
        self.adapt = adapt
        self.min_rate = self.rate * MIN_RATE_SHARE if adapt else self.rate
        self.usage: FamilyUsage = (usage or ApiUsage.for_redis(redis)).family(family, account)
        """This family's traffic counters; ``etl.http.HttpClient`` counts answers here too."""
        self._redis = redis
        self._acquire = redis.register_script(_ACQUIRE)
        self._penalize = redis.register_script(_PENALIZE)
        self._blocked = redis.register_script(_BLOCKED)

    def __repr__(self) -> str:
        return (
            f"RedisTokenBucket(family={self.family!r}, rate={self.rate}, burst={self.burst}, "
            f"burst_seconds={self.burst_seconds}, adapt={self.adapt!r})"
        )

    def current_rate(self) -> float:
        """The rate every process of the family uses now: the configured one, or the adapted
        one (an adapted bucket's key lives an hour after its last use)."""
        with unreachable("Redis (rate budget)", *_REDIS_DOWN):
            stored = self._redis.hget(self.key, "rate")
        if not self.adapt or stored is None:
            return self.rate
        return max(self.min_rate, min(self.rate, float(stored)))

    def _limits(self) -> list[str | int]:
        """The ARGV prefix every script starts with (``_LOAD``)."""
        return [repr(self.rate), repr(self.min_rate), self.burst, repr(self.burst_seconds)]

    def try_acquire(self, cost: int = 1) -> float:
        """Take ``cost`` tokens if that is possible right now; never waits.

        Returns:
            0.0 when granted, otherwise the seconds until it could be (queued turns and a 429
            block included); nothing is taken or reserved then. A task can use it to retry
            later instead of holding a worker.
        """
        granted, wait = self._reserve(cost, max_wait=0.0)
        return 0.0 if granted else wait

    def acquire(self, cost: int = 1) -> None:
        """Block until ``cost`` requests may be sent.

        Raises:
            BudgetExhaustedError: the caller's turn would come more than ``max_wait`` seconds
                after the call (a long 429 block or a long queue); nothing is taken, and the
                caller pauses instead of holding a worker.
        """
        deadline = time.monotonic() + self.max_wait
        while True:
            reserved, wait = self._reserve(cost, max(0.0, deadline - time.monotonic()))
            if not reserved:
                self.usage.exhausted()
                raise BudgetExhaustedError(
                    f"rate budget {self.family!r}: the next turn is {wait:.1f} s away, "
                    f"beyond max_wait={self.max_wait:g} s"
                )
            if not wait:
                return
            time.sleep(wait)
            self.usage.waited(wait)
            with unreachable("Redis (rate budget)", *_REDIS_DOWN):
                blocked = self._blocked(keys=[self.key])
            if not blocked:
                return
            # A 429 arrived while we slept and our turn fell inside the block: queue again.

    def penalize(self, seconds: float) -> None:
        """Block the whole family for ``seconds`` (a 429's ``Retry-After``), in every process,
        and cut an adapted rate.

        A shorter penalty never cuts a longer one; ``seconds <= 0`` (a ``Retry-After`` already
        in the past) blocks nothing.
        """
        seconds = max(0.0, float(seconds)) if math.isfinite(seconds) else 0.0
        log.info("rate budget %r blocked for %.1f s after a 429", self.family, seconds)
        decrease = self.adapt.decrease if self.adapt else 1.0
        try:
            self._penalize(keys=[self.key], args=[*self._limits(), repr(seconds), repr(decrease)])
        except _REDIS_DOWN as error:  # best effort: this process still waits Retry-After
            log.warning("rate budget %r: cannot share a 429 block: %s", self.family, error)

    def _reserve(self, cost: int, max_wait: float) -> tuple[bool, float]:
        """Take (or reserve) ``cost`` tokens unless the turn is beyond ``max_wait`` seconds.

        Returns:
            ``(reserved, seconds to wait)``; ``(True, 0.0)`` means send now.
        """
        if not 1 <= cost <= self.burst:
            raise ValueError(
                f"cost must be between 1 and burst={self.burst} (more would exceed the burst), "
                f"got {cost!r}"
            )
        with unreachable("Redis (rate budget)", *_REDIS_DOWN):
            increase = self.adapt.increase if self.adapt else 0.0
            reserved, wait_ms = self._acquire(
                keys=[self.key], args=[*self._limits(), cost, repr(max_wait), repr(increase)]
            )
        return bool(reserved), int(wait_ms) / 1000
