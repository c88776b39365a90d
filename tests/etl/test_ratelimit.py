"""RedisTokenBucket against a real Redis: grants, waits, 429 blocks, threads and processes."""

from __future__ import annotations

import inspect
import subprocess
import sys
import threading
import time

import pytest
import redis

from etl.config import Settings
from etl.errors import BudgetExhaustedError, ConfigError
from etl.ratelimit import RateAdaptation, RateBudget, RedisTokenBucket
from tests.etl.httpfakes import RecordingBudget

SLOW = 0.01  # tokens per second: no token refills while a test runs


def server_seconds(client: redis.Redis) -> float:
    seconds, micros = client.time()
    return seconds + micros / 1_000_000


def client_url(client: redis.Redis) -> str:
    """A URL for the test's database, for child processes."""
    kwargs = client.connection_pool.connection_kwargs
    password = f":{kwargs['password']}@" if kwargs.get("password") else ""
    return f"redis://{password}{kwargs['host']}:{kwargs['port']}/{kwargs['db']}"


@pytest.mark.parametrize("budget_class", [RedisTokenBucket, RecordingBudget])
def test_implements_the_rate_budget_protocol(budget_class):
    """The clients take any ``RateBudget``: the Redis bucket (and the tests' recording fake) must
    offer each of its methods with the same signature, or a client calls what is not there."""
    methods = [name for name in vars(RateBudget) if not name.startswith("_")]
    assert methods == ["acquire", "penalize"]
    for name in methods:
        expected = inspect.signature(getattr(RateBudget, name))
        assert inspect.signature(getattr(budget_class, name)) == expected, name


def test_default_burst_is_one_request(redis_client):
    bucket = RedisTokenBucket(redis_client, "vtex", rate=SLOW)
    assert bucket.burst == 1
    assert bucket.try_acquire() == 0
    assert bucket.try_acquire() > 0


def test_grants_the_burst_then_denies(redis_client):
    bucket = RedisTokenBucket(redis_client, "vtex", rate=SLOW, burst=3)
    assert [bucket.try_acquire() for _ in range(3)] == [0, 0, 0]
    assert bucket.try_acquire() > 0
    assert redis_client.exists("etl:rate:vtex")


def test_denial_takes_nothing(redis_client):
    bucket = RedisTokenBucket(redis_client, "vtex", rate=SLOW, burst=3)
    assert bucket.try_acquire(cost=2) == 0
    assert bucket.try_acquire(cost=2) > 0  # one token left: refused, and still there
    assert bucket.try_acquire(cost=1) == 0


def test_wait_is_the_time_until_the_next_token(redis_client):
    bucket = RedisTokenBucket(redis_client, "vtex", rate=0.5, burst=1)
    assert bucket.try_acquire() == 0
    wait = bucket.try_acquire()
    assert 0 < wait <= 2.0  # one token per 2 s, measured on the server clock
    bucket2 = RedisTokenBucket(redis_client, "vtex", rate=0.5, burst=1)
    assert bucket2.try_acquire(cost=1) <= wait  # another process sees the same bucket


def test_families_are_independent(redis_client):
    vtex = RedisTokenBucket(redis_client, "vtex", rate=SLOW, burst=1)
    synerise = RedisTokenBucket(redis_client, "synerise", rate=SLOW, burst=1)
    assert vtex.try_acquire() == 0
    assert vtex.try_acquire() > 0
    assert synerise.try_acquire() == 0


def test_acquire_sleeps_until_granted(redis_client):
    bucket = RedisTokenBucket(redis_client, "vtex", rate=20, burst=1, max_wait=10)
    for _ in range(3):
        bucket.acquire()
    assert bucket.try_acquire() > 0  # the three grants emptied the bucket each time


def test_acquire_refuses_a_wait_beyond_max_wait(redis_client):
    bucket = RedisTokenBucket(redis_client, "vtex", rate=SLOW, burst=1, max_wait=5)
    bucket.acquire()
    with pytest.raises(BudgetExhaustedError, match=r"'vtex'.*max_wait=5"):
        bucket.acquire()


