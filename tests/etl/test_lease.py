"""SlotLease and Heartbeat against a real Redis, including a holder that is SIGKILLed."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import pytest
import redis

from etl.errors import SlotLostError
from etl.lease import Heartbeat, SlotLease


def client_url(client: redis.Redis) -> str:
    """A URL for the test's database, for child processes."""
    kwargs = client.connection_pool.connection_kwargs
    password = f":{kwargs['password']}@" if kwargs.get("password") else ""
    return f"redis://{password}{kwargs['host']}:{kwargs['port']}/{kwargs['db']}"


def wait_until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_two_slots_then_refused(redis_client):
    lease = SlotLease(redis_client, limit=2, ttl=30)
    assert lease.try_acquire("run:1")
    assert lease.try_acquire("run:2")
    assert not lease.try_acquire("run:3")
    assert lease.free_slots() == 0
    assert sorted(token for token, _ in lease.holders()) == ["run:1", "run:2"]


def test_acquire_again_renews_instead_of_taking_a_second_slot(redis_client):
    lease = SlotLease(redis_client, limit=2, ttl=30)
    assert lease.try_acquire("run:1")
    assert lease.try_acquire("run:1")
    assert lease.free_slots() == 1
    assert lease.try_acquire("run:2")
    assert lease.try_acquire("run:1")  # full, but run:1 already holds a slot


def test_holders_report_seconds_left(redis_client):
    lease = SlotLease(redis_client, limit=2, ttl=30)
    lease.try_acquire("run:1")
    [(token, left)] = lease.holders()
    assert token == "run:1"
    assert 29 < left <= 30


def test_release_frees_the_slot(redis_client):
    lease = SlotLease(redis_client, limit=2, ttl=30)
    lease.try_acquire("run:1")
    lease.try_acquire("run:2")
    lease.release("run:1")
    lease.release("run:9")  # not a holder: ignored
    assert lease.holders()[0][0] == "run:2"
    assert lease.try_acquire("run:3")
    assert not lease.renew("run:1")


def test_expiry_frees_a_slot(redis_client):
    lease = SlotLease(redis_client, limit=2, ttl=0.5)
    assert lease.try_acquire("run:1")
    assert lease.try_acquire("run:2")
    assert not lease.try_acquire("run:3")
    assert wait_until(lambda: lease.free_slots() == 2)
    assert lease.holders() == []
    assert lease.try_acquire("run:3")


def test_renew_extends_a_live_lease_and_fails_after_expiry(redis_client):
    lease = SlotLease(redis_client, limit=2, ttl=0.5)
    lease.try_acquire("run:1")
    assert lease.renew("run:1")
    assert not lease.renew("run:2")  # never held one
    assert wait_until(lambda: lease.free_slots() == 2)
    assert not lease.renew("run:1")  # expired: renewal does not revive it
    assert lease.holders() == []


def test_key_lives_as_long_as_its_longest_lease(redis_client):
    short = SlotLease(redis_client, limit=2, ttl=0.3, key="etl:lease:test")
    long = SlotLease(redis_client, limit=2, ttl=30, key="etl:lease:test")
    long.try_acquire("run:1")
    short.try_acquire("run:2")  # a shorter lease does not shorten the key's life
    assert 29_000 < redis_client.pttl("etl:lease:test") <= 30_000
    long.release("run:1")
    short.try_acquire("run:3")
    assert redis_client.pttl("etl:lease:test") <= 300
    assert wait_until(lambda: not redis_client.exists("etl:lease:test"))  # nothing left behind


def test_leases_under_different_keys_are_separate(redis_client):
    runs = SlotLease(redis_client, limit=1, ttl=30)
    other = SlotLease(redis_client, limit=1, ttl=30, key="etl:lease:other")
    assert runs.try_acquire("run:1")
    assert other.try_acquire("run:2")
    assert not runs.try_acquire("run:2")


