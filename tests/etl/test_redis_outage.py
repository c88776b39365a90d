"""A Redis outage is a ``NetworkError`` (retriable) for the rate budget, the lease and enqueue."""

from __future__ import annotations

import socket

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from etl.errors import NetworkError, RetriableError, unreachable
from etl.lease import SlotLease
from etl.ratelimit import RedisTokenBucket


@pytest.fixture
def down() -> redis.Redis:
    """A client of a port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return redis.Redis(port=port, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))


def test_unreachable_maps_only_the_errors_it_names():
    with (
        pytest.raises(NetworkError, match="thing unreachable: ConnectionError") as caught,
        unreachable("thing", ConnectionError),
    ):
        raise ConnectionError("refused")
    assert isinstance(caught.value, RetriableError)
    assert isinstance(caught.value.__cause__, ConnectionError)
    with pytest.raises(ValueError), unreachable("thing", ConnectionError):
        raise ValueError("not an outage")


def test_the_rate_budget_turns_a_redis_outage_into_a_network_error(down):
    bucket = RedisTokenBucket(down, "vtex", 10)
    with pytest.raises(NetworkError, match="rate budget"):
        bucket.acquire()
    bucket.penalize(1.0)  # best effort: logged, not raised


def test_the_lease_turns_a_redis_outage_into_a_network_error(down):
    lease = SlotLease(down, limit=2, ttl=5)
    for call in (lambda: lease.try_acquire("run:1"), lambda: lease.renew("run:1"),
                 lambda: lease.release("run:1"), lease.free_slots):  # fmt: skip
        with pytest.raises(NetworkError, match="run lease"):
            call()
