"""Backoff shape, Retry-After parsing, and the retry loop's contract."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from etl.errors import (
    AuthenticationError,
    NetworkError,
    RateLimitedError,
    ServerError,
    SkippableRecordError,
)
from etl.retry import RetryPolicy, call_with_retry, parse_retry_after


def test_backoff_doubles_from_base_up_to_cap():
    policy = RetryPolicy(max_attempts=9, jitter="none")
    assert list(policy.delays()) == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_full_jitter_scales_the_ceiling_by_the_random_draw():
    policy = RetryPolicy(random=lambda: 0.25)
    assert policy.sleep_for(1) == pytest.approx(0.125)
    assert policy.sleep_for(4) == pytest.approx(1.0)
    assert RetryPolicy(random=lambda: 0.0).sleep_for(6) == 0.0


def test_full_jitter_stays_within_the_ceiling():
    policy = RetryPolicy(max_attempts=50)
    for attempt, delay in enumerate(policy.delays(), start=1):
        assert 0.0 <= delay <= policy.backoff(attempt)


def test_equal_jitter_keeps_at_least_half():
    policy = RetryPolicy(jitter="equal", random=lambda: 0.0)
    assert policy.sleep_for(3) == pytest.approx(1.0)
    assert RetryPolicy(jitter="equal", random=lambda: 0.999).sleep_for(3) < 2.0


def test_retry_after_wins_and_is_bounded():
    policy = RetryPolicy(max_retry_after=60.0, random=lambda: 0.0)
    assert policy.sleep_for(1, 12.0) == 12.0
    assert policy.sleep_for(5, 600.0) == 60.0
    assert policy.sleep_for(1, -3.0) == 0.0
    assert policy.sleep_for(1, 0.0) == 0.0


def test_delays_has_one_wait_between_each_pair_of_attempts():
    assert len(list(RetryPolicy(max_attempts=6).delays())) == 5
    assert list(RetryPolicy(max_attempts=1).delays()) == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"base": -1.0},
        {"base": 5.0, "cap": 1.0},
        {"jitter": "sometimes"},
        {"max_retry_after": -1.0},
    ],
)
def test_policy_rejects_nonsense(kwargs):
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


def test_the_repr_hides_the_injected_functions():
    assert repr(RetryPolicy()) == (
        "RetryPolicy(max_attempts=6, base=0.5, cap=30.0, jitter='full', max_retry_after=60.0)"
    )


NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 3 ", 3.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("Fri, 01 May 2026 12:00:30 GMT", 30.0),
        ("Friday, 01-May-26 12:01:00 GMT", 60.0),
        ("Fri May  1 12:00:10 2026", 10.0),
        ("Fri, 01 May 2026 11:00:00 GMT", 0.0),
        ("-5", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value, now=NOW) == expected


def flaky(errors, result="done"):
    """A callable that raises the given errors in turn, then returns ``result``."""
    pending = list(errors)
    calls = []

    def call():
        calls.append(1)
        if pending:
            raise pending.pop(0)
        return result

    call.calls = calls
    return call


def test_retries_until_success_with_growing_waits():
    sleeps = []
    policy = RetryPolicy(jitter="none", sleep=sleeps.append)
    call = flaky([ServerError(503), NetworkError("reset"), ServerError(502)])
    assert call_with_retry(call, policy) == "done"
    assert len(call.calls) == 4
    assert sleeps == [0.5, 1.0, 2.0]


def test_gives_up_after_max_attempts_with_the_last_error():
    sleeps = []
    last = ServerError(504)
    call = flaky([ServerError(500), ServerError(502), last, ServerError(599)])
    with pytest.raises(ServerError) as caught:
        call_with_retry(call, RetryPolicy(max_attempts=3, sleep=sleeps.append))
    assert caught.value is last
    assert len(call.calls) == 3 and len(sleeps) == 2


@pytest.mark.parametrize(
    "error",
    [AuthenticationError("401"), SkippableRecordError("NOT_FOUND", "gone", "o-1"), KeyError("x")],
)
def test_other_errors_are_raised_at_once(error):
    sleeps = []
    call = flaky([error])
    with pytest.raises(type(error)):
        call_with_retry(call, RetryPolicy(sleep=sleeps.append))
    assert len(call.calls) == 1 and sleeps == []


def test_retry_after_of_a_rate_limit_is_the_wait_and_on_retry_sees_it():
    sleeps, seen = [], []
    limited = RateLimitedError(7.0)
    call = flaky([limited, RateLimitedError(None)])
    policy = RetryPolicy(jitter="none", sleep=sleeps.append)
    result = call_with_retry(call, policy, on_retry=lambda e, n, d: seen.append((e, n, d)))
    assert result == "done"
    assert sleeps == [7.0, 1.0]  # then plain backoff for attempt 2
    assert seen[0] == (limited, 1, 7.0) and seen[1][1:] == (2, 1.0)


def test_single_attempt_policy_never_sleeps():
    sleeps = []
    with pytest.raises(ServerError):
        call_with_retry(flaky([ServerError(500)]), RetryPolicy(max_attempts=1, sleep=sleeps.append))
    assert sleeps == []