def test_penalize_blocks_every_process_of_the_family(redis_client):
    one = RedisTokenBucket(redis_client, "synerise", rate=100, burst=10, max_wait=1)
    other = RedisTokenBucket(redis_client, "synerise", rate=100, burst=10, max_wait=1)
    assert one.try_acquire() == 0
    one.penalize(30)
    blocked_until = int(redis_client.hget("etl:rate:synerise", "blocked_until")) / 1e6
    assert 29 < blocked_until - server_seconds(redis_client) <= 30
    assert 29 < other.try_acquire() <= 30 + 1 / 100  # the block, then one token's refill
    with pytest.raises(BudgetExhaustedError):
        other.acquire()
    assert RedisTokenBucket(redis_client, "vtex", rate=100).try_acquire() == 0


def test_penalize_never_shortens_a_block(redis_client):
    bucket = RedisTokenBucket(redis_client, "synerise", rate=100)
    bucket.penalize(30)
    bucket.penalize(1)
    bucket.penalize(0)
    bucket.penalize(-5)
    assert bucket.try_acquire() > 29


def test_after_a_block_traffic_restarts_without_a_burst(redis_client):
    bucket = RedisTokenBucket(redis_client, "synerise", rate=2, burst=5, max_wait=5)
    bucket.penalize(0.05)
    bucket.acquire()  # waits out the block, then for the first token
    assert bucket.try_acquire() > 0  # the bucket was emptied, not refilled to the burst


def wait_for_a_reservation(client: redis.Redis, key: str) -> None:
    """Until some waiter has reserved a turn (the bucket is in debt)."""
    deadline = time.monotonic() + 10
    while float(client.hget(key, "tokens") or 0) >= 0:
        assert time.monotonic() < deadline, "no waiter reserved a turn"
        time.sleep(0.005)


def test_waiters_are_served_in_turns(redis_client):
    bucket = RedisTokenBucket(redis_client, "vtex", rate=1, burst=1, max_wait=10)
    bucket.acquire()
    waiter = threading.Thread(target=bucket.acquire)
    waiter.start()  # reserves the next turn, about 1 s ahead
    wait_for_a_reservation(redis_client, bucket.key)
    assert bucket.try_acquire() > 1  # a newcomer queues behind the waiter's turn
    waiter.join()


def test_a_turn_inside_a_429_block_is_voided(redis_client):
    bucket = RedisTokenBucket(redis_client, "synerise", rate=2, burst=1, max_wait=10)
    bucket.acquire()
    sent_at = []

    def send() -> None:
        bucket.acquire()  # reserves the turn 0.5 s ahead, then sleeps
        sent_at.append(server_seconds(redis_client))

    waiter = threading.Thread(target=send)
    waiter.start()
    wait_for_a_reservation(redis_client, bucket.key)
    bucket.penalize(0.8)  # arrives while the waiter sleeps
    blocked_until = int(redis_client.hget(bucket.key, "blocked_until")) / 1e6
    waiter.join()
    assert sent_at[0] >= blocked_until


def test_a_block_drops_the_turns_inside_it_from_the_queue(redis_client):
    """Their holders queue again when they wake; their old turns must not delay anyone."""
    bucket = RedisTokenBucket(redis_client, "vtex", rate=0.1, burst=1, max_wait=600)
    for _ in range(4):  # one grant now, then turns 10, 20 and 30 s ahead
        assert bucket._reserve(1, max_wait=600)[0]
    bucket.penalize(20)  # voids the turns at 10 and 20 s; the one at 30 s stands
    assert 35 < bucket.try_acquire() <= 40  # after the block, the turn at 30 s, then ours


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": 0}, "rate must be a positive"),
        ({"rate": float("nan")}, "rate must be a positive"),
        ({"rate": 10, "burst": 0}, "burst must be at least 1"),
        ({"rate": 10, "max_wait": -1}, "max_wait"),
        ({"rate": 10, "burst_seconds": -0.1}, "burst_seconds"),
    ],
)
def test_rejects_bad_settings(redis_client, kwargs, message):
    with pytest.raises(ValueError, match=message):
        RedisTokenBucket(redis_client, "vtex", **kwargs)


def test_rejects_a_cost_the_bucket_can_never_hold(redis_client):
    bucket = RedisTokenBucket(redis_client, "vtex", rate=10, burst=2)
    with pytest.raises(ValueError, match="cost must be between 1 and burst=2"):
        bucket.acquire(cost=3)
    with pytest.raises(ValueError, match="cost"):
        bucket.try_acquire(cost=0)