def test_concurrent_acquires_never_exceed_the_limit(redis_client):
    lease = SlotLease(redis_client, limit=2, ttl=30)
    barrier = threading.Barrier(20)
    won = []

    def contend(index: int) -> None:
        barrier.wait()
        if lease.try_acquire(f"run:{index}"):
            won.append(index)

    threads = [threading.Thread(target=contend, args=(index,)) for index in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 2
    assert sorted(token for token, _ in lease.holders()) == sorted(f"run:{i}" for i in won)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"limit": 0}, "limit must be at least 1"), ({"ttl": 0}, "ttl must be at least")],
)
def test_rejects_bad_settings(redis_client, kwargs, message):
    with pytest.raises(ValueError, match=message):
        SlotLease(redis_client, **kwargs)


def test_rejects_an_empty_token(redis_client):
    with pytest.raises(ValueError, match="non-empty string"):
        SlotLease(redis_client).try_acquire("")


HOLDER = """
import sys, time, redis
from etl.lease import Heartbeat, SlotLease

lease = SlotLease(redis.Redis.from_url(sys.argv[1]), limit=1, ttl=float(sys.argv[2]))
assert lease.try_acquire("run:1")
Heartbeat(lease, "run:1").start()
print("acquired", flush=True)
time.sleep(600)
"""


def test_a_killed_holder_frees_its_slot_after_the_ttl(redis_client):
    ttl = 1.0
    lease = SlotLease(redis_client, limit=1, ttl=ttl)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, client_url(redis_client), str(ttl)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "acquired"
        time.sleep(2 * ttl)  # its heartbeat keeps the lease past the ttl
        assert not lease.try_acquire("run:2")
        assert [token for token, _ in lease.holders()] == ["run:1"]
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert wait_until(lambda: lease.try_acquire("run:2"), timeout=ttl + 5)
    assert [token for token, _ in lease.holders()] == ["run:2"]


def test_heartbeat_keeps_a_lease_alive_past_its_ttl(redis_client):
    lease = SlotLease(redis_client, limit=1, ttl=1.0)
    lease.try_acquire("run:1")
    with Heartbeat(lease, "run:1") as heartbeat:
        time.sleep(2.5)
        heartbeat.check()
        assert not heartbeat.lost.is_set()
        assert not lease.try_acquire("run:2")
    assert lease.holders()[0][0] == "run:1"  # stopping does not release


def test_heartbeat_reports_a_lost_lease(redis_client):
    lease = SlotLease(redis_client, limit=1, ttl=1.0)
    lease.try_acquire("run:1")
    calls = []
    with Heartbeat(lease, "run:1", on_lost=lambda: calls.append("lost")) as heartbeat:
        heartbeat.check()
        redis_client.delete(lease.key)
        assert heartbeat.lost.wait(timeout=5)
        with pytest.raises(SlotLostError, match="run:1"):
            heartbeat.check()
    assert calls == ["lost"]


def test_heartbeat_on_a_token_without_a_slot_is_lost_at_once(redis_client):
    lease = SlotLease(redis_client, limit=1, ttl=1.0)
    heartbeat = Heartbeat(lease, "run:1").start()
    assert heartbeat.lost.is_set()
    with pytest.raises(SlotLostError):
        heartbeat.check()
    heartbeat.stop()


def test_a_stopped_heartbeat_stops_vouching_after_the_ttl(redis_client):
    lease = SlotLease(redis_client, limit=1, ttl=0.3)
    lease.try_acquire("run:1")
    heartbeat = Heartbeat(lease, "run:1").start()
    heartbeat.stop()
    assert wait_until(lambda: lease.free_slots() == 1)
    with pytest.raises(SlotLostError):
        heartbeat.check()


def test_heartbeat_interval_must_be_shorter_than_the_ttl(redis_client):
    lease = SlotLease(redis_client, ttl=1.0)
    with pytest.raises(ValueError, match="interval"):
        Heartbeat(lease, "run:1", interval=1.0)
