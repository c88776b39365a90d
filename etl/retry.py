"""Backoff for transient failures: exponential with jitter, or the wait the service names.

After AWS's "Exponential Backoff And Jitter" (full jitter spreads the retries of many workers
that failed together) and dlt's ``requests`` retry helper (``Retry-After`` wins when present, in
integer or HTTP-date form). Only ``RetriableError`` is retried: everything else is a verdict that
another attempt cannot change.

Example:
    >>> policy = RetryPolicy(max_attempts=3, sleep=lambda s: None)
    >>> call_with_retry(lambda: "ok", policy)
    'ok'
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal, TypeVar

from etl.errors import RateLimitedError, RetriableError

__all__ = ["Jitter", "RetryPolicy", "call_with_retry", "parse_retry_after"]

log = logging.getLogger(__name__)

T = TypeVar("T")

Jitter = Literal["full", "equal", "none"]
"""``full``: uniform in [0, d]; ``equal``: d/2 plus uniform in [0, d/2]; ``none``: d."""

_SECONDS = re.compile(r"\d+(?:\.\d+)?")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before trying a failed call again.

    Attempt ``n`` (1-based, the first retry follows attempt 1) waits ``min(cap, base * 2**(n-1))``
    shaped by ``jitter``, unless the error carries a ``Retry-After``, which is used as given up
    to ``max_retry_after``.

    Attributes:
        max_attempts: calls in total, the first one included (1 = never retry).
        base: the first backoff ceiling, in seconds.
        cap: the largest backoff ceiling, in seconds.
        jitter: how the ceiling is randomised (see ``Jitter``).
        max_retry_after: the longest ``Retry-After`` we sleep; a longer one is cut to this (the
            shared rate budget still holds every process back for the full time).
        sleep: the sleep function; tests inject a no-op.
        random: a ``[0, 1)`` source; tests inject a constant.
    """

    max_attempts: int = 6
    base: float = 0.5
    cap: float = 30.0
    jitter: Jitter = "full"
    max_retry_after: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts!r}")
        if not 0 <= self.base <= self.cap:
            raise ValueError(f"need 0 <= base <= cap, got base={self.base!r}, cap={self.cap!r}")
        if self.jitter not in ("full", "equal", "none"):
            raise ValueError(f"jitter must be 'full', 'equal' or 'none', got {self.jitter!r}")
        if not self.max_retry_after >= 0:
            raise ValueError(f"max_retry_after must be >= 0, got {self.max_retry_after!r}")

    def backoff(self, attempt: int) -> float:
        """The backoff ceiling after failed attempt ``attempt`` (before jitter)."""
        return min(self.cap, self.base * 2.0 ** min(max(attempt, 1) - 1, 60))

    def sleep_for(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt``.

        Args:
            attempt: the 1-based number of the attempt that just failed.
            retry_after: the service's ``Retry-After`` in seconds, if it sent one; it wins over
                the backoff and is bounded by ``max_retry_after``.
        """
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        ceiling = self.backoff(attempt)
        if self.jitter == "full":
            return ceiling * self.random()
        if self.jitter == "equal":
            return ceiling / 2 + ceiling / 2 * self.random()
        return ceiling

    def delays(self) -> Iterator[float]:
        """The ``max_attempts - 1`` waits of a call that keeps failing without ``Retry-After``."""
        for attempt in range(1, self.max_attempts):
            yield self.sleep_for(attempt)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Read a ``Retry-After`` header: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).

    Args:
        value: the header value, or ``None`` when absent.
        now: the current time for HTTP-dates (default: the clock); injectable for tests.

    Returns:
        Seconds to wait (a date in the past gives 0.0), or ``None`` when absent or unreadable.
    """
    if value is None or not (text := value.strip()):
        return None
    if _SECONDS.fullmatch(text):
        return float(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # RFC 850 / asctime forms parse naive; HTTP-dates are GMT
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def call_with_retry(
    fn: Callable[[], T],
    policy: RetryPolicy | None = None,
    on_retry: Callable[[RetriableError, int, float], None] | None = None,
) -> T:
    """Call ``fn`` until it returns, retrying ``RetriableError`` per ``policy``.

    Args:
        fn: the call; it raises ``RetriableError`` for transient failures.
        policy: attempts and waits (default ``RetryPolicy()``).
        on_retry: called as ``on_retry(error, attempt, delay)`` before each wait, e.g. to
            penalise a shared rate budget after a 429.

    Returns:
        What ``fn`` returned.

    Raises:
        RetriableError: the last one, when ``policy.max_attempts`` calls all failed.
        Exception: any other error of ``fn``, at once.
    """
    policy = policy or RetryPolicy()
    attempt = 1
    while True:
        try:
            return fn()
        except RetriableError as error:
            if attempt >= policy.max_attempts:
                raise
            retry_after = error.retry_after if isinstance(error, RateLimitedError) else None
            delay = policy.sleep_for(attempt, retry_after)
            log.info(
                "attempt %d/%d failed (%s); retrying in %.2f s",
                attempt, policy.max_attempts, error, delay,
            )
            if on_retry is not None:
                on_retry(error, attempt, delay)
            policy.sleep(delay)
            attempt += 1