def test_threads_together_stay_within_the_rate(redis_client):
    rate, burst, duration = 50.0, 5, 1.0
    granted = []
    start = server_seconds(redis_client)

    def hammer() -> None:
        bucket = RedisTokenBucket(redis_client, "vtex", rate=rate, burst=burst, max_wait=10)
        stop = time.monotonic() + duration
        while time.monotonic() < stop:
            bucket.acquire()
            granted.append(1)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = server_seconds(redis_client) - start
    assert burst < len(granted) <= rate * elapsed + burst


CHILD = """
import sys, time, redis
from etl.ratelimit import RedisTokenBucket

url, burst = sys.argv[1], int(sys.argv[2])
rate, start, duration = map(float, sys.argv[3:6])
client = redis.Redis.from_url(url)
bucket = RedisTokenBucket(client, "vtex", rate=rate, burst=burst, max_wait=10)
time.sleep(max(0.0, start - time.time()))
first = client.time()
granted = 0
while time.time() < start + duration:
    bucket.acquire()
    granted += 1
last = client.time()
print(granted, first[0] + first[1] / 1e6, last[0] + last[1] / 1e6)
"""


def test_processes_together_stay_within_the_rate(redis_client):
    rate, burst, duration = 50.0, 5, 2.0
    start = time.time() + 1.0  # every child is ready by then; they all start together
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                CHILD,
                client_url(redis_client),
                str(burst),
                str(rate),
                str(start),
                str(duration),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    reports = [child.communicate(timeout=60)[0].split() for child in children]
    assert all(child.returncode == 0 for child in children)
    counts = [int(report[0]) for report in reports]
    # Every grant happened on the server between the first child's first call and the last
    # child's last answer, and the bucket started full.
    window = max(float(r[2]) for r in reports) - min(float(r[1]) for r in reports)
    assert all(count > 0 for count in counts)
    assert sum(counts) <= rate * window + burst


# -- adaptation (AIMD) ------------------------------------------------------------------------

ADAPT = RateAdaptation(decrease=0.5, increase=0.25)


def test_a_429_cuts_an_adapted_rate_for_every_process(redis_client):
    adapt = RateAdaptation(decrease=0.8, increase=0.25)
    one = RedisTokenBucket(redis_client, "vtex", rate=600, adapt=adapt)
    other = RedisTokenBucket(redis_client, "vtex", rate=600, adapt=adapt)
    assert one.current_rate() == 600  # starts from the configured rate
    one.penalize(30)
    assert other.current_rate() == pytest.approx(480)
    other.penalize(30)  # a further 429 of the same block: half the cut
    assert one.current_rate() == pytest.approx(480 * 0.9)
    for _ in range(10):
        one.penalize(30)
    assert other.current_rate() == 300  # a block takes at most half of what it began with


def test_each_block_starts_a_new_full_cut(redis_client):
    bucket = RedisTokenBucket(redis_client, "vtex", rate=600, adapt=ADAPT)
    bucket.penalize(0.001)
    time.sleep(0.01)  # the block is over: the next 429 is news
    bucket.penalize(0.001)
    assert bucket.current_rate() == 150


def test_the_rate_never_falls_under_a_hundredth_of_the_configured_one(redis_client):
    bucket = RedisTokenBucket(redis_client, "vtex", rate=600, adapt=ADAPT)
    for _ in range(20):
        bucket.penalize(0)  # each one a block of its own
    assert bucket.current_rate() == pytest.approx(6)


def test_a_429_without_adaptation_keeps_the_rate(redis_client):
    bucket = RedisTokenBucket(redis_client, "vtex", rate=600)
    bucket.penalize(30)
    assert bucket.current_rate() == 600
    assert bucket.try_acquire() > 29  # the block still holds


def test_grants_that_waited_raise_the_rate(redis_client):
    slow = RateAdaptation(decrease=0.5, increase=0.01)
    bucket = RedisTokenBucket(redis_client, "vtex", rate=0.2, adapt=slow, max_wait=600)
    bucket.penalize(0)  # 0.1/s, and the bucket is emptied: a token takes 10 s to come
    assert bucket.current_rate() == pytest.approx(0.1)
    for _ in range(4):  # each grant finds the bucket short and reserves a turn ahead
        assert bucket._reserve(1, max_wait=600)[0]
    assert bucket.current_rate() == pytest.approx(0.1 + 4 * slow.increase)


