"""API traffic counters: counted per family in Redis, once per request, off the request path."""

from __future__ import annotations

import multiprocessing

import pytest
import redis
import responses

from etl.apiusage import ApiUsage, read_usage, status_field
from etl.errors import BudgetExhaustedError, NetworkError
from etl.http import HttpClient
from etl.ratelimit import RedisTokenBucket
from tests.etl.httpfakes import instant_policy

BASE = "https://api.example.test"


@pytest.mark.parametrize(
    ("status", "field"),
    [(200, "requests:2xx"), (204, "requests:2xx"), (304, "requests:3xx"), (404, "requests:4xx"),
     (429, "requests:429"), (503, "requests:5xx"), (None, "requests:network")],
)  # fmt: skip
def test_status_fields(status, field):
    assert status_field(status) == field


def test_counts_wait_in_the_process_until_a_flush(redis_client):
    usage = ApiUsage(redis_client, flush_every=3600)
    vtex, synerise = usage.family("vtex"), usage.family("synerise")
    for status in (200, 200, 429, 500):
        vtex.response(status)
    synerise.response(None)
    vtex.waited(0.25)
    vtex.waited(0.5)
    vtex.exhausted()
    assert read_usage(redis_client) == {}, "nothing reaches Redis on the request path"
    usage.flush()
    assert read_usage(redis_client) == {
        "vtex": {
            "requests:2xx": 2, "requests:429": 1, "requests:5xx": 1,
            "budget_wait_seconds": 0.75, "budget_exhausted": 1,
        },
        "synerise": {"requests:network": 1},
    }  # fmt: skip
    usage.flush()  # an empty tally sends nothing and changes nothing
    assert read_usage(redis_client)["vtex"]["requests:2xx"] == 2


def test_processes_add_up_and_a_forked_child_never_resends_its_parents_counts(redis_client):
    usage = ApiUsage(redis_client, flush_every=3600)
    usage.family("vtex").response(200)  # pending in the parent when it forks

    def child() -> None:
        usage.family("vtex").response(200)
        usage.family("vtex").response(200)
        usage.flush()

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(30)
    assert process.exitcode == 0
    usage.flush()
    assert read_usage(redis_client)["vtex"]["requests:2xx"] == 3


def test_a_failed_flush_keeps_the_counts(redis_client):
    usage = ApiUsage(redis_client, flush_every=3600)
    usage.family("vtex").response(200)
    real = usage.redis
    usage.redis = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    with pytest.raises(redis.ConnectionError):
        usage.flush()
    usage.family("vtex").response(200)
    usage.redis = real
    usage.flush()
    assert read_usage(redis_client)["vtex"]["requests:2xx"] == 2


def test_the_background_thread_flushes(redis_client):
    from tests.helpers.sync import wait_until

    usage = ApiUsage(redis_client, flush_every=0.05)
    usage.family("synerise").response(202)
    wait_until(lambda: read_usage(redis_client).get("synerise"), timeout=10, what="a flush")


def test_one_tally_per_redis_per_process(redis_client):
    again = redis.Redis(connection_pool=redis_client.connection_pool)
    assert ApiUsage.for_redis(redis_client) is ApiUsage.for_redis(again)


@responses.activate
def test_the_http_client_counts_every_attempt_through_its_budget(redis_client):
    responses.get(f"{BASE}/x", status=429, headers={"Retry-After": "0"})
    responses.get(f"{BASE}/x", status=503)
    responses.get(f"{BASE}/x", json={"ok": True})
    responses.get(f"{BASE}/y", body=responses.ConnectionError("refused"))
    usage = ApiUsage(redis_client, flush_every=3600)
    budget = RedisTokenBucket(redis_client, "vtex", rate=1000, usage=usage)
    client = HttpClient(BASE, service="VTEX", budget=budget, retry=instant_policy(max_attempts=3))
    client.request("GET", "/x")
    with pytest.raises(NetworkError):
        client.request("GET", "/y")
    usage.flush()
    counts = read_usage(redis_client)["vtex"]
    assert counts["requests:429"] == 1 and counts["requests:5xx"] == 1
    assert counts["requests:2xx"] == 1 and counts["requests:network"] == 3


def test_the_budget_counts_its_waits_and_refusals(redis_client):
    usage = ApiUsage(redis_client, flush_every=3600)
    budget = RedisTokenBucket(redis_client, "synerise", rate=5, max_wait=1, usage=usage)
    for _ in range(3):  # the first is free; the next two wait up to 200 ms each
        budget.acquire()
    budget.penalize(30)
    with pytest.raises(BudgetExhaustedError):
        budget.acquire()
    usage.flush()
    counts = read_usage(redis_client)["synerise"]
    assert 0 < counts["budget_wait_seconds"] <= 0.4
    assert counts["budget_exhausted"] == 1