def test_grants_from_a_full_bucket_leave_the_rate_alone(redis_client):
    """Demand under the rate proves nothing about the service's limit: no creeping up."""
    bucket = RedisTokenBucket(redis_client, "vtex", rate=100, burst=5, adapt=ADAPT)
    bucket.penalize(0.001)
    time.sleep(0.2)  # the bucket refills its burst at 50/s
    for _ in range(5):
        assert bucket.try_acquire() == 0
    assert bucket.current_rate() == 50


def test_the_rate_never_grows_over_the_configured_one(redis_client):
    RedisTokenBucket(redis_client, "vtex", rate=600, adapt=ADAPT).penalize(0)
    lowered = RedisTokenBucket(redis_client, "vtex", rate=100, adapt=ADAPT)
    assert lowered.current_rate() == 100  # a lower configured rate caps the learnt 300
    for _ in range(3):
        lowered._reserve(1, max_wait=60)
    assert lowered.current_rate() == 100


def test_a_learnt_rate_outlives_an_idle_bucket(redis_client):
    bucket = RedisTokenBucket(redis_client, "vtex", rate=600, adapt=ADAPT)
    bucket.penalize(0)
    assert redis_client.pttl(bucket.key) > 3_000_000  # an hour, not the 2 ms to a full bucket


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"decrease": 1.0}, "decrease must be between 0 and 1"),
        ({"decrease": 0.0}, "decrease must be between 0 and 1"),
        ({"increase": 0.0}, "increase must be a positive"),
        ({"increase": float("inf")}, "increase must be a positive"),
    ],
)
def test_rejects_bad_adaptations(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RateAdaptation(**kwargs)


def test_adaptation_from_settings():
    settings = Settings.from_env({"RATE_ADAPT_DECREASE": "0.6"}, dotenv_path=None, require=())
    assert RateAdaptation.from_settings(settings) == RateAdaptation(decrease=0.6, increase=0.01)
    fixed = Settings.from_env({"RATE_ADAPTIVE": "false"}, dotenv_path=None, require=())
    assert RateAdaptation.from_settings(fixed) is None


def test_burst_seconds_hold_that_much_of_the_rate(redis_client):
    bucket = RedisTokenBucket(redis_client, "vtex", rate=5, burst_seconds=0.6)
    assert [bucket.try_acquire() for _ in range(3)] == [0, 0, 0]  # 0.6 s of 5/s
    assert bucket.try_acquire() > 0


def test_a_rate_cut_by_429s_spends_no_burst_until_it_has_grown_back(redis_client):
    """Below its configured rate the bucket runs at the edge of the real limit: one request at
    a time; back at the configured rate, it holds ``burst_seconds`` of it again."""
    bucket = RedisTokenBucket(redis_client, "vtex", rate=100, burst_seconds=0.1, adapt=ADAPT)
    bucket.penalize(0)  # a 429: the rate is halved, 50/s
    time.sleep(0.5)  # enough to refill 25 tokens at 50/s, were the bucket not one request
    granted = 0
    while bucket.try_acquire() == 0 and granted < 20:
        granted += 1
    assert granted == 1
    redis_client.hset(bucket.key, "rate", "100")  # grown back to the configured rate
    time.sleep(0.2)
    granted = 0
    while bucket.try_acquire() == 0 and granted < 20:
        granted += 1
    assert granted == 10


def test_burst_settings():
    defaults = Settings.from_env({}, dotenv_path=None, require=())
    assert (defaults.vtex_rate_burst, defaults.synerise_rate_burst) == (0.5, 0.0)
    settings = Settings.from_env({"VTEX_RATE_BURST": "0"}, dotenv_path=None, require=())
    assert settings.vtex_rate_burst == 0.0
    for raw in ("-1", "11", "soon"):
        with pytest.raises(ConfigError, match="VTEX_RATE_BURST"):
            Settings.from_env({"VTEX_RATE_BURST": raw}, dotenv_path=None, require=())
